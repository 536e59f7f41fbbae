"""driftrec-train: one run from a config file to a report and an exported bundle.

    /usr/bin/python3 models/train/train.py CONFIG.json [--run-dir DIR] [--fresh] [--no-progress]

A run directory holds config.json (as resolved), log.txt, epochs.jsonl, checkpoint.pt
(resumable: rerunning the same command continues after the last finished epoch), metrics.json,
plots/*.png, report.md and, when exported, bundle/ (docs/bundle.md). Exit status 0 ok, 2 bad
config or data (one line naming the problem), 1 anything else.
"""

from __future__ import annotations

from . import runtime  # noqa: F401  (before numpy/torch: BLAS kernel choice)

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from . import baselines
from . import datasets as datasets_mod
from . import evaluate as evaluate_mod
from . import train as train_mod
from .clean import clean_events
from .events import EVENT_TYPES, DataError, read_events, read_items
from .split import Split, leave_one_out

REPO = Path(__file__).resolve().parents[3]
DEFAULT_RUNS = REPO / "models" / "train" / "out" / "runs"
RESUMABLE = {"max_epochs", "time_budget_s", "patience", "threads", "refit"}
"""Model options a resumed run may change (to train longer); any other change needs --fresh."""


@dataclass
class RunConfig:
    name: str
    dataset: str = ""                      # a name from datasets.py, or "" with events/items
    events: str = ""
    items: str = ""
    time_unit: str = "auto"                # seconds | steps | auto (steps when ts < 1e8)
    event_types: list = field(default_factory=list)  # keep only these types ([]: all)
    collapse_funnel: bool = False          # one event per (user, item): see collapse_funnel()
    model: dict = field(default_factory=dict)
    text: dict = field(default_factory=dict)  # {"vectors": .npy} or {"model_dir": text model}
    baselines: list = field(default_factory=lambda: list(baselines.BASELINES))
    cold_items: float = 0.0
    export: bool = True
    c_eval: bool = True                    # evaluate the exported int8 model through the C library
    ann: bool = True
    truth: str = ""                        # demo shop ground truth (truth.json): interest-shift check
    seed: int = 0

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: {e}") from e
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: the config must be a JSON object")
        base = Path(path).resolve().parent
        for key in ("events", "items", "truth"):
            if raw.get(key):
                raw[key] = str((base / raw[key]).resolve()) if not os.path.isabs(raw[key]) else raw[key]
        text = raw.get("text")
        if isinstance(text, dict):  # paths in the text section are relative to the config too
            for key in ("model_dir", "vectors"):
                if isinstance(text.get(key), str) and not text[key].startswith("shared:") \
                        and not os.path.isabs(text[key]):
                    text[key] = str((base / text[key]).resolve())
            pre = text.get("pretrain")
            if isinstance(pre, dict) and isinstance(pre.get("vocab"), str) \
                    and not pre["vocab"].startswith("shared:") and not os.path.isabs(pre["vocab"]):
                pre["vocab"] = str((base / pre["vocab"]).resolve())
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}")
        if "name" not in raw:
            raise ValueError(f"{path}: 'name' is required")
        c = cls(**raw)
        if not c.dataset and not c.events:
            raise ValueError(f"{path}: give 'dataset' or 'events'")
        train_mod.TrainConfig.from_dict(c.model)  # validates early
        return c


class Run:
    def __init__(self, config: RunConfig, run_dir: Path, progress: bool = True):
        self.config = config
        self.dir = run_dir
        self.progress = progress
        self.dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.dir / "log.txt", "a", encoding="utf-8")

    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, file=sys.stderr, flush=True)
        self._log.write(line + "\n")
        self._log.flush()


# --------------------------------------------------------------------------- data

def load_data(c: RunConfig, log) -> tuple[train_mod.EventSequences, Optional[list], dict]:
    if c.dataset:
        spec = datasets_mod.get(c.dataset)
        if not spec.available():
            raise FileNotFoundError(f"dataset {c.dataset}: {spec.path()} not found (set DR_DATA_DIR)")
        loaded = spec.load()
        events, items = loaded.events, loaded.items
    else:
        events = read_events(c.events)
        items = {i.item_id: i for i in read_items(c.items)} if c.items else None
    cleaned, report = clean_events(events)
    if c.event_types:
        bad = sorted(set(c.event_types) - set(EVENT_TYPES))
        if bad:
            raise ValueError(f"event_types: unknown type(s) {', '.join(bad)}")
        keep = set(c.event_types)
        n_before = len(cleaned)
        cleaned = [e for e in cleaned if e.event_type in keep]
        log(f"kept {len(cleaned)} of {n_before} events of types {', '.join(c.event_types)}")
        if not cleaned:
            raise ValueError("no events left after the event_types filter")
    if c.collapse_funnel:
        n_before = len(cleaned)
        cleaned = collapse_funnel(cleaned)
        log(f"funnel collapsed: {n_before} events -> {len(cleaned)} (one per user and item)")
    unit = c.time_unit
    if unit == "auto":
        unit = "steps" if max(e.ts for e in cleaned) < 10**8 else "seconds"
    data = train_mod.build_event_sequences(cleaned, unit)
    item_list = None
    if items:
        item_list = [items.get(i) for i in data.seq.item_ids]
    log(f"data: {len(data.seq.user_ids)} users, {data.seq.n_items} items, {data.seq.n_events} events "
        f"(time in {unit}); cleaning: {report.summary()}")
    texts = [e.text for e in cleaned if e.text]
    return data, item_list, {"clean": report.to_json(), "time_unit": unit, "texts": texts}


def collapse_funnel(events: list) -> list:
    """One event per (user, item): at the first contact (its ts and row), typed by the strongest
    action the user took on the item (EVENT_TYPES order), with the longest dwell, the total
    amount and the last rating. A shop log repeats an item down the funnel (view, click, cart,
    purchase); without this, "the next item" is mostly an item the user already has open."""
    rank = {t: i for i, t in enumerate(EVENT_TYPES)}
    first: dict = {}
    for e in events:
        key = (e.user_id, e.item_id)
        f = first.get(key)
        if f is None:
            first[key] = e
            continue
        if e.ts < f.ts or (e.ts == f.ts and e.row < f.row):
            e, f = f, e
            first[key] = f
        if rank[e.event_type] > rank[f.event_type]:
            f.event_type = e.event_type
        if e.dwell_s is not None:
            f.dwell_s = max(f.dwell_s or 0.0, e.dwell_s)
        if e.amount is not None:
            f.amount = (f.amount or 0.0) + e.amount
        if e.rating is not None:
            f.rating = e.rating
    return sorted(first.values(), key=lambda e: e.row)


def resolve_data_path(path: str) -> Path:
    """``shared:REL`` is REL under the shared data folder (DR_DATA_DIR); anything else a path."""
    if path.startswith("shared:"):
        return datasets_mod.data_dir() / path[len("shared:"):]
    return Path(path)


def corpus_vocab(texts: list[str], do_lower_case: bool, path: Path, max_words: int = 8000) -> Path:
    """A WordPiece vocabulary from a corpus, for when no BERT vocabulary is at hand: the special
    tokens, every character seen (alone and as a ``##`` continuation, so nothing is [UNK])
    and the most frequent whole words of BERT's basic tokenisation."""
    from collections import Counter

    from . import tokenizer as tok_mod
    basic = tok_mod.Tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], do_lower_case)
    words: Counter = Counter()
    chars: set = set()
    for t in texts:
        for w in basic.basic_tokens(t):
            words[w] += 1
            chars.update(w)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted(chars) + ["##" + ch for ch in sorted(chars)]
    seen = set(vocab)
    vocab += [w for w, _ in words.most_common(max_words) if w not in seen and len(w) > 1]
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return path


def text_vectors(c: RunConfig, data: train_mod.EventSequences, items, events_text: list[str],
                 run: Run, progress: bool) -> tuple[Optional[np.ndarray], Optional[Path]]:
    """Item text vectors (n_items x dim, zeros where an item has no text) and the text model
    directory to ship in the bundle, per the config's "text" section:

    * ``{"vectors": "x.npy"}``: precomputed, rows named by x.ids.txt;
    * ``{"model_dir": DIR}``: encode the items' text with an existing text model (a
      pre-trained one, or a Hugging Face checkpoint imported with convert.py);
    * ``{"pretrain": {"vocab": ..., "do_lower_case": ..., "minutes": 3, ...MlmConfig}}``:
      pre-train BERT-mini with masked-language modelling on the items' and events' text first.
    """
    t = dict(c.text)
    if not t:
        return None, None
    max_len = int(t.pop("max_len", 64))
    if "vectors" in t:
        vec = np.load(t["vectors"])
        ids = Path(t["vectors"]).with_suffix(".ids.txt").read_text(encoding="utf-8").splitlines()
        index = {i: k for k, i in enumerate(ids)}
        out = np.zeros((data.seq.n_items, vec.shape[1]), np.float32)
        for k, item in enumerate(data.seq.item_ids):
            if item in index:
                out[k] = vec[index[item]]
        return out, None
    if items is None:
        raise ValueError("the config has a text section but the data has no item text")
    texts = [it.text() if it is not None else "" for it in items]
    from . import export, mlm
    if "model_dir" in t:
        model_dir = resolve_data_path(t["model_dir"])
        enc = export.load_bert(model_dir)
    elif "pretrain" in t:
        pt = dict(t["pretrain"])
        vocab = resolve_data_path(pt.pop("vocab"))
        dlc = bool(pt.pop("do_lower_case", True))
        corpus = [x for x in texts + events_text if x.strip()]
        if not vocab.exists():
            if pt.pop("vocab_fallback", "") != "corpus":
                raise FileNotFoundError(f"text.pretrain.vocab: {vocab} not found")
            run.log(f"{vocab} not found: building a vocabulary from the corpus instead")
            vocab = corpus_vocab(corpus, dlc, run.dir / "corpus_vocab.txt")
        pt.pop("vocab_fallback", None)
        run.log(f"pre-training the text encoder on {len(corpus)} texts ({pt.get('minutes', 3)} min cap)")
        cfg = mlm.MlmConfig(**{"max_len": max_len, **pt})
        enc = mlm.pretrain(corpus, vocab, dlc, cfg, run.dir / "text_pretrain", progress=progress, log=run.log)
        model_dir = run.dir / "text"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        export.export_bert(enc, model_dir, dtype="int8", name=f"{c.name}-text", vocab=vocab, do_lower_case=dlc)
        enc = export.load_bert(model_dir)  # encode with the weights the server will have
    else:
        raise ValueError("text: give 'vectors', 'model_dir' or 'pretrain'")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    vocab_file = model_dir / manifest["vocab"]["file"]
    run.log(f"encoding {len(texts)} item texts with {model_dir.name}")
    vec = mlm.encode_texts(enc, texts, str(vocab_file), manifest["vocab"]["do_lower_case"], max_len)
    return vec, model_dir


# --------------------------------------------------------------------------- evaluation

def test_split(data: train_mod.EventSequences, cold: float) -> tuple[Split, train_mod.EventSequences]:
    split = leave_one_out(data.seq, target="test", cold_fraction=cold, seed=0)
    if cold > 0:
        dropped = train_mod._drop_cold(data, split.cold_items)
        return split, dropped
    return split, data


def evaluate_driftrec(res: train_mod.TrainResult, split: Split, data: train_mod.EventSequences,
                      c: train_mod.TrainConfig) -> tuple[dict, np.ndarray, np.ndarray]:
    """Per-user metrics of the PyTorch fp32 model on the test targets; also user and item vectors."""
    slices = []
    for u in split.users:
        n = len(data.seq.seqs[u]) - 1  # history = every event before the last
        slices.append((int(u), max(0, n - c.max_events), n))
    uv = train_mod.user_vectors(res.model, res.featurizer, slices)
    with torch.no_grad():
        iv = res.model.item_vectors().numpy()
    ranks, cands = train_mod.rank_users(uv, iv, split.histories, split.targets)
    return evaluate_mod.metrics_from_ranks(ranks, (10, 20), "", cands), uv, iv


def summarise(per_user: dict) -> dict:
    return {m: evaluate_mod.mean_ci(v) for m, v in per_user.items()}


def paired(a: dict, b: dict) -> dict:
    return {m: evaluate_mod.mean_ci(a[m] - b[m]) for m in a if m in b}


def run_baselines(split: Split, names, items, log) -> dict[str, evaluate_mod.ModelResult]:
    text = [it.text() if it is not None else "" for it in items] if items else None
    names = [n for n in names if n != "bow-text" or text is not None]
    cfg = evaluate_mod.EvalConfig(ks=(10, 20), negatives=0, progress=False)
    out = {}
    for n in names:
        t0 = time.perf_counter()
        r = evaluate_mod.evaluate_model(baselines.make(n), split, cfg, text)
        out[n] = r
        log(f"baseline {n}: NDCG@10 {r.per_user['NDCG@10'].mean():.4f} ({time.perf_counter() - t0:.0f} s)")
    return out


def driftrec_score_tool() -> Path:
    build = Path(os.environ.get("DR_BUILD_DIR", REPO / "build"))
    tool = build / "models" / "driftrec-score"
    if not tool.exists():
        raise FileNotFoundError(f"{tool} not found: build the project first (make build) or set DR_BUILD_DIR")
    return tool


def c_library_eval(bundle: Path, split: Split, data: train_mod.EventSequences, c: train_mod.TrainConfig,
                   run: Run, ann: bool) -> dict[str, Any]:
    """Score the test users with the exported bundle through driftrec-score; per-user metrics."""
    tool = driftrec_score_tool()
    work = run.dir / "c_eval"
    work.mkdir(exist_ok=True)
    ev_path, tg_path = work / "events.jsonl", work / "targets.jsonl"
    item_ids = data.seq.item_ids
    with open(ev_path, "w", encoding="utf-8") as ev, open(tg_path, "w", encoding="utf-8") as tg:
        for u, target in zip(split.users, split.targets):
            n = len(data.seq.seqs[u]) - 1
            uid = data.seq.user_ids[u]
            for k in range(n):  # the whole history: the tool replays the last max_events itself
                raw, present = data.numeric_raw[u][k], data.numeric_present[u][k]
                obj = {"user_id": uid, "item_id": item_ids[data.seq.seqs[u][k]], "ts": int(data.ts[u][k]),
                       "event_type": EVENT_TYPES[data.types[u][k]],
                       "dwell_s": float(np.expm1(raw[0])) if present[0] else None,
                       "amount": float(np.expm1(raw[1])) if present[1] else None,
                       "rating": float(raw[2]) if present[2] else None}
                ev.write(json.dumps(obj) + "\n")
            tg.write(json.dumps({"user_id": uid, "target": item_ids[target]}) + "\n")
    out: dict[str, Any] = {}
    for mode in (["exact", "ann"] if ann else ["exact"]):
        args = [str(tool), str(bundle), "--events", str(ev_path), "--targets", str(tg_path), "--k", "20"]
        if mode == "ann":
            args += ["--ann"]
        t0 = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"driftrec-score {mode} failed: {proc.stderr.strip()[-2000:]}")
        rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        if len(rows) != len(split.targets):
            raise RuntimeError(f"driftrec-score {mode}: {len(rows)} results for {len(split.targets)} targets")
        ranks = np.array([r["rank"] if r["rank"] >= 0 else 10**9 for r in rows], np.int64)
        cands = np.array([r.get("n_candidates", 0) for r in rows], np.int64) if mode == "exact" else None
        out[mode] = {"per_user": evaluate_mod.metrics_from_ranks(ranks, (10, 20), "", cands),
                     "seconds": round(secs, 2), "command": " ".join(args[:2]) + " ..."}
        run.log(f"C library ({mode}): NDCG@10 {out[mode]['per_user']['NDCG@10'].mean():.4f} in {secs:.1f} s")
    return out


# --------------------------------------------------------------------------- run

def sha_short(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:8]


def execute(c: RunConfig, run_dir: Path, fresh: bool = False, progress: bool = True) -> dict:
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    run = Run(c, run_dir, progress)
    tc = train_mod.TrainConfig.from_dict({"seed": c.seed, **c.model})
    threads = train_mod_threads(tc)
    (run.dir / "config.json").write_text(json.dumps({**asdict(c), "model": tc.to_dict()}, indent=1) + "\n")
    run.log(f"run {c.name} in {run.dir} ({threads} torch threads)")
    t_start = time.perf_counter()
    data, items, data_info = load_data(c, run.log)
    if data_info["time_unit"] == "steps" and "half_life" not in c.model:
        tc.half_life = 4.0  # events, for order-only data
    text, text_dir = text_vectors(c, data, items, data_info["texts"], run, progress)
    ckpt_path = run.dir / "checkpoint.pt"
    resume = None
    if ckpt_path.exists():
        resume = torch.load(ckpt_path)
        old, new = resume.get("config", {}), tc.to_dict()
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE)
        if changed:
            raise ValueError(f"{ckpt_path} was written with another model config ({', '.join(changed)}); "
                             f"use --fresh")

    def save_ckpt(state: dict) -> None:
        state["config"] = tc.to_dict()
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)
        with open(run.dir / "epochs.jsonl", "w") as f:
            for e in state["epochs"]:
                f.write(json.dumps(e) + "\n")

    res = train_mod.train(data, tc, text=text, cold_fraction=c.cold_items, progress=progress, log=run.log,
                          checkpoint=save_ckpt, resume=resume)
    run.log(f"trained: best epoch {res.best_epoch}, stopped by {res.stopped}, {res.train_seconds:.0f} s")

    split, eval_data = test_split(data, c.cold_items)
    per_user, uv, iv = evaluate_driftrec(res, split, eval_data, tc)
    run.log(f"driftrec (fp32, PyTorch): NDCG@10 {per_user['NDCG@10'].mean():.4f} "
            f"HR@10 {per_user['HR@10'].mean():.4f} on {len(split.targets)} users")
    base = run_baselines(split, c.baselines, items, run.log) if c.baselines else {}
    best_name = max(base, key=lambda n: base[n].per_user["NDCG@10"].mean()) if base else None
    metrics: dict[str, Any] = {
        "name": c.name, "dataset": c.dataset or c.events, "time_unit": data_info["time_unit"],
        "users": len(data.seq.user_ids), "items": data.seq.n_items, "events": data.seq.n_events,
        "evaluated_users": int(len(split.targets)), "cold_items": c.cold_items,
        "ablation": tc.ablation, "train": {"seconds": round(res.train_seconds + res.refit_seconds, 1),
                                           "refit_seconds": round(res.refit_seconds, 1), "best_epoch": res.best_epoch,
                                           "stopped": res.stopped, "epochs": [asdict(e) for e in res.epochs]},
        "models": {"driftrec": summarise(per_user), **{n: summarise(r.per_user) for n, r in base.items()}},
        "best_baseline": best_name,
        "paired_vs_best_baseline": paired(per_user, base[best_name].per_user) if best_name else {},
        "paired_vs_baselines": {n: paired(per_user, r.per_user) for n, r in base.items()},
        "clean": data_info["clean"],
    }
    np.save(run.dir / "per_user_ndcg10.npy", per_user["NDCG@10"])
    if c.truth:
        from . import shift_eval
        metrics["interest_shift"] = shift_eval.evaluate(c.truth, items, data, split, uv, iv, run.log)
    if c.export:
        from . import bundle as bundle_mod
        bdir = run.dir / "bundle"
        if bdir.exists():  # a rerun exports again
            shutil.rmtree(bdir)
        preprocessing = preprocessing_constants(tc, res, data_info)
        if text_dir is not None:
            tm = json.loads((text_dir / "manifest.json").read_text())
            preprocessing["text"] = {"vocab": f"text/{tm['vocab']['file']}",
                                     "do_lower_case": tm["vocab"]["do_lower_case"],
                                     "max_len": int(c.text.get("max_len", 64)),
                                     "pooling": tm["config"].get("pooling", "mean"),
                                     "used_for": "item text at export (item vectors); event text is not "
                                                 "an input of this model"}
        bundle_mod.write_bundle(
            bdir, name=c.name, interest_model=res.model.interest, item_ids=list(data.seq.item_ids),
            item_vectors=iv.astype(np.float32), preprocessing=preprocessing,
            training={"run": c.name, "dataset": c.dataset or Path(c.events).name,
                      "best_epoch": res.best_epoch, "text": bool(text is not None),
                      "test_ndcg10": metrics["models"]["driftrec"]["NDCG@10"]["mean"]},
            text_model_dir=text_dir, **category_args(items),
            # the item tower's text map, so the server can place query text in item space
            **({"text_projection": res.model.text_proj.weight.detach().numpy().astype(np.float32)}
               if text_dir is not None and res.model.text_proj is not None else {}))
        run.log(f"exported {bdir}")
        if c.c_eval:
            ce = c_library_eval(bdir, split, eval_data, tc, run, c.ann)
            metrics["c_library"] = {
                mode: {"metrics": summarise(v["per_user"]), "seconds": v["seconds"],
                       "paired_vs_fp32": paired(v["per_user"], per_user)} for mode, v in ce.items()}
    metrics["total_seconds"] = round(time.perf_counter() - t_start, 1)
    (run.dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    from . import report
    report.write(run.dir, metrics)
    run.log(f"report: {run.dir / 'report.md'}")
    return metrics


def train_mod_threads(tc: train_mod.TrainConfig) -> int:
    return runtime.set_threads(tc.threads)


def preprocessing_constants(tc: train_mod.TrainConfig, res: train_mod.TrainResult, info: dict) -> dict:
    clip = {k: v["clip_max"] for k, v in info["clean"].get("norm", {}).items() if "clip_max" in v}
    return {
        "event_types": list(EVENT_TYPES),
        "clip": clip,
        "numeric": {"features": ["log1p(dwell_s)", "log1p(amount)", "rating", "has_rating"],
                    "mean": [float(x) for x in res.featurizer.mean], "std": [float(x) for x in res.featurizer.std]},
        "gap_buckets": {"n": tc.n_gap_buckets, "rule": "0 first event, else min(n-1, 1 + bit_length(minutes))"},
        "half_life_s": float(tc.half_life),
        "time_unit": info["time_unit"],
        "max_events": tc.max_events,
    }


def category_args(items) -> dict:
    if not items or not any(it is not None and it.category for it in items):
        return {}
    names = sorted({it.category for it in items if it is not None and it.category})
    index = {n: k for k, n in enumerate(names)}
    cats = np.array([index.get(it.category, 0) if it is not None else 0 for it in items], np.uint32)
    return {"categories": cats, "category_names": names}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="driftrec-train", description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="run config (JSON)")
    p.add_argument("--run-dir", help=f"default: models/train/out/runs/<name>")
    p.add_argument("--fresh", action="store_true", help="delete the run directory first (no resume)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override a config key, e.g. --set model.loss='\"bce\"' --set cold_items=0.2")
    a = p.parse_args(argv)
    try:
        c = RunConfig.load(a.config)
        for s in a.set:
            key, _, value = s.partition("=")
            v = json.loads(value)
            if key.startswith("model."):
                c.model[key[6:]] = v
            elif key in RunConfig.__dataclass_fields__:
                setattr(c, key, v)
            else:
                raise ValueError(f"--set: unknown key {key}")
        train_mod.TrainConfig.from_dict(c.model)
        run_dir = Path(a.run_dir) if a.run_dir else DEFAULT_RUNS / c.name
        execute(c, run_dir, fresh=a.fresh, progress=not a.no_progress)
    except (ValueError, DataError, FileNotFoundError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
