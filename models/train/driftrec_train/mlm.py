"""Masked-language-model pre-training of the small BERT text encoder, and text -> vectors.

There are no pretrained BERT weights to download here, so the pipeline trains its own small
BERT on the shared item and review text (or imports a Hugging Face checkpoint with
convert_hf.py instead). The pieces:

* :class:`MlmConfig`: the encoder's shape (bert.BertConfig's field names; ``max_len`` is
  the longest sequence, [CLS] and [SEP] included, and becomes ``max_position_embeddings``)
  and the training settings.
* :class:`MlmModel`: ``bert`` (bert.BertModel, shared with a bert.TextEncoder, so the
  encoder keeps bert.py's parameter names and export.export_bert takes it unchanged) and
  ``cls.predictions`` (BERT's head: dense + GELU + LayerNorm, then a decoder tied to the
  word embeddings plus a bias). The names are Hugging Face's BertForMaskedLM ones.
* :func:`pretrain`: tokenises with the Python twin of the C tokenizer (same ids), cuts each
  text into [CLS] pieces [SEP] sequences of at most ``max_len`` (a text too long for one is
  split into near-equal windows rather than truncated; texts are never packed together, so
  training sees the single-text sequences the encoder is used on), batches sequences of
  similar length (little padding), masks 15% of the word pieces with BERT's 80/10/10 rule
  and trains with AdamW and a linear warm-up/decay under a wall-clock cap. Resumable;
  validation on 2% of the distinct texts, held out; the unigram baseline for comparison.
* :func:`encode_texts`: mean-pooled vectors, no grad, deterministic; an empty text (no
  word pieces) gets the zero vector, which the interest model reads as "no text".
* :func:`corpus_texts`: the shared English text (MovieLens titles + genres, Amazon review
  text, item text), skipping what is absent.

Everything that is random comes from the seed: the initial weights, each epoch's order and
each step's masks (drawn from a generator seeded with (seed, step)), so a run resumed from a
checkpoint takes exactly the steps an uninterrupted one would.
"""

from __future__ import annotations

import os

# libgomp's default spin-waiting makes every small parallel op wait out a scheduler slice
# when the cores are shared (measured here, 2 cores: LayerNorm of [16, 16, 32] 8 ms instead
# of 60 us at 2 threads; an MLM step 2x slower). Only effective when torch is not loaded yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import runtime  # noqa: E402  (before numpy/torch: OpenBLAS kernel choice)

import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from . import bert as bert_mod  # noqa: E402
from . import tokenizer as tok_mod  # noqa: E402

MASK_TOKEN = "[MASK]"
PAD_TOKEN = "[PAD]"
CKPT_NAME = "mlm_ckpt.pt"
LOG_NAME = "mlm_log.jsonl"
SUMMARY_NAME = "mlm_summary.json"
CKPT_VERSION = 1

ENGLISH_TEXT_DATASETS = ("movielens-100k", "amazon-all-beauty", "unisrec-scientific")
"""The shared datasets with English text (titles, categories, reviews)."""


@dataclass
class MlmConfig:
    # The encoder (bert.BertConfig's names; vocab_size 0: the vocabulary file's size).
    vocab_size: int = 0
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 512
    max_len: int = 64                  # tokens per sequence with [CLS]/[SEP]; = positions
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    # Masking: each word piece is chosen with mask_prob; a chosen piece becomes [MASK] with
    # mask_token_frac, a random piece with random_token_frac, else stays (BERT's 80/10/10).
    mask_prob: float = 0.15
    mask_token_frac: float = 0.8
    random_token_frac: float = 0.1
    # The softmax: "corpus", over the word pieces of the training texts plus [UNK], which
    # stands for every other id (only a held-out label can be one); "full", over the whole
    # vocabulary, as BERT. On the shared English corpus that is 8,986 classes instead of
    # 30,522, and training runs 1.8x faster (the decoder and softmax were half of a step).
    output_vocab: str = "corpus"
    # Optimisation: AdamW, linear warm-up to lr then linear decay to 0 at max_steps.
    lr: float = 2e-3
    weight_decay: float = 0.01        # not on biases and LayerNorms
    adam_eps: float = 1e-6
    warmup_steps: int = 100            # capped at max_steps // 10
    grad_clip: float = 1.0
    batch_size: int = 128              # sequences per step
    seed: int = 0
    minutes: float = 3.0               # wall-clock cap of one run (0: none)
    steps_per_run: int = 0             # stop this run after so many steps (0: no limit)
    max_steps: int = 0                 # 0: as many as fit in `minutes`, estimated from the
    #                                    first steps' speed and then fixed (kept on resume)
    val_frac: float = 0.02             # of the distinct texts, held out
    val_repeats: int = 4               # masks drawn per validation sequence
    threads: int = 0                   # torch threads (0: every CPU this process may use)
    log_every: int = 20                # steps per mlm_log.jsonl training line
    eval_every: int = 100              # steps per validation loss
    checkpoint_minutes: float = 2.0    # a checkpoint at least this often, and at the end

    # Fields that may change between a run and its resumption.
    RUN_FIELDS = ("minutes", "steps_per_run", "threads", "log_every", "eval_every",
                  "checkpoint_minutes")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MlmConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown MlmConfig field(s): {', '.join(unknown)}")
        return cls(**d)

    def bert_config(self, vocab_size: int) -> bert_mod.BertConfig:
        return bert_mod.BertConfig(
            vocab_size=vocab_size, hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size, max_position_embeddings=self.max_len,
            type_vocab_size=self.type_vocab_size, layer_norm_eps=self.layer_norm_eps,
            pooling="mean", projection_dim=0, normalize=False)

    def check(self) -> None:
        if self.max_len < 3:
            raise ValueError("max_len must leave room for [CLS], one piece and [SEP]")
        if not 0 < self.mask_prob < 1:
            raise ValueError("mask_prob must be in (0, 1)")
        if self.mask_token_frac < 0 or self.random_token_frac < 0 or \
                self.mask_token_frac + self.random_token_frac > 1:
            raise ValueError("mask_token_frac + random_token_frac must be in [0, 1]")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.minutes <= 0 and self.max_steps <= 0:
            raise ValueError("set max_steps or minutes (or both)")
        if self.output_vocab not in ("full", "corpus"):
            raise ValueError(f"output_vocab must be 'full' or 'corpus', not {self.output_vocab!r}")


# --------------------------------------------------------------------------- model

class BertPredictionHeadTransform(nn.Module):
    def __init__(self, c: bert_mod.BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(F.gelu(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, c: bert_mod.BertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.transform = BertPredictionHeadTransform(c)
        self.decoder = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.decoder.weight = word_embeddings.weight          # tied
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))

    def forward(self, x):
        return self.decoder(self.transform(x)) + self.bias


class BertOnlyMLMHead(nn.Module):
    def __init__(self, c: bert_mod.BertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.predictions = BertLMPredictionHead(c, word_embeddings)

    def forward(self, x):
        return self.predictions(x)


class MlmModel(nn.Module):
    """``bert`` is the encoder's own BertModel (shared, not copied); ``cls`` the MLM head."""

    def __init__(self, encoder: bert_mod.TextEncoder):
        super().__init__()
        self.bert = encoder.bert
        self.cls = BertOnlyMLMHead(encoder.config, encoder.bert.embeddings.word_embeddings)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor,
                positions: torch.Tensor,
                candidates: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits at the M positions (a bool [B, T] mask) only: the decoder is the most
        expensive product, so it runs on the masked rows alone. [M, vocab], or [M, K] over
        the K ids in candidates (the tied weights' rows and the bias taken at those ids)."""
        t = input_ids.shape[1]
        mask = torch.arange(t)[None, :] < lengths[:, None]
        hidden = self.bert(input_ids, mask)[positions]
        if candidates is None:
            return self.cls(hidden)
        head = self.cls.predictions
        w = head.decoder.weight.index_select(0, candidates)
        return F.linear(head.transform(hidden), w, head.bias.index_select(0, candidates))


def init_weights(model: nn.Module, generator: torch.Generator, std: float = 0.02) -> None:
    """BERT's initialisation: N(0, 0.02) weights and embeddings, zero biases, LayerNorm 1/0."""
    with torch.no_grad():
        seen = set()
        for name, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            if "LayerNorm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.copy_(std * torch.randn(p.shape, generator=generator))


# --------------------------------------------------------------------------- data

@dataclass
class SpecialIds:
    cls: int
    sep: int
    mask: int
    pad: int
    special: tuple[int, ...]     # never chosen for masking, never a random replacement


def special_ids(tok: tok_mod.Tokenizer) -> SpecialIds:
    if MASK_TOKEN not in tok.vocab:
        raise ValueError(f"vocabulary has no {MASK_TOKEN} token")
    pad = tok.vocab.get(PAD_TOKEN, 0)
    special = sorted({tok.cls_id, tok.sep_id, tok.vocab[MASK_TOKEN], tok.unk_id, pad})
    return SpecialIds(tok.cls_id, tok.sep_id, tok.vocab[MASK_TOKEN], pad, tuple(special))


@dataclass
class OutputVocab:
    """The softmax's classes: all ids (candidates None) or the candidates' ids, with
    class_of mapping every id to its class (ids outside the candidates to [UNK]'s)."""
    candidates: Optional[torch.Tensor]
    class_of: Optional[torch.Tensor]
    size: int

    def classes(self, labels: torch.Tensor) -> torch.Tensor:
        return labels if self.class_of is None else self.class_of[labels]


def output_vocab(kind: str, seqs: Sequence[Sequence[int]], vocab_size: int,
                 sp: SpecialIds, unk_id: int) -> OutputVocab:
    if kind == "full":
        return OutputVocab(None, None, vocab_size)
    ids = np.zeros(vocab_size, dtype=bool)
    for s in seqs:
        ids[np.asarray(s, dtype=np.int64)] = True
    ids[list(sp.special)] = False
    cand = np.concatenate([np.flatnonzero(ids), [unk_id]]).astype(np.int64)
    class_of = np.full(vocab_size, len(cand) - 1, dtype=np.int64)
    class_of[cand] = np.arange(len(cand))
    return OutputVocab(torch.from_numpy(cand), torch.from_numpy(class_of), len(cand))


def text_to_sequences(tok: tok_mod.Tokenizer, text: str, max_len: int) -> list[list[int]]:
    """[CLS] pieces [SEP] sequences of at most max_len; a text with more pieces than fit is
    split into near-equal consecutive windows; a text with no pieces gives none."""
    ids = [tok.vocab[p] for p in tok.tokenize(text)]
    if not ids:
        return []
    room = max_len - 2
    n = -(-len(ids) // room)
    size = -(-len(ids) // n)
    return [[tok.cls_id] + ids[i:i + size] + [tok.sep_id] for i in range(0, len(ids), size)]


def split_texts(texts: Sequence[str], val_frac: float, seed: int) -> tuple[list[str], list[str]]:
    """Train and validation texts: val_frac of the distinct texts (at least one when there
    are two or more), chosen by a seeded permutation; copies of a text stay on one side."""
    distinct = sorted(set(texts))
    n_val = 0
    if len(distinct) >= 2 and val_frac > 0:
        n_val = max(1, int(round(val_frac * len(distinct))))
    rng = np.random.default_rng([seed, 1])
    val = {distinct[i] for i in rng.permutation(len(distinct))[:n_val]}
    return [t for t in texts if t not in val], [t for t in texts if t in val]


def mask_batch(ids: torch.Tensor, lengths: torch.Tensor, cfg: MlmConfig, sp: SpecialIds,
               vocab_size: int, generator: torch.Generator):
    """BERT's masking of one padded batch. Returns (inputs, positions [B, T] bool, labels [M]).

    Each non-special token inside its sequence is chosen with probability mask_prob; of the
    chosen, mask_token_frac become [MASK], random_token_frac a uniformly drawn non-special
    id, the rest stay as they are. Labels are the original ids at the chosen positions."""
    b, t = ids.shape
    valid = torch.arange(t)[None, :] < lengths[:, None]
    candidate = valid & ~torch.isin(ids, torch.tensor(sp.special))
    u = torch.rand((b, t), generator=generator)
    positions = candidate & (u < cfg.mask_prob)
    r = torch.rand((b, t), generator=generator)
    to_mask = positions & (r < cfg.mask_token_frac)
    to_random = positions & (r >= cfg.mask_token_frac) & \
        (r < cfg.mask_token_frac + cfg.random_token_frac)
    # uniform over the non-special ids: draw from [0, V - n_special) and skip the specials
    rand = torch.randint(0, vocab_size - len(sp.special), (b, t), generator=generator)
    for s in sp.special:
        rand = rand + (rand >= s).to(rand.dtype)
    inputs = ids.clone()
    inputs[to_mask] = sp.mask
    inputs[to_random] = rand[to_random]
    return inputs, positions, ids[positions]


def pad_batch(seqs: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
    return ids, torch.tensor([len(s) for s in seqs], dtype=torch.long)


class BatchPlan:
    """Which sequences make step s's batch: epoch e = s // batches_per_epoch is a seeded
    permutation, cut into groups of 50 batches, each group sorted by length (so a batch
    holds similar lengths: little padding) and its batches shuffled."""

    GROUP = 50

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        self.lengths = np.asarray(lengths)
        self.batch_size = min(batch_size, len(lengths))
        self.seed = seed
        self.per_epoch = -(-len(lengths) // self.batch_size)
        self._epoch = -1
        self._batches: list[np.ndarray] = []

    def batch(self, step: int) -> np.ndarray:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, 2, epoch])
            order = rng.permutation(len(self.lengths))
            batches = []
            span = self.batch_size * self.GROUP
            for g in range(0, len(order), span):
                group = order[g:g + span]
                group = group[np.argsort(self.lengths[group], kind="stable")]
                chunk = [group[k:k + self.batch_size] for k in range(0, len(group), self.batch_size)]
                batches += [chunk[j] for j in rng.permutation(len(chunk))]
            self._batches, self._epoch = batches, epoch
        return self._batches[i]


def texts_fingerprint(texts: Iterable[str], vocab_path, do_lower_case: bool) -> str:
    h = hashlib.sha256()
    h.update(Path(vocab_path).read_bytes())
    h.update(b"lower" if do_lower_case else b"cased")
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------- training

def lr_at(step: int, cfg: MlmConfig, max_steps: Optional[int]) -> float:
    """Linear warm-up over min(warmup_steps, max_steps // 10) steps, then linear decay to 0
    at max_steps. Before max_steps is known (the first steps of an automatic run) the
    configured warm-up applies."""
    warm = cfg.warmup_steps if max_steps is None else min(cfg.warmup_steps, max(1, max_steps // 10))
    warm = max(1, warm)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    if max_steps is None:
        return cfg.lr
    return cfg.lr * max(0.0, (max_steps - step) / max(1, max_steps - warm))


def _param_groups(model: nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate_mlm(model: MlmModel, seqs: Sequence[Sequence[int]], cfg: MlmConfig,
                 sp: SpecialIds, vocab_size: int, unigram_logp: Optional[np.ndarray] = None,
                 batch_size: int = 256, out_vocab: Optional[OutputVocab] = None) -> dict:
    """Mean masked-token loss and accuracy over seqs, with fixed masks (seeded from the
    config's seed, val_repeats draws per sequence), and the unigram baseline's loss on the
    same masked tokens when unigram_logp (log-probabilities per output class) is given."""
    ov = out_vocab or OutputVocab(None, None, vocab_size)
    was_training = model.training
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
    g = torch.Generator().manual_seed(cfg.seed * 7919 + 17)
    loss_sum, correct, n, uni_sum = 0.0, 0, 0, 0.0
    for _ in range(max(1, cfg.val_repeats)):
        for k in range(0, len(order), batch_size):
            ids, lens = pad_batch([seqs[i] for i in order[k:k + batch_size]], sp.pad)
            inputs, pos, labels = mask_batch(ids, lens, cfg, sp, vocab_size, g)
            if labels.numel() == 0:
                continue
            logits = model(inputs, lens, pos, ov.candidates)
            labels = ov.classes(labels)
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(-1) == labels).sum())
            n += labels.numel()
            if unigram_logp is not None:
                uni_sum += float(-unigram_logp[labels.numpy()].sum())
    model.train(was_training)
    out = {"loss": loss_sum / n if n else float("nan"), "acc": correct / n if n else float("nan"),
           "masked_tokens": n}
    if unigram_logp is not None:
        out["unigram_loss"] = uni_sum / n if n else float("nan")
    return out


def unigram_log_probs(seqs: Sequence[Sequence[int]], vocab_size: int, sp: SpecialIds,
                      out_vocab: Optional[OutputVocab] = None) -> np.ndarray:
    """log p(class) of the training word pieces, add-one smoothed over the output classes
    (all non-special ids, or the candidates): the best context-free guess, the baseline an
    MLM must beat."""
    counts = np.zeros(vocab_size, dtype=np.float64)
    for s in seqs:
        np.add.at(counts, np.asarray(s, dtype=np.int64), 1)
    counts[list(sp.special)] = 0
    if out_vocab is None or out_vocab.class_of is None:
        counts += 1
        counts[list(sp.special)] = 0
    else:
        per_class = np.zeros(out_vocab.size, dtype=np.float64)
        np.add.at(per_class, out_vocab.class_of.numpy(), counts)
        counts = per_class + 1
    p = counts / counts.sum()
    with np.errstate(divide="ignore"):
        return np.log(p)


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _progress_bar(total: Optional[int], initial: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="step", file=sys.stderr, dynamic_ncols=True)


def pretrain(texts: list[str], vocab_path, do_lower_case: bool, config: MlmConfig,
             out_dir, progress: bool = True,
             log: Callable[[str], None] = print) -> bert_mod.TextEncoder:
    """MLM pre-training of a new encoder on texts; returns it (pooling "mean", eval mode).

    out_dir receives mlm_log.jsonl (a line per log_every steps: loss, masked-token accuracy,
    lr, tokens/s; a line per validation), mlm_ckpt.pt (every checkpoint_minutes and at the
    end) and mlm_summary.json (corpus size, steps, time, speed, losses). A rerun with the
    same texts, vocabulary and config resumes from mlm_ckpt.pt; only RUN_FIELDS may differ.
    Training stops at max_steps or, cleanly after a whole step, at the wall-clock cap.
    """
    cfg = config
    cfg.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    cap_s = cfg.minutes * 60 if cfg.minutes > 0 else math.inf
    threads = runtime.set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)

    tok = tok_mod.Tokenizer.from_file(vocab_path, do_lower_case)
    vocab_size = cfg.vocab_size or len(tok.tokens)
    if vocab_size < len(tok.tokens):
        raise ValueError(f"vocab_size {vocab_size} is smaller than the vocabulary "
                         f"({len(tok.tokens)} tokens)")
    sp = special_ids(tok)
    train_texts, val_texts = split_texts(texts, cfg.val_frac, cfg.seed)
    train_seqs = [s for t in train_texts for s in text_to_sequences(tok, t, cfg.max_len)]
    val_seqs = [s for t in val_texts for s in text_to_sequences(tok, t, cfg.max_len)]
    if not train_seqs:
        raise ValueError("no training text with word pieces")
    n_pieces = sum(len(s) - 2 for s in train_seqs)
    n_val_pieces = sum(len(s) - 2 for s in val_seqs)
    corpus = {"texts": len(texts), "distinct_texts": len(set(texts)),
              "train_texts": len(train_texts), "val_texts": len(val_texts),
              "train_sequences": len(train_seqs), "val_sequences": len(val_seqs),
              "train_word_pieces": n_pieces, "val_word_pieces": n_val_pieces,
              "vocab_size": vocab_size, "do_lower_case": bool(do_lower_case)}
    log(f"mlm: {len(texts)} texts ({len(train_texts)} train, {len(val_texts)} val), "
        f"{len(train_seqs)} + {len(val_seqs)} sequences, {n_pieces} + {n_val_pieces} word "
        f"pieces; vocabulary {vocab_size}; {threads} threads")

    encoder = bert_mod.TextEncoder(cfg.bert_config(vocab_size))
    model = MlmModel(encoder)
    init_weights(model, torch.Generator().manual_seed(cfg.seed))
    optim = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr,
                              betas=(0.9, 0.999), eps=cfg.adam_eps)
    plan = BatchPlan([len(s) for s in train_seqs], cfg.batch_size, cfg.seed)
    ov = output_vocab(cfg.output_vocab, train_seqs, vocab_size, sp, tok.unk_id)
    unigram = unigram_log_probs(train_seqs, vocab_size, sp, ov)
    corpus["output_classes"] = ov.size

    fingerprint = texts_fingerprint(texts, vocab_path, do_lower_case)
    train_fields = {k: v for k, v in cfg.to_dict().items() if k not in MlmConfig.RUN_FIELDS}
    ckpt_path = out / CKPT_NAME
    step, train_s, tokens_seen, max_steps = 0, 0.0, 0, (cfg.max_steps or None)
    history: list[dict] = []
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu")
        if ck.get("version") != CKPT_VERSION:
            raise ValueError(f"{ckpt_path}: checkpoint version {ck.get('version')}, "
                             f"expected {CKPT_VERSION}")
        if ck["train_fields"] != train_fields or ck["fingerprint"] != fingerprint:
            what = "config" if ck["train_fields"] != train_fields else "texts or vocabulary"
            raise ValueError(f"{ckpt_path} was written with another {what}; use another "
                             "output folder or remove the checkpoint to start afresh")
        model.load_state_dict(ck["model"])
        optim.load_state_dict(ck["optimizer"])
        step, train_s, tokens_seen = ck["step"], ck["train_seconds"], ck["tokens_seen"]
        max_steps, history = ck["max_steps"], ck.get("history", [])
        log(f"mlm: resuming {ckpt_path} at step {step}"
            + (f" of {max_steps}" if max_steps else ""))
        # drop log lines of steps after the checkpoint (a run that ended without one)
        log_path = out / LOG_NAME
        if log_path.exists():
            kept = [line for line in log_path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= step]
            log_path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    log_f = open(out / LOG_NAME, "a", encoding="utf-8")

    def write_log(rec: dict) -> None:
        log_f.write(json.dumps(rec) + "\n")
        log_f.flush()

    def checkpoint() -> None:
        _atomic_save({"version": CKPT_VERSION, "train_fields": train_fields,
                      "fingerprint": fingerprint, "step": step, "max_steps": max_steps,
                      "train_seconds": train_s, "tokens_seen": tokens_seen,
                      "history": history, "model": model.state_dict(),
                      "optimizer": optim.state_dict()}, ckpt_path)

    def validate() -> dict:
        t0 = time.monotonic()
        v = evaluate_mlm(model, val_seqs, cfg, sp, vocab_size, unigram,
                         out_vocab=ov) if val_seqs else {}
        val_time[0] = time.monotonic() - t0
        rec = {"step": step, "val_loss": v.get("loss"), "val_acc": v.get("acc"),
               "unigram_val_loss": v.get("unigram_loss"),
               "val_masked_tokens": v.get("masked_tokens", 0)}
        history.append(rec)
        write_log(rec)
        return rec

    start_step, start_tokens, start_train_s = step, tokens_seen, train_s
    run_t0 = time.monotonic()
    last_ckpt = run_t0
    probe: list[float] = []
    val_time = [0.0]
    win_loss, win_correct, win_n, win_tokens, win_t0 = 0.0, 0, 0, 0, time.monotonic()
    bar = _progress_bar(max_steps, step, progress)
    stopped = "max_steps"
    first_val = None
    if step == 0 and val_seqs:
        first_val = validate()
        log(f"mlm: step 0 val loss {first_val['val_loss']:.3f} "
            f"(unigram baseline {first_val['unigram_val_loss']:.3f})")
    model.train()
    step_s = 0.0
    try:
        while max_steps is None or step < max_steps:
            now = time.monotonic()
            if now - t_start + step_s + val_time[0] > cap_s:  # room for the last validation
                stopped = "time cap"
                break
            if cfg.steps_per_run and step - start_step >= cfg.steps_per_run:
                stopped = "steps_per_run"
                break
            t0 = now
            batch = [train_seqs[i] for i in plan.batch(step)]
            ids, lens = pad_batch(batch, sp.pad)
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            inputs, pos, labels = mask_batch(ids, lens, cfg, sp, vocab_size, g)
            for group in optim.param_groups:
                group["lr"] = lr_at(step, cfg, max_steps)
            if labels.numel():
                logits = model(inputs, lens, pos, ov.candidates)
                labels = ov.classes(labels)
                loss = F.cross_entropy(logits, labels)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optim.step()
                win_loss += float(loss) * labels.numel()
                win_correct += int((logits.detach().argmax(-1) == labels).sum())
                win_n += labels.numel()
            n_tok = int(lens.sum())
            tokens_seen += n_tok
            win_tokens += n_tok
            step += 1
            step_s = time.monotonic() - t0
            train_s += step_s
            if bar is not None:
                bar.update(1)
            # automatic length: time steps 5..24, then fix max_steps for the time left
            if max_steps is None:
                if step > 4:
                    probe.append(step_s)
                if len(probe) >= 20 or (cap_s - (time.monotonic() - t_start)) < 0:
                    per = float(np.mean(probe)) if probe else step_s
                    left = cap_s - (time.monotonic() - t_start)
                    evals = 1 + (left / per) / max(1, cfg.eval_every)
                    max_steps = max(step, step + int((0.98 * left - evals * val_time[0]) / per))
                    log(f"mlm: {per * 1000:.0f} ms per step; {max_steps} steps fit in "
                        f"{cfg.minutes:g} minutes")
                    if bar is not None:
                        bar.total = max_steps
                        bar.refresh()
            if step % cfg.log_every == 0 or step == max_steps:
                dt = time.monotonic() - win_t0
                rec = {"step": step, "loss": win_loss / win_n if win_n else None,
                       "acc": win_correct / win_n if win_n else None,
                       "lr": lr_at(step - 1, cfg, max_steps), "tokens": tokens_seen,
                       "tokens_per_s": win_tokens / dt if dt > 0 else None,
                       "train_s": round(train_s, 2)}
                write_log(rec)
                if bar is not None and rec["loss"] is not None:
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", acc=f"{rec['acc']:.3f}")
                win_loss, win_correct, win_n, win_tokens, win_t0 = 0.0, 0, 0, 0, time.monotonic()
            if val_seqs and cfg.eval_every and step % cfg.eval_every == 0 and step != max_steps:
                validate()
            if time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = time.monotonic()
    finally:
        if bar is not None:
            bar.close()
    if val_seqs and (not history or history[-1]["step"] != step):
        validate()
    checkpoint()
    log_f.close()

    run_s = time.monotonic() - run_t0
    done_tokens = tokens_seen - start_tokens
    run_train_s = train_s - start_train_s
    train_losses = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    train_losses = [r for r in train_losses if r.get("loss") is not None]
    summary = {
        "corpus": corpus, "config": cfg.to_dict(), "threads": threads,
        "steps": step, "max_steps": max_steps, "stopped": stopped,
        "steps_this_run": step - start_step, "run_seconds": round(run_s, 1),
        "train_seconds": round(train_s, 1), "tokens_seen": tokens_seen,
        "tokens_per_s_this_run": done_tokens / run_train_s if run_train_s > 0 else None,
        "tokens_per_s": tokens_seen / train_s if train_s > 0 else None,
        "first_train_loss": train_losses[0]["loss"] if train_losses else None,
        "last_train_loss": train_losses[-1]["loss"] if train_losses else None,
        "last_train_acc": train_losses[-1]["acc"] if train_losses else None,
        "val": history,
    }
    (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=1) + "\n")
    final = history[-1] if history else {}
    log(f"mlm: {stopped} at step {step}" + (f" of {max_steps}" if max_steps else "")
        + f"; {run_s:.0f} s this run, {summary['tokens_per_s_this_run'] or 0:.0f} tokens/s"
        + (f"; val loss {final['val_loss']:.3f} (unigram {final['unigram_val_loss']:.3f}),"
           f" masked accuracy {final['val_acc']:.3f}" if final.get("val_loss") is not None else ""))
    return encoder.eval()


# --------------------------------------------------------------------------- vectors

@torch.no_grad()
def encode_texts(encoder: bert_mod.TextEncoder, texts: Sequence[str], vocab_path,
                 do_lower_case: bool, max_len: int, batch_size: int = 256) -> np.ndarray:
    """[n, output_dim] float32: each text as [CLS] pieces [SEP] (truncated to max_len, as
    the C encoder does) through the encoder in eval mode. Batches hold sequences sorted by
    (length, position), so the result does not depend on the order of the other texts'
    lengths beyond that. A text with no word pieces ("" or only spaces) gets zeros."""
    tok = tok_mod.Tokenizer.from_file(vocab_path, do_lower_case)
    was_training = encoder.training
    encoder.eval()
    out = np.zeros((len(texts), encoder.config.output_dim), dtype=np.float32)
    encoded = [tok.encode(t, max_len) for t in texts]
    keep = sorted((i for i, e in enumerate(encoded) if len(e) > 2),
                  key=lambda i: (len(encoded[i]), i))
    pad = tok.vocab.get(PAD_TOKEN, 0)
    for k in range(0, len(keep), batch_size):
        rows = keep[k:k + batch_size]
        ids, lens = pad_batch([encoded[i] for i in rows], pad)
        out[rows] = encoder(ids, lens).float().numpy()
    encoder.train(was_training)
    return out


# --------------------------------------------------------------------------- corpus

def _one_line(text: str) -> str:
    return " ".join(text.split())


def corpus_texts(names: Sequence[str] = ENGLISH_TEXT_DATASETS, dedupe: bool = True,
                 log: Callable[[str], None] = print) -> list[str]:
    """Every text the named shared datasets hold: item text (Item.text(): title, category,
    brand; for MovieLens the title with year and the genres) and event text (Amazon
    reviews: summary and body). Whitespace runs become one space (the tokenizer treats them
    alike); empty texts are dropped, copies too when dedupe (the 5-core review dump repeats
    reviews across style variants). A dataset whose folder is absent is skipped with a
    message naming the folder."""
    from . import datasets

    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        spec = datasets.get(name)
        if not spec.available():
            log(f"corpus: {name}: skipped, {spec.path()} not found (set DR_DATA_DIR)")
            continue
        result = spec.load()
        item_texts = [_one_line(item.text()) for item in result.items.values()]
        event_texts = [_one_line(e.text) for e in result.events if e.text]
        n_before = len(out)
        for t in item_texts + event_texts:
            if not t or (dedupe and t in seen):
                continue
            seen.add(t)
            out.append(t)
        log(f"corpus: {name}: {len(item_texts)} item texts, {len(event_texts)} event texts, "
            f"{len(out) - n_before} kept")
    return out


def read_text_file(path) -> list[str]:
    """One text per line (UTF-8); blank lines skipped."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f if line.strip()]


__all__ = ["MlmConfig", "MlmModel", "pretrain", "encode_texts", "corpus_texts",
           "read_text_file", "mask_batch", "text_to_sequences", "split_texts",
           "evaluate_mlm", "unigram_log_probs", "ENGLISH_TEXT_DATASETS"]
