"""User sequences and the leave-one-out split, with the pinned ordering rules of docs/evaluation.md.

Two details decide whether published numbers reproduce, so they live here and nowhere else:

* a user's events are ordered by ``(ts, file row)``: ml-100k has 415 of 943 users whose last two
  events share a timestamp, and an unstable order would change both targets;
* items get internal indices in the order of their dataset ids ("numerically where numeric",
  else as strings), so "break score ties by the lower item id" is "by the lower index".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from .events import Event

_INTEGER = re.compile(r"^[+-]?\d+$")


def sort_ids(ids: Iterable[str]) -> list[str]:
    """Sort ids numerically when every id is an integer, else as strings."""
    unique = set(ids)
    if unique and all(_INTEGER.match(i) for i in unique):
        return sorted(unique, key=lambda i: (int(i), i))
    return sorted(unique)


@dataclass
class Sequences:
    """Every user's items in event order, as internal item indices."""

    user_ids: list[str]
    item_ids: list[str]
    seqs: list[np.ndarray]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_events(self) -> int:
        return int(sum(len(s) for s in self.seqs))


def build_sequences(events: Iterable[Event]) -> Sequences:
    """Group cleaned events by user and order each user's events by (ts, file row).

    The item universe is the set of items that occur in the events (what "all items" ranks).
    """
    events = list(events)
    for event in events:
        if event.user_id is None or event.item_id is None or event.ts is None:
            raise ValueError(f"event at row {event.row} is missing user, item or ts; clean the events first")
    item_ids = sort_ids(e.item_id for e in events)  # type: ignore[misc]
    user_ids = sort_ids(e.user_id for e in events)  # type: ignore[misc]
    item_index = {item: i for i, item in enumerate(item_ids)}
    user_index = {user: u for u, user in enumerate(user_ids)}
    keyed = sorted(((user_index[e.user_id], e.ts, e.row, item_index[e.item_id]) for e in events))  # type: ignore[index]
    users = np.fromiter((k[0] for k in keyed), dtype=np.int64, count=len(keyed))
    items = np.fromiter((k[3] for k in keyed), dtype=np.int64, count=len(keyed))
    bounds = np.searchsorted(users, np.arange(len(user_ids) + 1))
    seqs = [items[bounds[u]:bounds[u + 1]] for u in range(len(user_ids))]
    return Sequences(user_ids=user_ids, item_ids=item_ids, seqs=seqs)


@dataclass
class Split:
    """What a model may learn from and what it is asked.

    ``fit_seqs[u]`` is every user's sequence with the evaluated target (and anything after it)
    removed: the only data a model is fit on, and the data popularity is counted over.
    ``histories[k]`` are the events of evaluated user ``users[k]`` before ``targets[k]``.
    """

    n_items: int
    fit_seqs: list[np.ndarray]
    users: np.ndarray
    histories: list[np.ndarray]
    targets: np.ndarray
    cold_items: Optional[np.ndarray] = None
    """Boolean mask over items for the cold-item split, else None."""

    def popularity(self) -> np.ndarray:
        """Event counts per item over ``fit_seqs`` (all but each user's evaluated-and-later events)."""
        nonempty = [s for s in self.fit_seqs if len(s)]
        if not nonempty:
            return np.zeros(self.n_items, dtype=np.float64)
        return np.bincount(np.concatenate(nonempty), minlength=self.n_items).astype(np.float64)


def leave_one_out(
    data: Sequences,
    target: str = "test",
    min_events: int = 3,
    cold_fraction: float = 0.0,
    seed: int = 0,
) -> Split:
    """The leave-one-out split.

    ``target="test"``: each user's last event is the target, models see everything before it
    (training + validation events). ``target="validation"``: the last event is removed first,
    so the one before it is the target and models see only training events. Users with fewer
    than ``min_events`` events in all (counting the test event) are not evaluated but still
    contribute their earlier events to fitting.

    ``cold_fraction > 0`` gives the cold-item split: a seeded random set of that fraction of
    items is declared cold, every event on a cold item is removed from the fit data and from
    histories, and only users whose target is cold (and who keep ``min_events - 1`` earlier
    events) are evaluated. Test items are then never seen in training.
    """
    if target not in ("test", "validation"):
        raise ValueError(f"target must be 'test' or 'validation', got {target!r}")
    drop = 1 if target == "validation" else 0
    seqs = [s[:len(s) - drop] if drop else s for s in data.seqs]
    cold: Optional[np.ndarray] = None
    if cold_fraction > 0:
        rng = np.random.default_rng(seed)
        cold = rng.random(data.n_items) < cold_fraction
    fit_seqs: list[np.ndarray] = []
    users: list[int] = []
    histories: list[np.ndarray] = []
    targets: list[int] = []
    for u, s in enumerate(seqs):
        before = s[:-1]
        if cold is not None:
            before = before[~cold[before]]
        fit_seqs.append(before)
        if len(data.seqs[u]) < min_events or len(s) < 2:
            continue  # the same users are evaluated for the test and the validation target
        if cold is not None and (not cold[s[-1]] or len(before) < min_events - 1):
            continue
        users.append(u)
        histories.append(before)
        targets.append(int(s[-1]))
    return Split(n_items=data.n_items, fit_seqs=fit_seqs, users=np.asarray(users, dtype=np.int64),
                 histories=histories, targets=np.asarray(targets, dtype=np.int64), cold_items=cold)
