"""After an interest shift: does the model follow the user to the new category?

On the demo shop the ground truth (truth.json) says when each user's interest moved. For the
evaluated users whose test target falls in a later phase than their first one and whose
history holds at most ``max_new_events`` events of that new phase (the shift is recent), the
predicted next category is the most frequent category among the top-10 recommendations
(excluding the history; ties go to the higher-ranked item). Accuracy is the share of users
for whom it is the target item's category. Static pooling scores items by the plain mean of
the history's item vectors (the same item vectors as driftrec): what a model without the
interest dynamics would do.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import demo_shop
from . import evaluate as evaluate_mod


def _predicted_categories(user_vecs: np.ndarray, item_vecs: np.ndarray, histories, cat: np.ndarray,
                          k: int = 10) -> np.ndarray:
    scores = user_vecs @ item_vecs.T
    out = np.empty(len(user_vecs), np.int64)
    for b, h in enumerate(histories):
        s = scores[b].copy()
        s[np.unique(h)] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        counts = np.bincount(cat[top], minlength=cat.max() + 1)
        best = counts.max()
        out[b] = next(cat[j] for j in top if counts[cat[j]] == best)
    return out


def evaluate(truth_path: str, items, data, split, user_vecs: np.ndarray, item_vecs: np.ndarray,
             log: Callable[[str], None], max_new_events: int = 10) -> dict:
    truth = demo_shop.load_truth(truth_path)
    by_item = demo_shop.item_categories(truth)
    names = sorted(set(by_item.values()))
    index = {n: i for i, n in enumerate(names)}
    cat = np.array([index.get(by_item.get(i, ""), -1) for i in data.seq.item_ids], np.int64)
    cat = np.where(cat < 0, len(names), cat)
    rows, hist, targets = [], [], []
    for k, (u, h, t) in enumerate(zip(split.users, split.histories, split.targets)):
        phases = truth["users"].get(data.seq.user_ids[u], {}).get("phases", [])
        target_ts = int(data.ts[u][len(h)])
        p = demo_shop.phase_index(phases, target_ts)
        if p < 1:
            continue
        start = phases[p]["start_ts"]
        n_new = int(np.count_nonzero(data.ts[u][:len(h)] >= start))
        if n_new > max_new_events:
            continue
        rows.append(k)
        hist.append(h)
        targets.append(t)
    if not rows:
        return {"users": 0, "models": {}}
    rows = np.asarray(rows)
    target_cat = cat[np.asarray(targets)]
    static = np.stack([item_vecs[np.asarray(h)].mean(0) if len(h) else np.zeros(item_vecs.shape[1]) for h in hist])
    out = {}
    for name, uv in (("driftrec", user_vecs[rows]), ("pool-mean", static)):
        pred = _predicted_categories(uv.astype(np.float32), item_vecs.astype(np.float32), hist, cat)
        out[name] = evaluate_mod.mean_ci((pred == target_cat).astype(np.float64))
        log(f"interest shift: {name} next-category accuracy {out[name]['mean']:.3f} on {len(rows)} users")
    return {"users": int(len(rows)), "max_new_events": max_new_events, "models": out}
