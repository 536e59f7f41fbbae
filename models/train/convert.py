#!/usr/bin/env python3
"""Write a named dataset (or a raw source file) in the driftrec format: events.jsonl, items.jsonl, clean.json.

    /usr/bin/python3 models/train/convert.py --dataset movielens-100k --out out/ml-100k
    /usr/bin/python3 models/train/convert.py --amazon-reviews reviews.json.gz --out out/shop

Exit status 0 on success, 2 on bad input (the message names file and line).
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driftrec_train import datasets, loaders  # noqa: E402
from driftrec_train.clean import clean_events  # noqa: E402
from driftrec_train.events import DataError, write_events, write_items  # noqa: E402

SOURCES = {
    "amazon_reviews": loaders.load_amazon_reviews,
    "movielens": loaders.load_movielens,
    "pairs": loaders.load_user_item_pairs,
    "sequences": loaders.load_user_sequences,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dataset", help=f"named dataset: {', '.join(datasets.DATASETS)}")
    group.add_argument("--amazon-reviews", type=Path, help="Amazon review JSON lines (.gz)")
    group.add_argument("--movielens", type=Path, help="ml-100k folder (u.data, u.item)")
    group.add_argument("--pairs", type=Path, help="'user item' per line")
    group.add_argument("--sequences", type=Path, help="'user i1 i2 ...' per line")
    parser.add_argument("--items-text", type=Path, help="RecBole .text item file to add as items.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    try:
        if args.dataset:
            spec = datasets.get(args.dataset)
            if not spec.available():
                raise FileNotFoundError(f"dataset {args.dataset!r} not found at {spec.path()} (set DR_DATA_DIR)")
            result = spec.load()
        else:
            name = next(n for n in SOURCES if getattr(args, n) is not None)
            result = SOURCES[name](getattr(args, name))
        if args.items_text:
            result.items = loaders.load_item_text(args.items_text)
        events, report = clean_events(result.events)
        n_events = write_events(args.out / "events.jsonl", events)
        n_items = write_items(args.out / "items.jsonl", result.items.values()) if result.items else 0
        (args.out / "clean.json").write_text(
            json.dumps({"load_counts": dict(result.counts), **report.to_json()}, indent=1) + "\n", encoding="utf-8")
    except (DataError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {n_events} events, {n_items} items; cleaning: {report.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
