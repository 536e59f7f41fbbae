"""random_shop.py: the random-weight bundle and synthetic histories the load benchmarks serve.

Weights are random, shapes are the shipped ones: what is measured is the serving cost, never
recommendation quality.  Used by overload.py and concurrency.py.
"""
import json
import os
import random
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "models", "train"))


def write_bundle(path, n_items, dim, seed, hidden=None, text_model_dir=None, text_dim=None,
                 text_max_len=None):
    """A bundle at path: n_items random item vectors of size dim, a random int8 interest model
    (LSTM hidden 2*dim unless given, 50 events), optionally a text encoder directory and a
    random text projection [dim, text_dim].  Returns the item ids."""
    import driftrec_train.runtime  # noqa: F401  (BLAS set-up before numpy and torch)
    import numpy as np
    import torch
    from driftrec_train import bundle as bundle_mod, interest
    torch.set_num_threads(1)
    config = interest.InterestConfig(item_dim=dim, hidden_size=hidden or 2 * dim, num_layers=1,
                                     max_events=50, half_life_s=7 * 86400.0)
    model = interest.InterestModel(config)
    interest.random_init(model, torch.Generator().manual_seed(seed))
    model.eval()
    rng = np.random.default_rng(seed)
    ids = [f"item-{i}" for i in range(n_items)]
    vectors = (rng.standard_normal((n_items, dim)) / np.sqrt(dim)).astype(np.float32)
    preprocessing = {"clip": {"dwell_s": 600.0, "amount": 1000.0}, "time_unit": "seconds"}
    extra = {}
    if text_model_dir:
        preprocessing["text"] = {"max_len": text_max_len or 32}
        extra = {"text_model_dir": text_model_dir,
                 "text_projection": (rng.standard_normal((dim, text_dim))
                                     / np.sqrt(text_dim)).astype(np.float32)}
    bundle_mod.write_bundle(path, name="bench", interest_model=model, item_ids=ids,
                            item_vectors=vectors, preprocessing=preprocessing,
                            training={"run": "random weights (load benchmark)"}, **extra)
    return ids


def write_events(path, ids, n_users, n_events, seed):
    """events.jsonl (docs/data.md): n_events per user u0..u{n_users-1}, random items, views,
    clicks and purchases, gaps of seconds to hours."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for u in range(n_users):
            ts = 1_700_000_000
            for _ in range(n_events):
                ts += rng.choice([5, 60, 600, 7200])
                f.write(json.dumps({"user_id": f"u{u}", "item_id": rng.choice(ids), "ts": ts,
                                    "event_type": rng.choice(["view", "click", "purchase"]),
                                    "dwell_s": rng.choice([None, 20.0]), "amount": None,
                                    "rating": None, "text": ""}) + "\n")
