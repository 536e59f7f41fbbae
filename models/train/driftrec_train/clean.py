"""Cleaning of loaded events, reported in counts.

Order of the steps (each one counts what it touches, see docs/data.md):

1. drop events missing user_id, item_id or ts (one reason counted per event, first missing wins);
2. drop exact duplicates of (user_id, item_id, ts, event_type), keeping the first in file order
   (the Amazon All_Beauty 5-core file repeats a review once per style variant);
3. null numeric values that are impossible (rating outside 1..5, negative or non-finite dwell
   or amount, negative position);
4. clip dwell_s and amount at an upper bound (a high quantile of the data unless given), and
   record the normalisation constants the model manifest needs to transform them identically
   at serving time.

The events themselves keep raw (clipped) values; normalisation is a function of the recorded
constants, applied by whoever builds features, so the C server can reproduce it exactly.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from .events import Event

RATING_MIN, RATING_MAX = 1.0, 5.0
CLIP_QUANTILE = 0.999
"""Upper clip for dwell_s and amount when no bound is given: heavy tails (a tab left open for a
day, a bulk order) would otherwise dominate the log-scale mean and std."""


@dataclass
class NormConstants:
    """``z = (log1p(min(max(x, 0), clip_max)) - mean) / std``; missing values become 0 (the mean)."""

    clip_max: float
    log1p_mean: float
    log1p_std: float

    def apply(self, value: Optional[float]) -> float:
        if value is None:
            return 0.0
        return (math.log1p(min(max(value, 0.0), self.clip_max)) - self.log1p_mean) / self.log1p_std

    def to_json(self) -> dict[str, float]:
        return {"clip_max": self.clip_max, "log1p_mean": self.log1p_mean, "log1p_std": self.log1p_std}


@dataclass
class CleanReport:
    """What the cleaner did: every dropped or changed value is in ``counts``."""

    counts: Counter = field(default_factory=Counter)
    norm: dict[str, dict[str, float]] = field(default_factory=dict)
    examples: dict[str, list[int]] = field(default_factory=dict)
    """A few file rows (0-based) per reason, to find the culprits without rereading the data."""

    def note(self, reason: str, row: int) -> None:
        self.counts[reason] += 1
        rows = self.examples.setdefault(reason, [])
        if len(rows) < 5:
            rows.append(row)

    def to_json(self) -> dict:
        return {"counts": dict(sorted(self.counts.items())), "norm": self.norm, "examples": self.examples}

    def summary(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))


def _finite_nonneg(value: Optional[float]) -> bool:
    return value is not None and math.isfinite(value) and value >= 0


def clean_events(
    events: Iterable[Event],
    clip: Optional[dict[str, float]] = None,
) -> tuple[list[Event], CleanReport]:
    """Return cleaned events (file order kept) and the report. ``clip`` fixes upper bounds per field."""
    report = CleanReport()
    counts = report.counts
    seen: set[tuple[str, str, int, str]] = set()
    kept: list[Event] = []
    for event in events:
        counts["rows_in"] += 1
        if event.user_id is None:
            report.note("dropped_missing_user", event.row)
            continue
        if event.item_id is None:
            report.note("dropped_missing_item", event.row)
            continue
        if event.ts is None:
            report.note("dropped_missing_ts", event.row)
            continue
        key = (event.user_id, event.item_id, event.ts, event.event_type)
        if key in seen:
            report.note("dropped_duplicate", event.row)
            continue
        seen.add(key)
        if event.rating is not None and not (RATING_MIN <= event.rating <= RATING_MAX):
            report.note("nulled_rating_out_of_range", event.row)
            event.rating = None
        if event.dwell_s is not None and not _finite_nonneg(event.dwell_s):
            report.note("nulled_dwell_invalid", event.row)
            event.dwell_s = None
        if event.amount is not None and not _finite_nonneg(event.amount):
            report.note("nulled_amount_invalid", event.row)
            event.amount = None
        if event.position is not None and event.position < 0:
            report.note("nulled_position_negative", event.row)
            event.position = None
        kept.append(event)

    clip = dict(clip or {})
    for name in ("dwell_s", "amount"):
        values = np.array([getattr(e, name) for e in kept if getattr(e, name) is not None], dtype=np.float64)
        if values.size == 0:
            continue
        bound = clip.get(name)
        if bound is None:
            bound = float(np.quantile(values, CLIP_QUANTILE))
        clipped = 0
        for event in kept:
            value = getattr(event, name)
            if value is not None and value > bound:
                setattr(event, name, bound)
                clipped += 1
        counts[f"clipped_{name}"] += clipped
        logs = np.log1p(np.minimum(values, bound))
        std = float(logs.std())
        report.norm[name] = NormConstants(bound, float(logs.mean()), std if std > 0 else 1.0).to_json()
    if any(e.rating is not None for e in kept):
        # Ratings are bounded already; centre and scale to [-1, 1] with fixed constants.
        report.norm["rating"] = {"center": 3.0, "scale": 2.0}
    counts["rows_out"] = len(kept)
    return kept, report
