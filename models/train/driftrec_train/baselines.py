"""The simple baselines every model must beat, each defined exactly in docs/evaluation.md.

A model is anything with ``name``, ``fit(FitData)`` and ``score(histories) -> (B, n_items)``
float64 array of finite scores (higher is better). The evaluator does the exclusion of
earlier items and the tie-breaking, so a model never has to.

All of them are fit on ``Split.fit_seqs`` only (every user's events before the evaluated
target), which is what keeps the comparison honest.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

import numpy as np

DENSE_ITEM_LIMIT = 8000
"""Up to this many items the item-item matrices are dense (fast BLAS); above, sparse rows."""


@dataclass
class FitData:
    """What a model may learn from: the fit sequences, the item count, optional item text."""

    seqs: list[np.ndarray]
    n_items: int
    item_text: Optional[list[str]] = None

    def popularity(self) -> np.ndarray:
        nonempty = [s for s in self.seqs if len(s)]
        if not nonempty:
            return np.zeros(self.n_items)
        return np.bincount(np.concatenate(nonempty), minlength=self.n_items).astype(np.float64)


class Model(Protocol):
    name: str

    def fit(self, data: FitData) -> None: ...

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray: ...


# --------------------------------------------------------------------------- sparse helpers

@dataclass
class CSR:
    """Minimal compressed sparse rows (numpy has none and scipy is not a dependency)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_cols: int

    @classmethod
    def from_coo(cls, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> "CSR":
        """Sum duplicates and sort by (row, col)."""
        n_rows, n_cols = shape
        key = rows.astype(np.int64) * n_cols + cols.astype(np.int64)
        uniq, inverse = np.unique(key, return_inverse=True)
        summed = np.bincount(inverse, weights=vals, minlength=len(uniq))
        r = uniq // n_cols
        indptr = np.searchsorted(r, np.arange(n_rows + 1)).astype(np.int64)
        return cls(indptr=indptr, indices=(uniq % n_cols).astype(np.int64), data=summed, n_cols=n_cols)

    def gather_rows(self, rows: np.ndarray, row_weights: np.ndarray, out_rows: np.ndarray, n_out: int,
                    base: Optional[np.ndarray] = None) -> np.ndarray:
        """Dense (n_out, n_cols): ``base`` (a row added to every output row, default 0) plus, for
        every k, row_weights[k] * self[rows[k]] added into output row out_rows[k]."""
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        size = n_out * self.n_cols
        # Positions of every stored entry of every requested row, without a Python loop.
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        target = np.repeat(out_rows, lengths) * self.n_cols + self.indices[offsets]
        weights = np.repeat(row_weights, lengths) * self.data[offsets]
        if len(np.unique(out_rows)) == len(out_rows):
            # One source row per output row: the targets are distinct (columns are unique within
            # a CSR row), so plain fancy-index addition is exact and touches only the entries.
            out = np.zeros(size) if base is None else np.tile(base, n_out)
            out[target] += weights
        else:
            out = np.bincount(target, weights=weights, minlength=size)
            if base is not None:
                out += np.tile(base, n_out)
        return out.reshape(n_out, self.n_cols)


def _flatten(histories: Sequence[np.ndarray], weights: Optional[Sequence[np.ndarray]] = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, weights, batch row) of all history entries of a batch."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    items = np.concatenate(histories) if lengths.sum() else np.zeros(0, dtype=np.int64)
    w = np.concatenate(weights) if weights is not None and lengths.sum() else np.ones(len(items))
    return items.astype(np.int64), w, np.repeat(np.arange(len(histories)), lengths)


def _user_item(seqs: Sequence[np.ndarray], n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary user-item incidence as (user, item) pairs, one per distinct item of a user."""
    users, items = [], []
    for u, s in enumerate(seqs):
        if len(s):
            distinct = np.unique(s)
            users.append(np.full(len(distinct), u, dtype=np.int64))
            items.append(distinct)
    if not users:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(users), np.concatenate(items).astype(np.int64)


# --------------------------------------------------------------------------- baselines

class Popularity:
    """score(j) = number of fit events on item j (same for every user)."""

    name = "popularity"

    def fit(self, data: FitData) -> None:
        self.pop = data.popularity()

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.tile(self.pop, (len(histories), 1))


class Transitions:
    """First-order Markov counts from the user's last item, popularity as the tie-breaker.

    score(j) = c(last -> j) + pop(j) / (1 + max pop), where c counts how often j immediately
    follows ``last`` in the fit sequences. The popularity term is < 1, so it only orders items
    with equal counts (most items have count 0).
    """

    name = "transitions"

    def fit(self, data: FitData) -> None:
        src = [s[:-1] for s in data.seqs if len(s) > 1]
        dst = [s[1:] for s in data.seqs if len(s) > 1]
        a = np.concatenate(src) if src else np.zeros(0, dtype=np.int64)
        b = np.concatenate(dst) if dst else np.zeros(0, dtype=np.int64)
        self.counts = CSR.from_coo(a, b, np.ones(len(a)), (data.n_items, data.n_items))
        pop = data.popularity()
        self.prior = pop / (1.0 + pop.max(initial=0.0))

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        has = np.array([len(h) > 0 for h in histories])
        last = np.array([h[-1] if len(h) else 0 for h in histories], dtype=np.int64)
        rows = np.flatnonzero(has)
        return self.counts.gather_rows(last[rows], np.ones(len(rows)), rows, len(histories), base=self.prior)


class ItemKNN:
    """Item-based kNN over whole histories with cosine similarity on user co-occurrence.

    sim(a, b) = |U(a) & U(b)| / sqrt(|U(a)| |U(b)|) for a != b, where U(i) is the set of users
    whose fit sequence contains i (each user counted once); sim(a, a) = 0.
    score(j) = sum of sim(h, j) over the distinct items h of the user's history. No neighbour
    truncation: every co-occurring item contributes.
    """

    name = "item-knn"

    def fit(self, data: FitData) -> None:
        users, items = _user_item(data.seqs, data.n_items)
        n = data.n_items
        counts = np.bincount(items, minlength=n).astype(np.float64)
        inv = np.zeros(n)
        inv[counts > 0] = 1.0 / np.sqrt(counts[counts > 0])
        self.n_items = n
        if n <= DENSE_ITEM_LIMIT:
            x = np.zeros((len(data.seqs), n), dtype=np.float32)
            x[users, items] = 1.0
            co = (x.T @ x).astype(np.float64)
            np.fill_diagonal(co, 0.0)
            self.dense: Optional[np.ndarray] = co * inv[:, None] * inv[None, :]
            self.sparse: Optional[CSR] = None
            return
        self.dense = None
        bounds = np.searchsorted(users, np.arange(len(data.seqs) + 1))
        rows, cols = [], []
        for u in range(len(data.seqs)):
            its = items[bounds[u]:bounds[u + 1]]
            if len(its) > 1:
                rows.append(np.repeat(its, len(its)))
                cols.append(np.tile(its, len(its)))
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        off = r != c
        r, c = r[off], c[off]
        co = CSR.from_coo(r, c, np.ones(len(r)), (n, n))
        row_of_entry = np.repeat(np.arange(n), np.diff(co.indptr))
        co.data = co.data * inv[row_of_entry] * inv[co.indices]
        self.sparse = co

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        distinct = [np.unique(h) for h in histories]
        items, weights, rows = _flatten(distinct)
        if self.dense is not None:
            x = np.zeros((len(histories), self.n_items))
            np.add.at(x, (rows, items), weights)
            return x @ self.dense
        assert self.sparse is not None
        return self.sparse.gather_rows(items, weights, rows, len(histories))


def item_vectors(seqs: Sequence[np.ndarray], n_items: int, dim: int = 64, seed: int = 0,
                 power_iters: int = 6, exact: Optional[bool] = None) -> np.ndarray:
    """Item vectors E (n_items x dim) with E E^T ~ the cosine co-occurrence matrix.

    A = X D^{-1/2} where X is the binary user-item matrix of the fit data and D the item user
    counts, so A^T A is the cosine matrix of :class:`ItemKNN` (with ones on the diagonal).
    E = V_d S_d from the rank-``dim`` SVD A ~ U_d S_d V_d^T: exact (LAPACK) when the dense A
    is small, otherwise the randomized range finder of Halko et al. with ``power_iters``
    power iterations and a fixed seed (``exact`` forces either). Items never seen in the fit
    data get the zero vector. Singular vectors have a sign ambiguity; scores do not (E E^T).
    """
    users, items = _user_item(seqs, n_items)
    n_users = len(seqs)
    counts = np.bincount(items, minlength=n_items).astype(np.float64)
    inv = np.zeros(n_items)
    inv[counts > 0] = 1.0 / np.sqrt(counts[counts > 0])
    vals = inv[items]
    dim = min(dim, n_items, max(n_users, 1))
    if exact if exact is not None else n_users * n_items <= 2.5e7:
        a = np.zeros((n_users, n_items))
        a[users, items] = vals
        _, s, vt = np.linalg.svd(a, full_matrices=False)
        return vt[:dim].T * s[:dim]

    def a_mul(m: np.ndarray) -> np.ndarray:  # A @ m, (n_users, k)
        return np.stack([np.bincount(users, weights=vals * m[items, c], minlength=n_users)
                         for c in range(m.shape[1])], axis=1)

    def at_mul(m: np.ndarray) -> np.ndarray:  # A^T @ m, (n_items, k)
        return np.stack([np.bincount(items, weights=vals * m[users, c], minlength=n_items)
                         for c in range(m.shape[1])], axis=1)

    rng = np.random.default_rng(seed)
    width = dim + 16
    q, _ = np.linalg.qr(a_mul(rng.standard_normal((n_items, width))))
    for _ in range(power_iters):
        z, _ = np.linalg.qr(at_mul(q))
        q, _ = np.linalg.qr(a_mul(z))
    b = at_mul(q).T  # (width, n_items) = Q^T A
    _, s, vt = np.linalg.svd(b, full_matrices=False)
    return vt[:dim].T * s[:dim]


class Pooling:
    """Static pooling of item vectors: score(j) = <u, e_j>.

    e_j is row j of :func:`item_vectors` (rank ``dim``) scaled to unit length (zero rows stay
    zero), so <e_a, e_b> is the cosine of the two items' low-rank co-occurrence profiles;
    unnormalised rows let a few dense clusters dominate every user's list.
    ``half_life=None``: u is the plain mean of the vectors of the history events (repeats count
    each time). Otherwise u is the weighted mean with weight 0.5 ** (age / half_life), where age
    is the number of events between that event and the most recent one (0 for the last).
    Steps, not seconds, so that the definition is the same on the order-only datasets.
    """

    def __init__(self, dim: int = 128, half_life: Optional[float] = None, seed: int = 0) -> None:
        self.dim = dim
        self.half_life = half_life
        self.seed = seed
        self.name = "pool-mean" if half_life is None else "pool-decay"

    _last: Optional[tuple] = None
    """(fit sequences object, n_items, dim, seed, vectors) of the last fit: pool-mean and
    pool-decay share item vectors, so the SVD runs once per split. The sequences object itself
    is kept (and compared by identity), so a stale entry can never match a new split."""

    def fit(self, data: FitData) -> None:
        last = Pooling._last
        if last is not None and last[0] is data.seqs and last[1:4] == (data.n_items, self.dim, self.seed):
            self.vectors = last[4]
            return
        vectors = item_vectors(data.seqs, data.n_items, self.dim, self.seed)
        norms = np.linalg.norm(vectors, axis=1)
        vectors[norms > 0] /= norms[norms > 0, None]
        vectors.setflags(write=False)
        self.vectors = vectors
        Pooling._last = (data.seqs, data.n_items, self.dim, self.seed, vectors)

    def user_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(histories), self.vectors.shape[1]))
        for b, h in enumerate(histories):
            if not len(h):
                continue
            if self.half_life is None:
                w = np.ones(len(h))
            else:
                w = 0.5 ** (np.arange(len(h) - 1, -1, -1) / self.half_life)
            out[b] = (w / w.sum()) @ self.vectors[h]
        return out

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return self.user_vectors(histories) @ self.vectors.T


_TOKEN = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset("a an and are as at be by for from in is it of on or the to with".split())


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric runs of length >= 2, minus a short English stop list."""
    return [t for t in _TOKEN.findall(text.lower()) if len(t) >= 2 and t not in STOPWORDS]


class BagOfWords:
    """Text-only content baseline (the one that can score items never seen in training).

    Each item is the TF-IDF vector of its text (title, category, brand):
    w(t, i) = (1 + ln tf(t, i)) * (ln((1 + N) / (1 + df(t))) + 1), rows L2-normalised, with
    df counted over the catalogue's item texts. The user is the mean of the history items'
    vectors; score(j) = <user, item_j>. Items without text score 0.
    """

    name = "bow-text"

    def fit(self, data: FitData) -> None:
        if data.item_text is None:
            raise ValueError("bow-text needs item text and this dataset has none")
        docs = [Counter(tokenize(t)) for t in data.item_text]
        df: Counter = Counter()
        for doc in docs:
            df.update(doc.keys())
        vocab = {t: k for k, t in enumerate(sorted(df))}
        n = len(docs)
        idf = np.array([math.log((1 + n) / (1 + df[t])) + 1.0 for t in sorted(df)])
        if n * len(vocab) > 1e8:
            raise ValueError(f"bow-text keeps a dense item x term matrix; {n} x {len(vocab)} is too large")
        matrix = np.zeros((n, len(vocab)), dtype=np.float32)
        for i, doc in enumerate(docs):
            for term, tf in doc.items():
                matrix[i, vocab[term]] = (1.0 + math.log(tf)) * idf[vocab[term]]
        norms = np.linalg.norm(matrix, axis=1)
        matrix[norms > 0] /= norms[norms > 0, None]
        self.matrix = matrix

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        users = np.zeros((len(histories), self.matrix.shape[1]), dtype=np.float32)
        for b, h in enumerate(histories):
            if len(h):
                users[b] = self.matrix[h].mean(axis=0)
        return (users @ self.matrix.T).astype(np.float64)


DEFAULT_HALF_LIFE = 2.0
"""Half-life (in events) of pool-decay; see docs/evaluation.md for how it was chosen."""

BASELINES = ("popularity", "transitions", "item-knn", "pool-mean", "pool-decay", "bow-text")


def make(name: str, half_life: float = DEFAULT_HALF_LIFE, dim: int = 128, seed: int = 0) -> Model:
    """Construct a baseline by its table name."""
    if name == "popularity":
        return Popularity()
    if name == "transitions":
        return Transitions()
    if name == "item-knn":
        return ItemKNN()
    if name == "pool-mean":
        return Pooling(dim=dim, half_life=None, seed=seed)
    if name == "pool-decay":
        return Pooling(dim=dim, half_life=half_life, seed=seed)
    if name == "bow-text":
        return BagOfWords()
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
