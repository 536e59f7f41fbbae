"""Named benchmark datasets and where to find them.

Data is never part of the repository: it is read from ``$DR_DATA_DIR``, by default
``<repo root>/../shared/data``. Each name maps to a loader call on files under that folder;
the folders' own READMEs give sources and terms.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import loaders
from .loaders import LoadResult

REPO_ROOT = Path(__file__).resolve().parents[3]


def data_dir() -> Path:
    """``$DR_DATA_DIR`` if set, else ``<repo root>/../shared/data``."""
    env = os.environ.get("DR_DATA_DIR")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str
    loader: Callable[[Path], LoadResult]
    description: str
    has_text: bool = False

    def path(self) -> Path:
        return data_dir() / self.folder

    def available(self) -> bool:
        return self.path().exists()

    def load(self) -> LoadResult:
        return self.loader(self.path())


def _scientific(folder: Path) -> LoadResult:
    result = loaders.load_recbole_sequences(folder / "Scientific")
    result.items = loaders.load_item_text(folder / "Scientific.text")
    return result


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("movielens-100k", "movielens-100k", loaders.load_movielens,
                "MovieLens 100k ratings with titles and genres", has_text=True),
    DatasetSpec("amazon-all-beauty", "amazon-all-beauty-5core-2018",
                lambda p: loaders.load_amazon_reviews(p / "All_Beauty_5.json.gz"),
                "Amazon 2018 All_Beauty 5-core reviews with text (85 items)"),
    DatasetSpec("bert4rec-amazon-beauty", "bert4rec-amazon-beauty",
                lambda p: loaders.load_user_item_pairs(p / "beauty.txt"),
                "BERT4Rec's Amazon Beauty split (40k users, 55k items)"),
    DatasetSpec("sasrec-amazon-video-games", "sasrec-amazon-video-games",
                lambda p: loaders.load_user_item_pairs(p / "Video.txt"),
                "SASRec's Amazon Games split (31k users, 24k items)"),
    DatasetSpec("s3rec-beauty", "s3rec-amazon-yelp-seq",
                lambda p: loaders.load_user_sequences(p / "Beauty.txt"),
                "S3-Rec/ICLRec Amazon Beauty (22k users, 12k items)"),
    DatasetSpec("s3rec-sports", "s3rec-amazon-yelp-seq",
                lambda p: loaders.load_user_sequences(p / "Sports_and_Outdoors.txt"),
                "S3-Rec/ICLRec Amazon Sports_and_Outdoors (36k users, 18k items)"),
    DatasetSpec("unisrec-scientific", "unisrec-amazon-scientific-subset", _scientific,
                "UniSRec Amazon Scientific subset with item text (2.9k users, 1.6k items)", has_text=True),
)}

TABLE_DATASETS: tuple[str, ...] = (
    "movielens-100k", "bert4rec-amazon-beauty", "sasrec-amazon-video-games", "s3rec-beauty", "s3rec-sports",
)
"""The datasets of the baseline table in docs/evaluation.md."""


def get(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]
