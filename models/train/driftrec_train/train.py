"""Training the recommendation model: item tower + interest model, sampled losses, early stopping.

The model (docs/training.md):

* **item tower**: ``item_i = known_i * id_emb[i] + W_text text_i`` — an id embedding for items
  seen in training plus a linear projection of the item's text vector (from the text
  encoder). An item never seen in training (cold) is placed by its text alone.
* **user tower**: the interest model (interest.py): per event the item tower's vector plus
  event-type, time-gap and numeric-feature embeddings, an LSTM for the short-term drift, a
  time-decayed mean of the item vectors for the long-term interest, a learned gate between
  them. ``score(u, i) = user_u . item_i``.

Training uses every position of every training sequence: after each event the model predicts
the user's next item. Negatives are shared by the whole batch (``n_negatives`` items drawn
from a mix of uniform and popularity^0.75), a negative equal to a position's positive is
masked out (accidental hit), and logits of sampled items are corrected by ``log Q`` (their
sampling probability) so popular items are not over-penalised. Losses: ``bce`` (the seed's
binary cross-entropy with negative sampling), ``ssm`` (sampled softmax) and ``gbce``
(gSASRec's calibrated BCE).

Splits follow docs/evaluation.md: the model trains on each user's events except the last two,
early-stops on the validation target (the second to last, history = everything before it) and
is tested on the last event with every earlier event as history, the same users and rules as
the baselines.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import evaluate as evaluate_mod
from . import interest as interest_mod
from .events import EVENT_TYPES, Event
from .split import Sequences, Split, leave_one_out, sort_ids

LOSSES = ("bce", "ssm", "gbce", "ce")
ABLATIONS = ("none", "no-time", "no-text", "no-smoothing")


@dataclass
class TrainConfig:
    # model
    item_dim: int = 64
    hidden_size: int = 128
    num_layers: int = 1
    n_gap_buckets: int = 16
    half_life: float = 7 * 86400.0   # seconds, or steps when the data has only order
    max_events: int = 50             # window length for training and replay at serving
    dropout: float = 0.1             # on the event inputs during training
    id_dropout: float = 0.0          # with text: share of items whose id embedding is hidden
    #                                  per batch, so the text part learns to place items alone
    # loss
    loss: str = "ssm"
    n_negatives: int = 1024
    uniform_share: float = 0.5       # share of negatives drawn uniformly (rest: pop^0.75)
    logq: bool = True
    gbce_t: float = 0.75
    # optimisation
    lr: float = 2e-3
    weight_decay: float = 0.0
    batch_tokens: int = 4096         # positions per batch (sequences grouped by length)
    max_epochs: int = 50
    patience: int = 3
    time_budget_s: float = 600.0
    val_users: int = 5000            # validation users for early stopping (0: all)
    seed: int = 0
    threads: int = 0
    ablation: str = "none"
    refit: bool = True               # retrain for the best epoch count on train + validation events

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.ablation not in ABLATIONS:
            raise ValueError(f"ablation must be one of {', '.join(ABLATIONS)}, not {self.ablation!r}")
        for name in ("item_dim", "hidden_size", "num_layers", "max_events", "n_negatives", "batch_tokens",
                     "max_epochs", "n_gap_buckets"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not self.half_life > 0:
            raise ValueError("half_life must be positive")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown model option(s): {', '.join(unknown)}")
        c = cls(**d)
        c.check()
        return c


# --------------------------------------------------------------------------- data

@dataclass
class EventSequences:
    """Every user's events in evaluator order (split.build_sequences), with their features."""

    seq: Sequences
    ts: list[np.ndarray]        # int64
    types: list[np.ndarray]     # int64, EVENT_TYPES index
    numeric_raw: list[np.ndarray]   # float64 [T, 4] raw (log1p dwell, log1p amount, rating, has_rating)
    numeric_present: list[np.ndarray]  # bool [T, 4]
    time_unit: str              # "seconds" or "steps"


def build_event_sequences(events: Sequence[Event], time_unit: str = "seconds") -> EventSequences:
    """Like split.build_sequences (same item order and event order), keeping event features."""
    events = list(events)
    item_ids = sort_ids(e.item_id for e in events)  # type: ignore[misc]
    user_ids = sort_ids(e.user_id for e in events)  # type: ignore[misc]
    item_index = {item: i for i, item in enumerate(item_ids)}
    user_index = {user: u for u, user in enumerate(user_ids)}
    order = sorted(range(len(events)), key=lambda k: (user_index[events[k].user_id], events[k].ts,
                                                      events[k].row, item_index[events[k].item_id]))
    users = np.fromiter((user_index[events[k].user_id] for k in order), np.int64, len(order))
    bounds = np.searchsorted(users, np.arange(len(user_ids) + 1))
    items_all = np.fromiter((item_index[events[k].item_id] for k in order), np.int64, len(order))
    ts_all = np.fromiter((events[k].ts for k in order), np.int64, len(order))
    type_index = {t: i for i, t in enumerate(EVENT_TYPES)}
    types_all = np.fromiter((type_index[events[k].event_type] for k in order), np.int64, len(order))
    raw = np.zeros((len(order), interest_mod.N_NUMERIC))
    present = np.zeros((len(order), interest_mod.N_NUMERIC), bool)
    for n, k in enumerate(order):
        e = events[k]
        raw[n], present[n] = interest_mod.numeric_raw(e.dwell_s, e.amount, e.rating)
    cut = lambda a: [a[bounds[u]:bounds[u + 1]] for u in range(len(user_ids))]  # noqa: E731
    seq = Sequences(user_ids=user_ids, item_ids=item_ids, seqs=cut(items_all))
    return EventSequences(seq, cut(ts_all), cut(types_all), cut(raw), cut(present), time_unit)


def gap_buckets(ts: np.ndarray, n_buckets: int) -> np.ndarray:
    """interest.gap_bucket over a whole sequence, vectorised (integer arithmetic, exact)."""
    out = np.zeros(len(ts), np.int64)
    if len(ts) > 1:
        minutes = np.maximum(np.diff(ts), 0) // 60
        bit_length = np.searchsorted(1 << np.arange(62, dtype=np.int64), minutes, side="right")
        out[1:] = np.minimum(n_buckets - 1, 1 + bit_length)
    return out


@dataclass
class Window:
    """A slice [lo, hi) of one user's events, fed to the model as one sequence."""
    user: int
    lo: int
    hi: int


def training_windows(lengths: Sequence[int], max_len: int) -> list[Window]:
    """Cover each training sequence with windows of at most max_len + 1 events, from the end.

    Windows overlap by one event, so every event after a user's first is a prediction target
    exactly once; each window starts with a fresh state, as serving replays at most
    max_events events for a user without cached state.
    """
    out = []
    for u, n in enumerate(lengths):
        hi = n
        while hi >= 2:
            lo = max(0, hi - (max_len + 1))
            out.append(Window(u, lo, hi))
            if lo == 0:
                break
            hi = lo + 1
    return out


# --------------------------------------------------------------------------- model

class DriftRec(nn.Module):
    def __init__(self, n_items: int, c: TrainConfig, text: Optional[np.ndarray] = None,
                 known: Optional[np.ndarray] = None):
        super().__init__()
        self.config = c
        self.n_items = n_items
        ic = interest_mod.InterestConfig(item_dim=c.item_dim, hidden_size=c.hidden_size,
                                         num_layers=c.num_layers, n_gap_buckets=c.n_gap_buckets,
                                         half_life_s=float(c.half_life), max_events=c.max_events)
        self.interest = interest_mod.InterestModel(ic)
        self.item_emb = nn.Embedding(n_items, c.item_dim)
        nn.init.normal_(self.item_emb.weight, std=1.0 / math.sqrt(c.item_dim))
        use_text = text is not None and c.ablation != "no-text"
        if use_text:
            t = torch.as_tensor(np.asarray(text, np.float32))
            t = t / t.norm(dim=1, keepdim=True).clamp_min(1e-6)  # empty text stays zero
            self.register_buffer("text", t)
            self.text_proj = nn.Linear(t.shape[1], c.item_dim, bias=False)
        else:
            self.register_buffer("text", torch.zeros(0))
            self.text_proj = None
        k = torch.ones(n_items) if known is None else torch.as_tensor(np.asarray(known, np.float32))
        self.register_buffer("known", k)
        self.input_dropout = nn.Dropout(c.dropout)
        with torch.no_grad():  # the fused gate starts half open; small feature embeddings
            self.interest.features.event_type.weight.mul_(0.1)
            self.interest.features.gap_bucket.weight.mul_(0.1)

    def item_vectors(self, id_keep: Optional[torch.Tensor] = None) -> torch.Tensor:
        """All item vectors; ``id_keep`` (training only) masks the id part of some items."""
        known = self.known if id_keep is None else self.known * id_keep
        v = self.item_emb.weight * known[:, None]
        if self.text_proj is not None:
            v = v + self.text_proj(self.text)
        return v

    def user_vectors_all(self, items: torch.Tensor, ts: torch.Tensor, types: torch.Tensor,
                         gaps: torch.Tensor, num: torch.Tensor, lengths: torch.Tensor,
                         item_vecs: torch.Tensor) -> torch.Tensor:
        """[B, T, D]: the user vector after each event of right-padded sequences."""
        c = self.config
        f = self.interest.features
        x_item = item_vecs[items]                                        # [B, T, D]
        if c.ablation == "no-time":
            e = x_item + f.event_type(types)
        else:
            e = x_item + f.event_type(types) + f.gap_bucket(gaps) + f.numeric(num)
        out, _ = self.interest.lstm(self.input_dropout(e))               # [B, T, H]
        B, T = items.shape
        valid = torch.arange(T)[None, :] < lengths[:, None]              # [B, T]
        if c.ablation == "no-smoothing":
            long = torch.zeros_like(x_item)
        else:
            # long[t] = sum_{s<=t} 2^(-(ts_t - ts_s)/hl) item_s / sum of the weights
            dt = (ts[:, :, None] - ts[:, None, :]).clamp_min(0).float()  # [B, T(t), T(s)]
            w = torch.exp2(-dt / float(c.half_life))
            w = w * torch.tril(torch.ones(T, T))[None] * valid[:, None, :]
            long = (w @ x_item) / w.sum(-1, keepdim=True).clamp_min(1e-12)
        return self.interest.fuse_vectors(out, long)


# --------------------------------------------------------------------------- batches

@dataclass
class Batch:
    items: torch.Tensor
    ts: torch.Tensor
    types: torch.Tensor
    gaps: torch.Tensor
    num: torch.Tensor
    lengths: torch.Tensor


class Featurizer:
    """Turns (user, lo, hi) slices into padded model inputs; holds the normalisation constants."""

    def __init__(self, data: EventSequences, c: TrainConfig, train_lengths: Sequence[int]):
        self.data = data
        self.c = c
        raw = np.concatenate([data.numeric_raw[u][:n] for u, n in enumerate(train_lengths) if n] or
                             [np.zeros((0, interest_mod.N_NUMERIC))])
        pres = np.concatenate([data.numeric_present[u][:n] for u, n in enumerate(train_lengths) if n] or
                              [np.zeros((0, interest_mod.N_NUMERIC), bool)])
        mean = np.zeros(interest_mod.N_NUMERIC)
        std = np.ones(interest_mod.N_NUMERIC)
        for j in range(interest_mod.N_NUMERIC):
            v = raw[pres[:, j], j]
            if len(v) > 1:
                mean[j] = v.mean()
                std[j] = v.std() if v.std() > 1e-6 else 1.0
        self.mean, self.std = mean, std
        self.gaps = [gap_buckets(t, c.n_gap_buckets) for t in data.ts]

    def batch(self, slices: Sequence[tuple[int, int, int]]) -> Batch:
        T = max(hi - lo for _, lo, hi in slices)
        B = len(slices)
        items = np.zeros((B, T), np.int64)
        ts = np.zeros((B, T), np.int64)
        types = np.zeros((B, T), np.int64)
        gaps = np.zeros((B, T), np.int64)
        num = np.zeros((B, T, interest_mod.N_NUMERIC), np.float32)
        lengths = np.zeros(B, np.int64)
        d = self.data
        for b, (u, lo, hi) in enumerate(slices):
            n = hi - lo
            lengths[b] = n
            items[b, :n] = d.seq.seqs[u][lo:hi]
            t = d.ts[u][lo:hi]
            ts[b, :n] = t - t[0] if n else 0
            ts[b, n:] = ts[b, n - 1] if n else 0
            types[b, :n] = d.types[u][lo:hi]
            g = self.gaps[u][lo:hi].copy()
            if n:
                g[0] = 0  # a window starts like a first event: replay has no earlier event
            gaps[b, :n] = g
            num[b, :n] = interest_mod.normalise(d.numeric_raw[u][lo:hi], d.numeric_present[u][lo:hi],
                                                self.mean, self.std)
        return Batch(torch.from_numpy(items), torch.from_numpy(ts), torch.from_numpy(types),
                     torch.from_numpy(gaps), torch.from_numpy(num), torch.from_numpy(lengths))


def batches_by_length(windows: Sequence[Window], batch_tokens: int, rng: np.random.Generator
                      ) -> list[list[Window]]:
    """Group windows of similar length (less padding), shuffled within and across groups."""
    order = sorted(range(len(windows)), key=lambda k: (windows[k].hi - windows[k].lo, rng.random()))
    out, cur, cur_max = [], [], 0
    for k in order:
        w = windows[k]
        n = w.hi - w.lo
        if cur and max(cur_max, n) * (len(cur) + 1) > batch_tokens:
            out.append(cur)
            cur, cur_max = [], 0
        cur.append(w)
        cur_max = max(cur_max, n)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


# --------------------------------------------------------------------------- loss

def sampling_distribution(popularity: np.ndarray, uniform_share: float,
                          known: Optional[np.ndarray] = None) -> np.ndarray:
    """Negative-sampling probabilities: uniform over the known items (this share) plus
    popularity^0.75. Items absent from the training data are never drawn: training has not
    seen them, and pushing them down as negatives would teach the text tower to bury exactly
    the cold items it must place."""
    n = len(popularity)
    allowed = np.ones(n) if known is None else (np.asarray(known) > 0).astype(np.float64)
    if allowed.sum() == 0:
        allowed = np.ones(n)
    p = np.power(np.maximum(popularity, 0.0), 0.75) * allowed
    p = p / p.sum() if p.sum() > 0 else allowed / allowed.sum()
    q = uniform_share * allowed / allowed.sum() + (1.0 - uniform_share) * p
    q = np.maximum(q, 1e-12 * allowed)
    return q / q.sum()


def sampled_loss(user: torch.Tensor, pos: torch.Tensor, item_vecs: torch.Tensor, neg: torch.Tensor,
                 log_q: torch.Tensor, c: TrainConfig, n_items: int) -> torch.Tensor:
    """user [P, D], pos [P] item indices, neg [K] shared negatives, log_q [n_items]."""
    if c.loss == "ce":
        # Full softmax over every item training has seen (log_q is -inf for the others, which
        # are never pushed down, as with sampled negatives); neg is unused.
        logits = (user @ item_vecs.T).masked_fill(~torch.isfinite(log_q)[None, :], float("-inf"))
        return F.cross_entropy(logits, pos)
    pos_logit = (user * item_vecs[pos]).sum(-1)                     # [P]
    neg_logit = user @ item_vecs[neg].T                             # [P, K]
    hit = neg[None, :] == pos[:, None]                              # accidental hits
    if c.logq:
        k = float(len(neg))
        neg_logit = neg_logit - (log_q[neg] + math.log(k))[None, :]
        if c.loss == "ssm":
            pos_logit = pos_logit - (log_q[pos] + math.log(k))
    if c.loss == "ssm":
        logits = torch.cat([pos_logit[:, None], neg_logit.masked_fill(hit, float("-inf"))], 1)
        return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))
    neg_loss = F.softplus(neg_logit).masked_fill(hit, 0.0)                 # -log(1 - sigmoid)
    if c.loss == "bce":
        # The seed's BCE: one positive against the negatives' mean (in expectation one sampled
        # negative per positive). Summing over 1024 shared negatives instead drives every
        # score down at once and the model collapses (measured: NDCG@10 at chance on the demo).
        n_valid = (~hit).sum(-1).clamp_min(1)
        return (F.softplus(-pos_logit) + neg_loss.sum(-1) / n_valid).mean()
    # gBCE (Petrov & Macdonald 2023): the sum over k negatives, the positive's probability
    # raised to beta = alpha (t (1 - 1/alpha) + 1/alpha), alpha = k / (n_items - 1); meant for
    # k in the hundreds.
    alpha = len(neg) / max(n_items - 1, 1)
    beta = alpha * (c.gbce_t * (1 - 1 / alpha) + 1 / alpha)
    return (beta * F.softplus(-pos_logit) + neg_loss.sum(-1)).mean()


# --------------------------------------------------------------------------- evaluation

def user_vectors(model: DriftRec, feat: Featurizer, slices: Sequence[tuple[int, int, int]],
                 batch_users: int = 512) -> np.ndarray:
    """The user vector after the last event of each (user, lo, hi) slice (eval mode, no grad)."""
    model.eval()
    out = np.zeros((len(slices), model.config.item_dim), np.float32)
    order = sorted(range(len(slices)), key=lambda k: slices[k][2] - slices[k][1])
    with torch.no_grad():
        vecs = model.item_vectors()
        for lo in range(0, len(order), batch_users):
            idx = order[lo:lo + batch_users]
            sl = [slices[k] for k in idx]
            empty = [k for k, s in zip(idx, sl) if s[2] <= s[1]]
            keep = [(k, s) for k, s in zip(idx, sl) if s[2] > s[1]]
            if keep:
                b = feat.batch([s for _, s in keep])
                u = model.user_vectors_all(b.items, b.ts, b.types, b.gaps, b.num, b.lengths, vecs)
                last = u[torch.arange(len(keep)), b.lengths - 1]
                out[[k for k, _ in keep]] = last.numpy()
            if empty:  # no events: h = 0, long-term = 0
                h0 = torch.zeros(model.config.hidden_size)
                out[empty] = model.interest.fuse_vectors(h0, torch.zeros(model.config.item_dim)).numpy()
    return out


def rank_users(user_vecs: np.ndarray, item_vecs: np.ndarray, histories: Sequence[np.ndarray],
               targets: np.ndarray, batch_cells: int = 20_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Full-ranking ranks and candidate counts with the evaluator's exclusion and tie rules."""
    n, n_items = len(targets), item_vecs.shape[0]
    ranks = np.empty(n, np.int64)
    cands = np.empty(n, np.int64)
    step = max(1, batch_cells // max(n_items, 1))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        scores = (user_vecs[lo:hi].astype(np.float32) @ item_vecs.T.astype(np.float32)).astype(np.float64)
        ranks[lo:hi], cands[lo:hi] = evaluate_mod.full_ranks(scores, histories[lo:hi], targets[lo:hi])
    return ranks, cands


def history_slices(split: Split, max_events: int) -> list[tuple[int, int, int]]:
    """(user, lo, hi): the last max_events events before each evaluated user's target."""
    out = []
    for u, h in zip(split.users, split.histories):
        n = len(h)
        out.append((int(u), max(0, n - max_events), n))
    return out


# --------------------------------------------------------------------------- training loop

@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_ndcg10: float
    val_hr10: float
    seconds: float
    positions: int


@dataclass
class TrainResult:
    model: DriftRec
    featurizer: Featurizer
    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    stopped: str = ""
    train_seconds: float = 0.0
    refit_seconds: float = 0.0


def train(data: EventSequences, c: TrainConfig, text: Optional[np.ndarray] = None,
          cold_fraction: float = 0.0, progress: bool = True,
          log: Callable[[str], None] = print,
          checkpoint: Optional[Callable[[dict], None]] = None,
          resume: Optional[dict] = None) -> TrainResult:
    """Train on every user's events but the last two; early-stop on validation NDCG@10."""
    c.check()
    torch.manual_seed(c.seed)
    rng = np.random.default_rng(c.seed)
    val_split = leave_one_out(data.seq, target="validation", cold_fraction=cold_fraction, seed=0)
    # training sequences: what the validation split may fit on (cold items already removed
    # from fit_seqs there); events are addressed by position, so keep the uncut sequences
    # and train only on users' prefixes.
    if cold_fraction > 0:
        data = _drop_cold(data, val_split.cold_items)
        val_split = leave_one_out(data.seq, target="validation", seed=0)
    train_lengths = [len(s) for s in val_split.fit_seqs]
    model, feat, log_q, q_cdf, windows = _setup(data, c, text, train_lengths)
    opt = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    n_positions = sum(w.hi - w.lo - 1 for w in windows)
    # validation users: a fixed random subset
    val_idx = np.arange(len(val_split.targets))
    if c.val_users and len(val_idx) > c.val_users:
        val_idx = np.sort(np.random.default_rng(c.seed + 1).choice(val_idx, c.val_users, replace=False))
    val_hist = [val_split.histories[k] for k in val_idx]
    val_targets = val_split.targets[val_idx]
    val_slices = [(int(val_split.users[k]), max(0, len(val_split.histories[k]) - c.max_events),
                   len(val_split.histories[k])) for k in val_idx]
    log(f"training: {len(windows)} windows, {n_positions} positions, {data.seq.n_items} items, "
        f"{len(val_idx)} validation users, loss {c.loss}, {c.n_negatives} shared negatives")

    result = TrainResult(model, feat)
    best_state, best, bad, start_epoch = None, -1.0, 0, 1
    elapsed_before = 0.0
    if resume:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        best_state, best, bad = resume["best_state"], resume["best"], resume["bad"]
        start_epoch = resume["epoch"] + 1
        result.epochs = [EpochRecord(**e) for e in resume["epochs"]]
        elapsed_before = resume["elapsed"]
        rng = np.random.default_rng([c.seed, start_epoch])
        torch.manual_seed(c.seed + start_epoch)
        log(f"resumed after epoch {resume['epoch']} (best validation NDCG@10 {best:.4f})")
    t0 = time.perf_counter() - elapsed_before
    result.stopped = "max_epochs"
    for epoch in range(start_epoch, c.max_epochs + 1):
        model.train()
        e0 = time.perf_counter()
        total, count, out_of_time = _run_epoch(model, opt, feat, windows, c, rng, q_cdf, log_q,
                                               t0 + c.time_budget_s, progress, f"epoch {epoch}")
        uv = user_vectors(model, feat, val_slices)
        with torch.no_grad():
            iv = model.item_vectors().numpy()
        ranks, _ = rank_users(uv, iv, val_hist, val_targets)
        m = evaluate_mod.metrics_from_ranks(ranks, (10,))
        rec = EpochRecord(epoch, total / max(count, 1), float(m["NDCG@10"].mean()), float(m["HR@10"].mean()),
                          round(time.perf_counter() - e0, 2), count)
        result.epochs.append(rec)
        improved = rec.val_ndcg10 > best
        log(f"epoch {epoch}: loss {rec.train_loss:.4f}, validation NDCG@10 {rec.val_ndcg10:.4f} "
            f"HR@10 {rec.val_hr10:.4f}, {rec.seconds:.0f} s{' (best)' if improved else ''}"
            f"{' (time budget reached mid-epoch)' if out_of_time else ''}")
        if improved:
            best, bad = rec.val_ndcg10, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            result.best_epoch = epoch
        else:
            bad += 1
        if checkpoint:
            checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "best_state": best_state,
                        "best": best, "bad": bad, "epoch": epoch, "best_epoch": result.best_epoch,
                        "epochs": [asdict(e) for e in result.epochs],
                        "elapsed": time.perf_counter() - t0})
        if out_of_time:
            result.stopped = "time_budget"
            break
        if bad >= c.patience:
            result.stopped = "early_stopping"
            break
    if resume and not result.best_epoch:
        result.best_epoch = resume.get("best_epoch", 0)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.train_seconds = time.perf_counter() - t0
    if c.refit and result.best_epoch > 0:
        log(f"refit: {result.best_epoch} epochs on every event but each user's last")
        result.model, result.featurizer, secs = refit(data, c, text, result.best_epoch, feat.mean, feat.std,
                                                      progress, log)
        result.refit_seconds = secs
    return result


def _run_epoch(model: DriftRec, opt, feat: Featurizer, windows: Sequence[Window], c: TrainConfig,
               rng: np.random.Generator, q_cdf: np.ndarray, log_q: torch.Tensor, deadline: float,
               progress: bool, desc: str) -> tuple[float, int, bool]:
    """One pass over the windows; returns (summed loss, positions, stopped by the deadline)."""
    model.train()
    groups = batches_by_length(windows, c.batch_tokens, rng)
    total, count = 0.0, 0
    n_items = model.n_items
    for group in evaluate_mod._progress(groups, len(groups), desc, progress):
        b = feat.batch([(w.user, w.lo, w.hi) for w in group])
        id_keep = None
        if c.id_dropout > 0 and model.text_proj is not None:
            id_keep = (torch.rand(n_items) >= c.id_dropout).float()
        vecs = model.item_vectors(id_keep)
        u = model.user_vectors_all(b.items, b.ts, b.types, b.gaps, b.num, b.lengths, vecs)
        T = b.items.shape[1]
        pos_mask = torch.arange(T - 1)[None, :] < (b.lengths - 1)[:, None]
        user = u[:, :-1][pos_mask]
        pos = b.items[:, 1:][pos_mask]
        neg = torch.as_tensor(np.searchsorted(q_cdf, rng.random(c.n_negatives) * q_cdf[-1]).clip(0, n_items - 1))
        loss = sampled_loss(user, pos, vecs, neg, log_q, c, n_items)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        total += float(loss) * len(pos)
        count += len(pos)
        if time.perf_counter() > deadline:
            return total, count, True
    return total, count, False


def _setup(data: EventSequences, c: TrainConfig, text: Optional[np.ndarray], lengths: Sequence[int],
           numeric: Optional[tuple[np.ndarray, np.ndarray]] = None
           ) -> tuple[DriftRec, Featurizer, torch.Tensor, np.ndarray, list[Window]]:
    """A fresh model trained on each user's first ``lengths[u]`` events: the model (items
    outside that data unknown), its featurizer (``numeric``: normalisation constants to use
    instead of these events' own), log Q and the CDF of the negative sampler, the windows."""
    pop = np.zeros(data.seq.n_items)
    for u, n in enumerate(lengths):
        np.add.at(pop, data.seq.seqs[u][:n], 1.0)
    known = (pop > 0).astype(np.float32)
    model = DriftRec(data.seq.n_items, c, text=text, known=known)
    feat = Featurizer(data, c, lengths)
    if numeric is not None:
        feat.mean, feat.std = numeric
    with torch.no_grad():
        model.interest.features.numeric_mean.copy_(torch.as_tensor(feat.mean, dtype=torch.float32))
        model.interest.features.numeric_std.copy_(torch.as_tensor(feat.std, dtype=torch.float32))
    q = sampling_distribution(pop, c.uniform_share, known)
    log_q = torch.as_tensor(np.log(np.maximum(q, 1e-30)), dtype=torch.float32)
    return model, feat, log_q, np.cumsum(q), training_windows(lengths, c.max_events)


def refit(data: EventSequences, c: TrainConfig, text: Optional[np.ndarray], epochs: int,
          numeric_mean: np.ndarray, numeric_std: np.ndarray, progress: bool,
          log: Callable[[str], None]) -> tuple[DriftRec, Featurizer, float]:
    """Train a fresh model (same seed) for ``epochs`` epochs on every event but each user's last
    one: the data the baselines are fit on for the test target. The epoch count comes from
    early stopping on the validation target, which this data includes."""
    torch.manual_seed(c.seed)
    rng = np.random.default_rng([c.seed, 7])
    lengths = [max(0, len(s) - 1) for s in data.seq.seqs]
    # the normalisation constants selection trained with
    model, feat, log_q, q_cdf, windows = _setup(data, c, text, lengths, (numeric_mean, numeric_std))
    opt = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        total, count, out_of_time = _run_epoch(model, opt, feat, windows, c, rng, q_cdf, log_q,
                                               t0 + c.time_budget_s, progress, f"refit {epoch}/{epochs}")
        log(f"refit epoch {epoch}/{epochs}: loss {total / max(count, 1):.4f}"
            f"{' (time budget reached)' if out_of_time else ''}")
        if out_of_time:
            break
    model.eval()
    return model, feat, time.perf_counter() - t0


def _drop_cold(data: EventSequences, cold: np.ndarray) -> EventSequences:
    """Remove events on cold items from every sequence except each user's last (the target)."""
    keep = []
    for s in data.seq.seqs:
        k = ~cold[s]
        if len(s):
            k[-1] = True
        keep.append(k)
    sel = lambda arrs: [a[k] for a, k in zip(arrs, keep)]  # noqa: E731
    seq = Sequences(data.seq.user_ids, data.seq.item_ids, sel(data.seq.seqs))
    return EventSequences(seq, sel(data.ts), sel(data.types), sel(data.numeric_raw), sel(data.numeric_present),
                          data.time_unit)
