#!/usr/bin/python3
"""Writes the golden models, inputs and PyTorch outputs the C model tests compare against.

    /usr/bin/python3 tests/golden/generate.py --out build/tests/golden [--cases bert-mini,...]

Everything is derived from SEED (below) by models/train/driftrec_train/golden.py, so the
files are never committed: ctest runs this into the build directory first (fixture
"golden"). A case whose files exist with a matching stamp is not regenerated.
"""

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "models" / "train"))

from driftrec_train import golden  # noqa: E402

SEED = 20240611
CASES = ("bert-mini", "bert-base", "interest")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sources = [Path(golden.__file__).parent / f for f in
               ("golden.py", "bert.py", "interest.py", "export.py", "safetensors_io.py")]
    stamp_text = f"{SEED} " + " ".join(str(p.stat().st_mtime_ns) for p in sources)
    todo = []
    for case in args.cases.split(","):
        if case not in CASES:
            print(f"unknown case {case!r} (known: {', '.join(CASES)})", file=sys.stderr)
            return 2
        stamp = out / f"{case}.stamp"
        if not (stamp.exists() and stamp.read_text() == stamp_text):
            todo.append(case)
    for case in todo:
        golden.generate(out, SEED, cases=(case,))
        (out / f"{case}.stamp").write_text(stamp_text)
        print(f"golden: wrote {case} into {out}")
    if not todo:
        print("golden: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
