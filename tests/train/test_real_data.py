"""Checks against the real shared datasets (skipped where the data is absent). Seconds each."""

import unittest

import numpy as np

from ._paths import dataset_available, skip_message

from driftrec_train import baselines, datasets, evaluate
from driftrec_train.clean import clean_events
from driftrec_train.split import build_sequences, leave_one_out


def popularity_full_ranking(name: str) -> dict:
    data = evaluate.prepare(datasets.get(name).load(), name)
    split = leave_one_out(data.sequences)
    config = evaluate.EvalConfig(negatives=0, progress=False)
    result = evaluate.evaluate_split(split, [baselines.Popularity()], config, sampled=False)[0]
    return {"users": len(split.targets), **{k: v["mean"] for k, v in result.summary().items()}}


@unittest.skipUnless(dataset_available("movielens-100k"), skip_message("movielens-100k"))
class MovieLensTest(unittest.TestCase):
    def test_popularity_reproduces_reference(self) -> None:
        got = popularity_full_ranking("movielens-100k")
        self.assertEqual(got["users"], 943)
        self.assertEqual(round(got["HR@10"], 4), 0.0859)
        self.assertEqual(round(got["NDCG@10"], 4), 0.0449)

    def test_ties_on_last_two_events(self) -> None:
        result = datasets.get("movielens-100k").load()
        self.assertEqual(len(result.events), 100_000)
        self.assertEqual(len(result.items), 1682)
        last_two = {}
        for e in sorted(result.events, key=lambda e: (e.user_id, e.ts, e.row)):
            last_two.setdefault(e.user_id, []).append(e.ts)
        ties = sum(1 for ts in last_two.values() if ts[-1] == ts[-2])
        self.assertEqual(ties, 415)


@unittest.skipUnless(dataset_available("s3rec-beauty"), skip_message("s3rec-beauty"))
class S3RecBeautyTest(unittest.TestCase):
    def test_popularity_reproduces_reference(self) -> None:
        got = popularity_full_ranking("s3rec-beauty")
        self.assertEqual(got["users"], 22363)
        self.assertEqual((round(got["HR@10"], 4), round(got["NDCG@10"], 4)), (0.0135, 0.0061))


@unittest.skipUnless(dataset_available("amazon-all-beauty"), skip_message("amazon-all-beauty"))
class AllBeautyTest(unittest.TestCase):
    def test_duplicates_counted(self) -> None:
        result = datasets.get("amazon-all-beauty").load()
        events, report = clean_events(result.events)
        self.assertEqual(report.counts["rows_in"], 5269)
        self.assertEqual(report.counts["dropped_duplicate"], 1108)
        self.assertEqual(report.counts["rows_out"], 4161)
        data = build_sequences(events)
        self.assertEqual((len(data.user_ids), data.n_items), (991, 85))
        self.assertEqual(result.counts["missing_reviewText"], 5)


@unittest.skipUnless(dataset_available("unisrec-scientific"), skip_message("unisrec-scientific"))
class ScientificTest(unittest.TestCase):
    def test_sequences_join_item_text(self) -> None:
        data = evaluate.prepare(datasets.get("unisrec-scientific").load(), "sci")
        self.assertEqual((len(data.sequences.user_ids), data.sequences.n_items, data.sequences.n_events),
                         (2928, 1585, 19712))
        self.assertTrue(all(data.item_text))
        self.assertTrue(np.all([len(s) >= 5 for s in data.sequences.seqs]))


if __name__ == "__main__":
    unittest.main()
