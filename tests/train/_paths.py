"""Shared test setup: makes models/train importable and says where the shared data is."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_DIR = REPO_ROOT / "models" / "train"
if str(TRAIN_DIR) not in sys.path:
    sys.path.insert(0, str(TRAIN_DIR))

from driftrec_train import datasets  # noqa: E402

DATA_DIR = datasets.data_dir()


def dataset_available(name: str) -> bool:
    return datasets.get(name).available()


def skip_message(name: str) -> str:
    return f"shared data not found at {datasets.get(name).path()} (set DR_DATA_DIR)"
