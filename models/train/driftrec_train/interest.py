"""The interest model as torch modules: the reference for models/interest.c.

Per event t of a user (time order), with D the item-vector size:

    e_t = item_t + text_t + type_emb[event_type_t] + gap_emb[gap_bucket_t] + W_num num_t + b_num

* ``text_t``: the event's text vector (review text through the encoder), zero when absent.
* ``gap_bucket_t``: 0 for a user's first event, else ``min(B - 1, 1 + bit_length(m))`` where
  ``m = max(0, ts_t - ts_{t-1}) // 60`` (whole minutes): 1 for under two minutes, then one
  bucket per doubling. Integer arithmetic, so C and Python agree exactly.
* ``num_t`` (4 values): ``log1p(dwell_s)``, ``log1p(amount)``, ``rating``, ``has_rating``,
  each normalised as ``(raw - mean) / std`` with the model's ``features.numeric_mean`` /
  ``features.numeric_std``; a missing value (None/NaN) is 0 after normalisation.

An LSTM (torch's gate order, 1-2 layers) over e_1..e_T gives h_T (the short-term drift). The
long-term interest is the time-decayed mean of the item vectors,

    long = sum_t 2^(-(ts_T - ts_t) / half_life_s) item_t / sum_t 2^(-(ts_T - ts_t) / half_life_s),

kept incrementally as (S, Z, ts_last): S <- 2^(-gap/hl) S + item_t, Z <- 2^(-gap/hl) Z + 1.
The fusion is a gate: g = sigmoid(W_g [h_T; long] + b_g),
``user = g * (W_s h_T + b_s) + (1 - g) * long``. A user with no events gets h = 0, long = 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

N_NUMERIC = 4


@dataclass
class InterestConfig:
    item_dim: int = 128
    hidden_size: int = 256
    num_layers: int = 2
    n_event_types: int = 6          # events.EVENT_TYPES order
    n_gap_buckets: int = 16
    half_life_s: float = 7 * 86400.0
    max_events: int = 64            # replayed for a user with no cached state

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InterestConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def gap_bucket(prev_ts: Optional[int], ts: int, n_buckets: int) -> int:
    if prev_ts is None:
        return 0
    minutes = max(0, int(ts) - int(prev_ts)) // 60
    return min(n_buckets - 1, 1 + int(minutes).bit_length())


def numeric_raw(dwell_s, amount, rating) -> tuple[np.ndarray, np.ndarray]:
    """(raw values, present flags) for one event; None or NaN means missing."""
    def ok(v):
        return v is not None and not (isinstance(v, float) and math.isnan(v))
    raw = np.zeros(N_NUMERIC, np.float64)
    present = np.zeros(N_NUMERIC, bool)
    if ok(dwell_s):
        raw[0], present[0] = math.log1p(max(0.0, float(dwell_s))), True
    if ok(amount):
        raw[1], present[1] = math.log1p(max(0.0, float(amount))), True
    if ok(rating):
        raw[2], present[2] = float(rating), True
    raw[3], present[3] = (1.0 if ok(rating) else 0.0), True
    return raw, present


def normalise(raw: np.ndarray, present: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    out = np.where(present, (raw - mean) / std, 0.0)
    return out.astype(np.float32)


@dataclass
class UserEvents:
    """One user's events in time order (the model-facing part of events.Event)."""
    item_vecs: np.ndarray                 # [T, D] float32
    text_vecs: Optional[np.ndarray]       # [T, D] float32 (rows of zeros where absent) or None
    event_types: Sequence[int]
    ts: Sequence[int]
    dwell_s: Sequence[Optional[float]]
    amount: Sequence[Optional[float]]
    rating: Sequence[Optional[float]]


class InterestModel(nn.Module):
    def __init__(self, c: InterestConfig):
        super().__init__()
        self.config = c
        d, h = c.item_dim, c.hidden_size
        self.features = nn.Module()
        self.features.event_type = nn.Embedding(c.n_event_types, d)
        self.features.gap_bucket = nn.Embedding(c.n_gap_buckets, d)
        self.features.numeric = nn.Linear(N_NUMERIC, d)
        self.features.register_buffer("numeric_mean", torch.zeros(N_NUMERIC))
        self.features.register_buffer("numeric_std", torch.ones(N_NUMERIC))
        self.lstm = nn.LSTM(d, h, num_layers=c.num_layers, batch_first=True)
        self.fuse = nn.Module()
        self.fuse.short = nn.Linear(h, d)
        self.fuse.gate = nn.Linear(h + d, d)

    # -- features -------------------------------------------------------------------------
    def event_inputs(self, u: UserEvents) -> dict[str, torch.Tensor]:
        c = self.config
        n = len(u.ts)
        mean = self.features.numeric_mean.double().numpy()
        std = self.features.numeric_std.double().numpy()
        buckets, nums = [], []
        for t in range(n):
            buckets.append(gap_bucket(u.ts[t - 1] if t else None, u.ts[t], c.n_gap_buckets))
            raw, present = numeric_raw(u.dwell_s[t], u.amount[t], u.rating[t])
            nums.append(normalise(raw, present, mean, std))
        text = u.text_vecs if u.text_vecs is not None else np.zeros_like(u.item_vecs)
        return {
            "item": torch.as_tensor(np.asarray(u.item_vecs, np.float32)).reshape(n, c.item_dim),
            "text": torch.as_tensor(np.asarray(text, np.float32)).reshape(n, c.item_dim),
            "type": torch.as_tensor(np.asarray(u.event_types, np.int64)).reshape(n),
            "gap": torch.as_tensor(np.asarray(buckets, np.int64)).reshape(n),
            "num": torch.as_tensor(np.asarray(nums, np.float32)).reshape(n, N_NUMERIC),
            "ts": torch.as_tensor(np.asarray(u.ts, np.float64)).reshape(n),
        }

    def embed(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        f = self.features
        return x["item"] + x["text"] + f.event_type(x["type"]) + f.gap_bucket(x["gap"]) \
            + f.numeric(x["num"])

    # -- the model ------------------------------------------------------------------------
    def long_term(self, item: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        if item.shape[0] == 0:
            return torch.zeros(self.config.item_dim)
        w = torch.exp2(-(ts[-1] - ts) / self.config.half_life_s)  # float64
        return ((w[:, None] * item.double()).sum(0) / w.sum()).float()

    def fuse_vectors(self, h: torch.Tensor, long: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.fuse.gate(torch.cat([h, long], -1)))
        return g * self.fuse.short(h) + (1 - g) * long

    def forward_user(self, u: UserEvents) -> torch.Tensor:
        c = self.config
        x = self.event_inputs(u)
        if len(u.ts) == 0:
            h = torch.zeros(c.hidden_size)
        else:
            out, _ = self.lstm(self.embed(x)[None])
            h = out[0, -1]
        return self.fuse_vectors(h, self.long_term(x["item"], x["ts"]))

    def forward(self, users: Sequence[UserEvents]) -> torch.Tensor:
        return torch.stack([self.forward_user(u) for u in users])


def random_init(model: InterestModel, generator: torch.Generator) -> None:
    with torch.no_grad():
        h = model.config.hidden_size
        for name, p in model.named_parameters():
            if name.startswith("lstm."):
                bound = 1.0 / math.sqrt(h)
                p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
            elif name.startswith("features."):
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))
            else:
                fan_in = p.shape[-1] if p.dim() == 2 else h
                p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(fan_in))
        model.features.numeric_mean.copy_(torch.tensor([3.0, 2.5, 3.0, 0.0]))
        model.features.numeric_std.copy_(torch.tensor([1.5, 1.8, 2.0, 1.0]))


def linear_weight_names(c: InterestConfig) -> list[str]:
    names = []
    for layer in range(c.num_layers):
        names += [f"lstm.weight_ih_l{layer}", f"lstm.weight_hh_l{layer}"]
    return names + ["fuse.short.weight", "fuse.gate.weight"]
