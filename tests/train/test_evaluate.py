"""The evaluator and the baselines on toy data whose every number is computed by hand."""

import math
import unittest
from unittest import mock

import numpy as np

from ._paths import TRAIN_DIR  # noqa: F401  (puts models/train on sys.path)

from driftrec_train import baselines, evaluate
from driftrec_train.events import Event
from driftrec_train.split import build_sequences, leave_one_out, sort_ids


def events_from(rows):
    """rows: (user, item, ts) in file order."""
    return [Event(u, i, ts, "view", row=r) for r, (u, i, ts) in enumerate(rows)]


# Items 1, 2, 3, 7, 10, 20. Popularity over all but each user's last event:
# a: 10 2 | b: 2 7 | c: 3 | d: 7 2 10 | e: 3   ->   1:0  2:3  3:2  7:2  10:2  20:0
TOY = [("a", "10", 1), ("a", "2", 2), ("a", "3", 3),
       ("b", "2", 5), ("b", "7", 5), ("b", "10", 6),
       ("c", "3", 1), ("c", "20", 2),
       ("d", "7", 1), ("d", "2", 2), ("d", "10", 3), ("d", "3", 4),
       ("e", "3", 1), ("e", "1", 2)]


class FixedScores:
    """Test model: the same score vector for every user."""

    name = "fixed"

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float64)

    def fit(self, data):
        pass

    def score(self, histories):
        return np.tile(self.scores, (len(histories), 1))


class SequenceTest(unittest.TestCase):
    def test_numeric_ids_sort_as_numbers(self) -> None:
        self.assertEqual(sort_ids(["10", "9", "2", "9"]), ["2", "9", "10"])
        self.assertEqual(sort_ids(["10", "9", "B0"]), ["10", "9", "B0"])

    def test_order_is_time_then_file_row(self) -> None:
        rows = [("u", "5", 9), ("u", "6", 3), ("u", "7", 9), ("u", "8", 3)]
        data = build_sequences(events_from(rows))
        self.assertEqual([data.item_ids[i] for i in data.seqs[0]], ["6", "8", "5", "7"])

    def test_leave_one_out(self) -> None:
        data = build_sequences(events_from(TOY))
        split = leave_one_out(data)
        ids = data.item_ids
        self.assertEqual(ids, ["1", "2", "3", "7", "10", "20"])
        self.assertEqual([data.user_ids[u] for u in split.users], ["a", "b", "d"])
        self.assertEqual([ids[t] for t in split.targets], ["3", "10", "3"])
        self.assertEqual(dict(zip(ids, split.popularity())), {"1": 0, "2": 3, "3": 2, "7": 2, "10": 2, "20": 0})
        valid = leave_one_out(data, target="validation")
        self.assertEqual([ids[t] for t in valid.targets], ["2", "7", "10"])
        self.assertEqual([[ids[i] for i in h] for h in valid.histories], [["10"], ["2"], ["7", "2"]])
        self.assertEqual(dict(zip(ids, valid.popularity())), {"1": 0, "2": 2, "3": 0, "7": 1, "10": 1, "20": 0})

    def test_cold_split_hides_test_items(self) -> None:
        rng = np.random.default_rng(1)
        rows = [(f"u{u}", str(i), t) for u in range(60) for t, i in enumerate(rng.choice(40, 6, replace=False))]
        split = leave_one_out(build_sequences(events_from(rows)), cold_fraction=0.3, seed=4)
        self.assertGreater(len(split.targets), 0)
        self.assertTrue(split.cold_items[split.targets].all())
        seen = np.concatenate(split.fit_seqs)
        self.assertFalse(split.cold_items[seen].any())
        self.assertTrue(all(len(h) >= 2 for h in split.histories))


class RankingTest(unittest.TestCase):
    def test_popularity_on_toy_by_hand(self) -> None:
        split = leave_one_out(build_sequences(events_from(TOY)))
        config = evaluate.EvalConfig(ks=(1, 10), progress=False)
        result = evaluate.evaluate_split(split, [baselines.Popularity()], config, sampled=False)[0]
        # a: target 3 ties with 7, lower id wins -> rank 0. b: 3 ties with target 10 and has the
        # lower id *numerically* -> rank 1. d: rank 0. Excluded items never outrank.
        np.testing.assert_array_equal(result.per_user["HR@1"], [1, 0, 1])
        np.testing.assert_allclose(result.per_user["NDCG@10"], [1, 1 / math.log2(3), 1])
        np.testing.assert_allclose(result.per_user["MRR"], [1, 0.5, 1])
        # candidates: a 4, b 4, d 3 -> AUC = (n-1-rank)/(n-1)
        np.testing.assert_allclose(result.per_user["AUC"], [1, 2 / 3, 1])
        summary = result.summary()
        self.assertAlmostEqual(summary["NDCG@10"]["mean"], (2 + 1 / math.log2(3)) / 3)
        self.assertAlmostEqual(summary["MRR"]["mean"], 2.5 / 3)

    def test_exclusion_keeps_target_and_ties_use_lower_id(self) -> None:
        scores = np.array([[9.0, 5.0, 5.0, 5.0, 1.0]] * 3)
        histories = [np.array([0, 2]), np.array([0, 3]), np.array([3, 0, 3])]
        targets = np.array([3, 2, 3])  # the last user's target is also in its history (a repeat)
        ranks, cands = evaluate.full_ranks(scores.copy(), histories, targets)
        np.testing.assert_array_equal(ranks, [1, 1, 2])  # equal scores at lower ids (1; 1 and 2) outrank
        np.testing.assert_array_equal(cands, [3, 3, 4])
        ranks, _ = evaluate.full_ranks(scores.copy(), [np.array([1])] * 3, targets)
        np.testing.assert_array_equal(ranks, [2, 1, 2])  # item 0 scores higher; item 1 excluded

    def test_non_finite_scores_rejected(self) -> None:
        with self.assertRaisesRegex(ValueError, "non-finite"):
            evaluate.full_ranks(np.array([[np.nan, 1.0]]), [np.array([], dtype=np.int64)], np.array([1]))

    def test_sampled_ranks_and_negatives(self) -> None:
        split = leave_one_out(build_sequences(events_from(
            [(f"u{u}", str(i), t) for u in range(20) for t, i in enumerate(range(u % 5, u % 5 + 4))] +
            [("z", str(i), i) for i in range(8, 16)])))
        for mode in evaluate.SAMPLED_MODES:
            neg = evaluate.sample_negatives(split, 5, mode, seed=3)
            again = evaluate.sample_negatives(split, 5, mode, seed=3)
            np.testing.assert_array_equal(neg, again)
            pop = split.popularity()
            for row, h, t in zip(neg, split.histories, split.targets):
                self.assertEqual(len(set(row)), 5)
                self.assertFalse(set(row) & (set(h.tolist()) | {int(t)}))
                if mode == "pop":
                    self.assertTrue((pop[row] > 0).all())
        few = leave_one_out(build_sequences(events_from(
            [("a", "1", 1), ("a", "2", 2), ("a", "3", 3), ("b", "4", 1), ("b", "5", 2), ("c", "6", 1)])))
        # user a: banned {1,2,3}; only item 4 has a positive count -> it plus uniform fill from {5, 6}
        neg = evaluate.sample_negatives(few, 3, "pop", seed=0)
        self.assertEqual(sorted(neg[0].tolist()), [3, 4, 5])  # indices of items 4, 5, 6
        with self.assertRaisesRegex(ValueError, "items left to sample"):
            evaluate.sample_negatives(few, 4, "uni", seed=0)
        scores = np.array([[0.0, 3.0, 2.0, 2.0, 5.0]])
        self.assertEqual(evaluate.sampled_ranks(scores, np.array([2]), np.array([[3, 4, 0]]))[0], 1)
        self.assertEqual(evaluate.sampled_ranks(scores, np.array([3]), np.array([[2, 0]]))[0], 1)

    def test_interval_and_paired_difference(self) -> None:
        ci = evaluate.mean_ci(np.array([0.0, 1.0, 0.0, 1.0]))
        self.assertAlmostEqual(ci["mean"], 0.5)
        self.assertAlmostEqual(ci["ci95"], evaluate.Z95 * math.sqrt(1 / 3) / 2)
        a = evaluate.ModelResult("a", {"HR@10": np.array([1.0, 1.0, 0.0])}, 0, 0)
        b = evaluate.ModelResult("b", {"HR@10": np.array([0.0, 1.0, 0.0])}, 0, 0)
        diff = evaluate.paired_differences(a, b)["HR@10"]
        self.assertAlmostEqual(diff["mean"], 1 / 3)
        self.assertAlmostEqual(diff["ci95"], evaluate.Z95 * math.sqrt(1 / 3) / math.sqrt(3))


class BaselineTest(unittest.TestCase):
    SEQS = [np.array([0, 1, 2]), np.array([0, 1, 3]), np.array([0, 2])]

    def test_transitions(self) -> None:
        model = baselines.Transitions()
        model.fit(baselines.FitData(self.SEQS, 4))
        # c(1->2)=1, c(1->3)=1; popularity 3,2,2,1 / (1+3) breaks ties
        np.testing.assert_allclose(model.score([np.array([2, 1])])[0], [0.75, 0.5, 1.5, 1.25])
        np.testing.assert_allclose(model.score([np.array([1, 0])])[0], [0.75, 2.5, 1.5, 0.25])

    def test_item_knn_dense_and_sparse(self) -> None:
        seqs = [np.array([0, 1]), np.array([0, 1, 2]), np.array([2, 2])]
        # U(0)={0,1}, U(1)={0,1}, U(2)={1,2}: sim(0,1)=1, sim(0,2)=sim(1,2)=1/2
        expected = np.array([[0.0, 1.0, 0.5], [1.0, 1.0, 1.0]])
        for limit in (10, 0):
            with self.subTest(dense=limit > 0), mock.patch.object(baselines, "DENSE_ITEM_LIMIT", limit):
                model = baselines.ItemKNN()
                model.fit(baselines.FitData(seqs, 3))
                np.testing.assert_allclose(model.score([np.array([0, 0]), np.array([1, 0])]), expected)

    def test_item_vectors_reproduce_cosine(self) -> None:
        rng = np.random.default_rng(0)
        seqs = [rng.choice(12, 4, replace=False) for _ in range(40)]
        x = np.zeros((40, 12))
        for u, s in enumerate(seqs):
            x[u, s] = 1
        counts = x.sum(0)
        cosine = (x.T @ x) / np.sqrt(np.outer(counts, counts))
        exact = baselines.item_vectors(seqs, 12, dim=12, exact=True)
        np.testing.assert_allclose(exact @ exact.T, cosine, atol=1e-10)
        approx = baselines.item_vectors(seqs, 12, dim=12, exact=False)
        np.testing.assert_allclose(approx @ approx.T, cosine, atol=1e-8)

    def test_pooling_weights(self) -> None:
        model = baselines.Pooling(dim=3, half_life=1.0)
        model.vectors = np.eye(3)
        np.testing.assert_allclose(model.user_vectors([np.array([0, 1, 2])])[0], np.array([0.25, 0.5, 1]) / 1.75)
        model.half_life = None
        np.testing.assert_allclose(model.user_vectors([np.array([0, 0, 2])])[0], [2 / 3, 0, 1 / 3])

    def test_bag_of_words(self) -> None:
        self.assertEqual(baselines.tokenize("The Red-Shoe, and 2 x-rays!"), ["red", "shoe", "rays"])
        model = baselines.BagOfWords()
        model.fit(baselines.FitData([], 3, ["red running shoe", "blue running shirt", "garden hose"]))
        scores = model.score([np.array([0])])[0]
        self.assertAlmostEqual(scores[0], 1.0, places=6)
        self.assertGreater(scores[1], 0.0)
        self.assertEqual(scores[2], 0.0)
        with self.assertRaisesRegex(ValueError, "needs item text"):
            baselines.BagOfWords().fit(baselines.FitData([], 3, None))


if __name__ == "__main__":
    unittest.main()
