"""Golden inputs and outputs for the C model tests, from random models and a fixed seed.

Each case writes model directories (export.py) and ``<case>_golden.safetensors`` holding the
inputs and PyTorch's fp32 outputs. The C tests (tests/models/test_bert.c, test_interest.c)
load both and compare: the fp32 model within 1e-4 (max abs), the int8 model by cosine.

Cases:
  bert-mini   4 layers, hidden 256, 4 heads, FFN 1024, mean pooling, projection to 128;
              fp32 and int8 files; 8 sequences of lengths 1..64
  bert-base   12 layers, hidden 768, 12 heads, FFN 3072, [CLS] pooling; int8 file only (its
              fp32 file would be 340 MB); 3 sequences
  interest    item_dim 128, LSTM 2 x 256; fp32 and int8 files; 7 users with 0..64 events
Vocabularies are small (random ids) so the files stay small; the shapes that cost time are
BERT's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from . import bert as bert_mod
from . import export
from . import interest as interest_mod
from . import safetensors_io

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the a shoe boot hiking phone case red blue great love it fits well small large "
         "cheap price quality battery screen water proof warm light heavy run walk").split()


def write_vocab(path: Path, size: int) -> None:
    toks = SPECIAL + WORDS + [f"##{w}" for w in ("s", "ed", "ing", "er")]
    toks += [f"w{i}" for i in range(size - len(toks))]
    path.write_text("\n".join(toks[:size]) + "\n")


BERT_CASES = {
    "bert-mini": dict(config=dict(vocab_size=2000, hidden_size=256, num_hidden_layers=4,
                                  num_attention_heads=4, intermediate_size=1024,
                                  max_position_embeddings=128, pooling="mean",
                                  projection_dim=128),
                      lengths=[1, 7, 16, 33, 64, 50, 2, 64], dtypes=("fp32", "int8")),
    "bert-base": dict(config=dict(vocab_size=1000, hidden_size=768, num_hidden_layers=12,
                                  num_attention_heads=12, intermediate_size=3072,
                                  max_position_embeddings=128, pooling="cls"),
                      lengths=[3, 32, 17], dtypes=("int8",)),
}


def bert_case(out: Path, case: str, seed: int) -> None:
    spec = BERT_CASES[case]
    g = torch.Generator().manual_seed(seed)
    cfg = bert_mod.BertConfig(**spec["config"])
    model = bert_mod.TextEncoder(cfg).eval()
    bert_mod.random_init(model, g)
    vocab = out / f"{case}-vocab.txt"
    write_vocab(vocab, cfg.vocab_size)
    for dtype in spec["dtypes"]:
        export.export_bert(model, out / f"{case}-{dtype}", dtype=dtype, name=case,
                           version=f"golden-{seed}", vocab=vocab, do_lower_case=True)
    lengths = spec["lengths"]
    t = max(lengths)
    ids = torch.randint(5, cfg.vocab_size, (len(lengths), t), generator=g)
    ids[:, 0] = 2  # [CLS]
    for b, n in enumerate(lengths):
        if n > 1:
            ids[b, n - 1] = 3  # [SEP]
        ids[b, n:] = 0      # [PAD]: must not matter
    lens = torch.tensor(lengths)
    with torch.no_grad():
        expected = model(ids, lens)
    flat = np.concatenate([ids[b, :n].numpy() for b, n in enumerate(lengths)]).astype(np.int32)
    safetensors_io.write(out / f"{case}_golden.safetensors", {
        "input_ids": flat, "lengths": np.asarray(lengths, np.int32),
        "expected": expected.numpy().astype(np.float32)})


INTEREST_LENGTHS = [0, 1, 3, 12, 40, 64, 25]


def random_users(cfg: interest_mod.InterestConfig, lengths, rng: np.random.Generator):
    users = []
    for n in lengths:
        gaps = rng.choice([0, 30, 90, 600, 3600, 86400, 10 * 86400], size=n)
        gaps = gaps * rng.uniform(0.5, 1.5, size=n)
        ts = (1_600_000_000 + np.cumsum(gaps)).astype(np.int64)
        has_text = rng.random(n) < 0.3
        text = rng.normal(0, 0.5, (n, cfg.item_dim)).astype(np.float32) * has_text[:, None]
        dwell = [float(x) if rng.random() < 0.7 else None for x in rng.exponential(40, n)]
        amount = [float(x) if rng.random() < 0.2 else None for x in rng.exponential(30, n)]
        rating = [float(x) if h else None for x, h in zip(rng.integers(1, 6, n), has_text)]
        users.append(interest_mod.UserEvents(
            item_vecs=rng.normal(0, 0.5, (n, cfg.item_dim)).astype(np.float32),
            text_vecs=text, event_types=rng.integers(0, cfg.n_event_types, n).tolist(),
            ts=ts.tolist(), dwell_s=dwell, amount=amount, rating=rating))
    return users


def flatten_users(users, item_dim: int) -> dict[str, np.ndarray]:
    def col(xs):
        return np.asarray([np.nan if x is None else x for x in xs], np.float32)
    cat = lambda key, shape: (np.concatenate([getattr(u, key) for u in users]) if users
                              else np.zeros(shape))  # noqa: E731
    return {
        "item_vec": cat("item_vecs", (0, item_dim)).astype(np.float32).reshape(-1, item_dim),
        "text_vec": cat("text_vecs", (0, item_dim)).astype(np.float32).reshape(-1, item_dim),
        "has_text": np.concatenate([np.any(u.text_vecs != 0, axis=1) for u in users])
        .astype(np.uint8),
        "event_type": np.concatenate([np.asarray(u.event_types, np.int32) for u in users]),
        "ts": np.concatenate([np.asarray(u.ts, np.int64) for u in users]),
        "dwell_s": np.concatenate([col(u.dwell_s) for u in users]),
        "amount": np.concatenate([col(u.amount) for u in users]),
        "rating": np.concatenate([col(u.rating) for u in users]),
        "lengths": np.asarray([len(u.ts) for u in users], np.int32),
    }


def interest_case(out: Path, seed: int) -> None:
    g = torch.Generator().manual_seed(seed + 1)
    rng = np.random.default_rng(seed + 1)
    cfg = interest_mod.InterestConfig(item_dim=128, hidden_size=256, num_layers=2,
                                      half_life_s=2 * 86400.0)
    model = interest_mod.InterestModel(cfg).eval()
    interest_mod.random_init(model, g)
    for dtype in ("fp32", "int8"):
        export.export_interest(model, out / f"interest-{dtype}", dtype=dtype, name="interest",
                               version=f"golden-{seed}")
    users = random_users(cfg, INTEREST_LENGTHS, rng)
    with torch.no_grad():
        expected = model(users)
    tensors = flatten_users(users, cfg.item_dim)
    tensors["expected"] = expected.numpy().astype(np.float32)
    safetensors_io.write(out / "interest_golden.safetensors", tensors)


def generate(out: str | Path, seed: int, cases=("bert-mini", "bert-base", "interest")) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for case in cases:
        if case == "interest":
            interest_case(out, seed)
        else:
            bert_case(out, case, seed)
