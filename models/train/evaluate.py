#!/usr/bin/env python3
"""Command-line entry of the driftrec evaluator: ``/usr/bin/python3 models/train/evaluate.py --help``.

Thin wrapper so the CLI works from the repository root without installing anything; the
code is in driftrec_train/evaluate.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driftrec_train.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
