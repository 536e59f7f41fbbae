"""The evaluator: one code path that every driftrec model claim is measured with.

Rules (normative text in docs/evaluation.md):

* each user's events ordered by (ts, file row); leave-one-out: last event = test target, the one
  before = validation target; users with >= 3 events are evaluated;
* a model is fit on every user's events before the target (:class:`split.Split`);
* every item of the dataset is ranked except the user's earlier items (the target itself always
  stays rankable); score ties go to the lower item id (numeric ids compared as numbers);
* metrics per user, then mean with a 95% normal-approximation interval; paired per-user
  differences between models with their interval.

Usable as a library (:func:`evaluate_split`) and as a CLI (``python3 models/train/evaluate.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from . import baselines, datasets
from .clean import CleanReport, clean_events
from .events import DataError
from .loaders import LoadResult, load_events_jsonl
from .split import Sequences, Split, build_sequences, leave_one_out

try:  # tqdm is optional: progress bars only
    from tqdm import tqdm as _tqdm
except ImportError:  # pragma: no cover
    _tqdm = None

Z95 = 1.959963984540054
"""Two-sided 95% normal quantile."""

SAMPLED_MODES = ("uni", "pop")


# --------------------------------------------------------------------------- ranking

def full_ranks(scores: np.ndarray, histories: Sequence[np.ndarray], targets: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of each target among all non-excluded items, and the candidate count.

    Excluded: the items of the user's history other than the target. An item j outranks the
    target t when s_j > s_t, or s_j == s_t and j < t (ties go to the lower item id).
    ``scores`` is modified in place.
    """
    batch, n_items = scores.shape
    if not np.all(np.isfinite(scores)):
        raise ValueError("model produced non-finite scores")
    rows = np.arange(batch)
    target_scores = scores[rows, targets].copy()
    n_excluded = np.zeros(batch, dtype=np.int64)
    for b, h in enumerate(histories):
        excl = np.unique(h)
        excl = excl[excl != targets[b]]
        n_excluded[b] = len(excl)
        scores[b, excl] = -np.inf
    ranks = np.count_nonzero(scores > target_scores[:, None], axis=1)
    for b in range(batch):  # ties: only items with a lower id than the target can outrank it
        ranks[b] += np.count_nonzero(scores[b, :targets[b]] == target_scores[b])
    return ranks, n_items - n_excluded


def sampled_ranks(scores: np.ndarray, targets: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """0-based rank of each target among itself and its sampled negatives, same tie rule."""
    rows = np.arange(len(targets))
    t = scores[rows, targets][:, None]
    s = scores[rows[:, None], negatives]
    return ((s > t) | ((s == t) & (negatives < targets[:, None]))).sum(axis=1)


def sample_negatives(split: Split, n: int, mode: str, seed: int) -> np.ndarray:
    """``n`` distinct negatives per evaluated user, never the target or an earlier item.

    ``uni``: uniform over the other items. ``pop``: proportional to popularity over the fit
    data, as in the BERT4Rec protocol; items with count 0 are drawn only when a user has fewer
    than ``n`` allowed items with a positive count, and then uniformly to fill the gap. Draws
    are made in order and the first ``n`` distinct allowed ones kept, from a generator seeded
    per mode, so every model sees the same negatives. A user with fewer than ``n`` allowed
    items at all is an error (use fewer negatives).
    """
    rng = np.random.default_rng([seed, SAMPLED_MODES.index(mode)])
    n_items = split.n_items
    pop = split.popularity()
    cdf = np.cumsum(pop)
    if mode == "pop" and cdf[-1] > 0:
        cdf /= cdf[-1]
    n_positive = int(np.count_nonzero(pop))
    out = np.empty((len(split.targets), n), dtype=np.int64)
    for k, (h, t) in enumerate(zip(split.histories, split.targets)):
        banned = np.union1d(h, [t])
        if n_items - len(banned) < n:
            raise ValueError(f"user {int(split.users[k])} has only {n_items - len(banned)} items "
                             f"left to sample {n} negatives from")
        by_pop = mode == "pop" and n_positive - int(np.count_nonzero(pop[banned])) >= n
        if mode == "pop" and not by_pop:
            allowed = np.setdiff1d(np.flatnonzero(pop > 0), banned)
            rest = np.setdiff1d(np.flatnonzero(pop == 0), banned)
            out[k] = np.concatenate([allowed, rng.permutation(rest)[:n - len(allowed)]])
            continue
        chosen = np.zeros(0, dtype=np.int64)
        while len(chosen) < n:
            size = 2 * (n - len(chosen)) + 8
            draw = np.searchsorted(cdf, rng.random(size), side="right") if by_pop else \
                rng.integers(0, n_items, size)
            draw = np.concatenate([chosen, draw[~np.isin(draw, banned)]])
            _, first = np.unique(draw, return_index=True)
            chosen = draw[np.sort(first)][:n]
        out[k] = chosen
    return out


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int], prefix: str = "",
                       n_candidates: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """Per-user HR@k, NDCG@k, MRR (and AUC when the candidate counts are given)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = ranks < k
        out[f"{prefix}HR@{k}"] = hit.astype(np.float64)
        out[f"{prefix}NDCG@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    out[f"{prefix}MRR"] = 1.0 / (ranks + 1.0)
    if n_candidates is not None:
        negatives = np.maximum(n_candidates - 1, 1).astype(np.float64)
        out[f"{prefix}AUC"] = (negatives - ranks) / negatives
    return out


def mean_ci(values: np.ndarray) -> dict[str, float]:
    """Mean and the half-width of its 95% normal-approximation interval (1.96 * sd / sqrt(n))."""
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    half = float(Z95 * values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": mean, "ci95": half, "n": n}


# --------------------------------------------------------------------------- evaluation

@dataclass
class EvalConfig:
    ks: tuple[int, ...] = (10,)
    negatives: int = 100
    seed: int = 0
    batch_cells: int = 20_000_000
    """Scores computed per batch of users: about this many (user, item) cells (160 MB)."""
    progress: bool = True


@dataclass
class ModelResult:
    name: str
    per_user: dict[str, np.ndarray]
    fit_seconds: float
    score_seconds: float

    def summary(self) -> dict[str, dict[str, float]]:
        return {metric: mean_ci(values) for metric, values in self.per_user.items()}


def _progress(iterable: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    if enabled and _tqdm is not None:
        return _tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr)
    return iterable


def evaluate_model(model: baselines.Model, split: Split, config: EvalConfig,
                   item_text: Optional[list[str]] = None,
                   negatives: Optional[dict[str, np.ndarray]] = None) -> ModelResult:
    """Fit ``model`` on the split's fit data, rank every evaluated user's target, return per-user metrics."""
    start = time.perf_counter()
    model.fit(baselines.FitData(seqs=split.fit_seqs, n_items=split.n_items, item_text=item_text))
    fit_seconds = time.perf_counter() - start
    n_users = len(split.targets)
    batch = max(1, config.batch_cells // max(split.n_items, 1))
    full = np.empty(n_users, dtype=np.int64)
    cands = np.empty(n_users, dtype=np.int64)
    sampled = {mode: np.empty(n_users, dtype=np.int64) for mode in (negatives or {})}
    start = time.perf_counter()
    starts = range(0, n_users, batch)
    for lo in _progress(starts, len(starts), model.name, config.progress):
        hi = min(lo + batch, n_users)
        hist = split.histories[lo:hi]
        targets = split.targets[lo:hi]
        scores = np.asarray(model.score(hist), dtype=np.float64)
        if scores.shape != (hi - lo, split.n_items):
            raise ValueError(f"{model.name}: score() returned shape {scores.shape}, expected {(hi - lo, split.n_items)}")
        for mode, neg in (negatives or {}).items():  # before full_ranks masks the history
            sampled[mode][lo:hi] = sampled_ranks(scores, targets, neg[lo:hi])
        full[lo:hi], cands[lo:hi] = full_ranks(scores, hist, targets)
    per_user = metrics_from_ranks(full, config.ks, "", cands)
    for mode, ranks in sampled.items():
        per_user.update(metrics_from_ranks(ranks, config.ks, f"{mode}{config.negatives}:"))
    return ModelResult(model.name, per_user, fit_seconds, time.perf_counter() - start)


def paired_differences(a: ModelResult, b: ModelResult) -> dict[str, dict[str, float]]:
    """Per-user a - b for every metric, mean with 95% interval (users are the pairing unit)."""
    return {metric: mean_ci(a.per_user[metric] - b.per_user[metric]) for metric in a.per_user}


def evaluate_split(split: Split, models: Sequence[baselines.Model], config: EvalConfig,
                   item_text: Optional[list[str]] = None, sampled: bool = True) -> list[ModelResult]:
    """Evaluate several models on one split with shared sampled negatives."""
    negatives = None
    if sampled and config.negatives > 0:
        negatives = {mode: sample_negatives(split, config.negatives, mode, config.seed) for mode in SAMPLED_MODES}
    return [evaluate_model(m, split, config, item_text, negatives) for m in models]


# --------------------------------------------------------------------------- datasets -> results

@dataclass
class PreparedData:
    name: str
    sequences: Sequences
    item_text: Optional[list[str]]
    load_counts: dict[str, int]
    clean: CleanReport


def prepare(result: LoadResult, name: str) -> PreparedData:
    """Clean loaded events and build sequences; item text aligned to the internal item order."""
    events, report = clean_events(result.events)
    sequences = build_sequences(events)
    text = None
    if result.items:
        text = [result.items[i].text() if i in result.items else "" for i in sequences.item_ids]
    return PreparedData(name, sequences, text, dict(result.counts), report)


def run_dataset(data: PreparedData, model_names: Sequence[str], config: EvalConfig, target: str = "test",
                cold_fraction: float = 0.0, reference: Optional[str] = None,
                half_life: float = baselines.DEFAULT_HALF_LIFE,
                log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict[str, Any]:
    """Evaluate the named baselines on one prepared dataset; returns the JSON-ready record."""
    split = leave_one_out(data.sequences, target=target, cold_fraction=cold_fraction, seed=config.seed)
    names = [n for n in model_names if n != "bow-text" or data.item_text is not None]
    skipped = [n for n in model_names if n not in names]
    if not len(split.targets):
        raise ValueError(f"{data.name}: no user qualifies for evaluation")
    models = [baselines.make(n, half_life=half_life, seed=config.seed) for n in names]
    sampled = cold_fraction == 0 and config.negatives > 0
    notes = []
    if sampled:
        fewest = min(split.n_items - len(np.union1d(h, [t])) for h, t in zip(split.histories, split.targets))
        if fewest < config.negatives:
            sampled = False
            notes.append(f"sampled metrics skipped: a user has only {fewest} items left, "
                         f"{config.negatives} negatives needed")
            log(f"note: {data.name}: {notes[-1]}")
    results = evaluate_split(split, models, config, data.item_text, sampled=sampled)
    by_name = {r.name: r for r in results}
    ref = reference if reference in by_name else None
    record: dict[str, Any] = {
        "dataset": data.name, "target": target, "cold_fraction": cold_fraction,
        "users": len(data.sequences.user_ids), "items": data.sequences.n_items,
        "events": data.sequences.n_events, "evaluated_users": int(len(split.targets)),
        "load_counts": data.load_counts, "clean": data.clean.to_json(),
        "skipped_models": {n: "no item text" for n in skipped},
        "notes": notes,
        "models": {r.name: {"metrics": r.summary(), "fit_seconds": round(r.fit_seconds, 3),
                            "score_seconds": round(r.score_seconds, 3)} for r in results},
        "reference": ref,
        "paired_vs_reference": {r.name: paired_differences(r, by_name[ref]) for r in results
                                if ref is not None and r.name != ref},
    }
    return record


# --------------------------------------------------------------------------- report

def _fmt(summary: dict[str, float], digits: int = 4) -> str:
    return f"{summary['mean']:.{digits}f} ±{summary['ci95']:.{digits}f}"


def format_table(records: Sequence[dict[str, Any]], k: int = 10) -> str:
    """Markdown table: full-ranking HR/NDCG/MRR/AUC with intervals, sampled HR/NDCG, paired NDCG diff."""
    header = ["dataset", "model", f"HR@{k}", f"NDCG@{k}", "MRR", "AUC",
              f"HR@{k} uni100", f"NDCG@{k} uni100", f"HR@{k} pop100", f"NDCG@{k} pop100", f"ΔNDCG@{k} vs ref"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rec in records:
        ref = rec.get("reference")
        for name, res in rec["models"].items():
            m = res["metrics"]
            cell = lambda key: _fmt(m[key]) if key in m else "-"
            short = lambda key: f"{m[key]['mean']:.4f}" if key in m else "-"
            diff = rec["paired_vs_reference"].get(name, {}).get(f"NDCG@{k}")
            diff_text = "(ref)" if name == ref else (f"{diff['mean']:+.4f} ±{diff['ci95']:.4f}" if diff else "-")
            label = rec["dataset"] + (f" (cold {rec['cold_fraction']:g})" if rec.get("cold_fraction") else "") + \
                (" [valid]" if rec.get("target") == "validation" else "")
            lines.append("| " + " | ".join([
                label, name, cell(f"HR@{k}"), cell(f"NDCG@{k}"), cell("MRR"), short("AUC"),
                short(f"uni100:HR@{k}"), short(f"uni100:NDCG@{k}"), short(f"pop100:HR@{k}"),
                short(f"pop100:NDCG@{k}"), diff_text]) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description="Leave-one-out evaluation of driftrec baselines (rules: docs/evaluation.md).")
    src = parser.add_argument_group("data (one of)")
    src.add_argument("--dataset", action="append", default=[],
                     help=f"named dataset under $DR_DATA_DIR, repeatable: {', '.join(datasets.DATASETS)}")
    src.add_argument("--all", action="store_true",
                     help=f"every table dataset: {', '.join(datasets.TABLE_DATASETS)}")
    src.add_argument("--events", type=Path, help="an events.jsonl(.gz) file in the driftrec format")
    src.add_argument("--items", type=Path, help="items.jsonl for --events (enables bow-text)")
    parser.add_argument("--models", default=",".join(baselines.BASELINES),
                        help="comma-separated baselines (default: all; bow-text only where item text exists)")
    parser.add_argument("--target", choices=("test", "validation"), default="test")
    parser.add_argument("--cold-items", type=float, default=0.0, metavar="FRACTION",
                        help="cold-item split: this fraction of items is unseen in training (0 = off)")
    parser.add_argument("--k", type=int, action="append", help="cutoff(s) for HR/NDCG (default 10)")
    parser.add_argument("--negatives", type=int, default=100, help="sampled negatives per user (0 = off)")
    parser.add_argument("--half-life", type=float, default=baselines.DEFAULT_HALF_LIFE,
                        help="pool-decay half-life in events")
    parser.add_argument("--reference", default="transitions", help="model the paired differences are taken against")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the full results (all metrics, intervals, counts) here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _load_named(name: str) -> LoadResult:
    spec = datasets.get(name)
    if not spec.available():
        raise FileNotFoundError(f"dataset {name!r} not found at {spec.path()} (set DR_DATA_DIR)")
    return spec.load()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry. Exit status: 0 success, 2 bad arguments or bad input (message names file and line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    names = list(args.dataset) + (list(datasets.TABLE_DATASETS) if args.all else [])
    if not names and args.events is None:
        parser.error("give --dataset NAME, --all or --events FILE")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in baselines.BASELINES:
            parser.error(f"unknown model {m!r}; known: {', '.join(baselines.BASELINES)}")
    if not 0.0 <= args.cold_items < 1.0:
        parser.error("--cold-items must be in [0, 1)")
    config = EvalConfig(ks=tuple(args.k or [10]), negatives=args.negatives, seed=args.seed,
                        progress=not args.no_progress)
    records = []
    started = time.perf_counter()
    try:
        jobs: list[tuple[str, Callable[[], LoadResult]]] = [(n, lambda n=n: _load_named(n)) for n in names]
        if args.events is not None:
            jobs.append((args.events.name, lambda: load_events_jsonl(args.events, args.items)))
        for label, load in jobs:
            t0 = time.perf_counter()
            data = prepare(load(), label)
            if args.cold_items > 0 and data.item_text is None:
                print(f"note: {label} has no item text; bow-text is skipped", file=sys.stderr)
            record = run_dataset(data, models, config, target=args.target, cold_fraction=args.cold_items,
                                 reference=args.reference, half_life=args.half_life)
            record["seconds"] = round(time.perf_counter() - t0, 2)
            records.append(record)
            print(f"{label}: {record['evaluated_users']} users, {record['items']} items, "
                  f"{record['seconds']} s; cleaning: {data.clean.summary()}", file=sys.stderr)
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(records, config.ks[0]))
    total = time.perf_counter() - started
    print(f"\ntotal {total:.1f} s", file=sys.stderr)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"argv": list(argv) if argv is not None else sys.argv[1:], "seconds": round(total, 2),
                   "results": records}
        args.json.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
