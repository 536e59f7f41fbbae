#!/usr/bin/python3
"""driftrec-train: train, evaluate and export a recommendation model from a config file.

    /usr/bin/python3 models/train/train.py models/train/configs/movielens-100k.json
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driftrec_train import runtime  # noqa: E402,F401  (before numpy/torch)
from driftrec_train.pipeline import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
