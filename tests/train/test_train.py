"""driftrec-train: data windows, the batched model against the per-user reference, losses, and a
whole tiny run (train, evaluate, export, the C library's scores, report, resume)."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch

from ._paths import REPO_ROOT

from driftrec_train import demo_shop, interest as I, pipeline, split as S, train as T
from driftrec_train.events import Event

BUILD = Path(os.environ.get("DR_BUILD_DIR", REPO_ROOT / "build"))
HAVE_TOOLS = (BUILD / "models" / "driftrec-score").exists() and \
    (BUILD / "models" / "ann" / "driftrec-index").exists()


def random_events(rng, n_users=12, n_items=30, seconds=True):
    out, row = [], 0
    types = ["view", "click", "cart", "purchase", "review"]
    for u in range(n_users):
        ts = 1_700_000_000 if seconds else 0
        for _ in range(int(rng.integers(3, 15))):
            ts += int(rng.choice([0, 30, 300, 7200, 90000])) if seconds else 1
            t = types[int(rng.integers(len(types)))]
            out.append(Event(user_id=f"u{u}", item_id=str(int(rng.integers(n_items))), ts=ts, event_type=t,
                             dwell_s=float(rng.uniform(1, 100)) if t == "view" else None,
                             amount=float(rng.uniform(5, 500)) if t in ("cart", "purchase") else None,
                             rating=float(rng.integers(1, 6)) if t == "review" else None, row=row))
            row += 1
    rng.shuffle(out)
    return out


class Data(unittest.TestCase):
    def test_sequences_match_the_evaluator_order(self):
        events = random_events(np.random.default_rng(1))
        data = T.build_event_sequences(events)
        ref = S.build_sequences(events)
        self.assertEqual(data.seq.item_ids, ref.item_ids)
        self.assertEqual(data.seq.user_ids, ref.user_ids)
        for a, b, ts in zip(data.seq.seqs, ref.seqs, data.ts):
            np.testing.assert_array_equal(a, b)
            self.assertTrue(np.all(np.diff(ts) >= 0))

    def test_gap_buckets_equal_the_reference_rule(self):
        rng = np.random.default_rng(2)
        ts = np.cumsum(rng.choice([0, 59, 60, 119, 120, 3600, 10**6, 10**9], 200)).astype(np.int64)
        got = T.gap_buckets(ts, 16)
        want = [I.gap_bucket(ts[k - 1] if k else None, int(ts[k]), 16) for k in range(len(ts))]
        np.testing.assert_array_equal(got, want)

    def test_windows_predict_every_event_once(self):
        for max_len in (1, 3, 50):
            lengths = [0, 1, 2, 5, 7, 51, 120]
            w = T.training_windows(lengths, max_len)
            for u, n in enumerate(lengths):
                targets = [k for x in w if x.user == u for k in range(x.lo + 1, x.hi)]
                self.assertEqual(sorted(targets), list(range(1, n)) if n > 1 else [])
                self.assertTrue(all(x.hi - x.lo <= max_len + 1 for x in w))

    def test_collapse_funnel(self):
        ev = [Event("a", "x", 10, "view", dwell_s=5.0, row=0), Event("a", "y", 11, "view", row=1),
              Event("a", "x", 12, "cart", amount=20.0, row=2), Event("a", "x", 13, "purchase", amount=20.0, row=3),
              Event("b", "x", 5, "click", row=4)]
        out = pipeline.collapse_funnel(ev)
        self.assertEqual([(e.user_id, e.item_id, e.ts, e.event_type) for e in out],
                         [("a", "x", 10, "purchase"), ("a", "y", 11, "view"), ("b", "x", 5, "click")])
        self.assertEqual(out[0].amount, 40.0)
        self.assertEqual(out[0].dwell_s, 5.0)


class Model(unittest.TestCase):
    def test_batched_forward_equals_the_reference(self):
        """The training forward (all positions, padded batch) gives, at each user's last event,
        the vector of interest.InterestModel.forward_user, the reference of the C model."""
        torch.manual_seed(0)
        events = random_events(np.random.default_rng(3))
        data = T.build_event_sequences(events)
        c = T.TrainConfig(item_dim=8, hidden_size=12, num_layers=2, max_events=50, half_life=3600.0, dropout=0.0)
        lengths = [len(s) for s in data.seq.seqs]
        model = T.DriftRec(data.seq.n_items, c).eval()
        feat = T.Featurizer(data, c, lengths)
        with torch.no_grad():
            model.interest.features.numeric_mean.copy_(torch.as_tensor(feat.mean, dtype=torch.float32))
            model.interest.features.numeric_std.copy_(torch.as_tensor(feat.std, dtype=torch.float32))
        slices = [(u, 0, n) for u, n in enumerate(lengths)]
        got = T.user_vectors(model, feat, slices)
        with torch.no_grad():
            iv = model.item_vectors().numpy()
            for u, n in enumerate(lengths):
                ue = I.UserEvents(item_vecs=iv[data.seq.seqs[u]], text_vecs=None,
                                  event_types=data.types[u].tolist(), ts=data.ts[u].tolist(),
                                  dwell_s=[float(np.expm1(r[0])) if p[0] else None
                                           for r, p in zip(data.numeric_raw[u], data.numeric_present[u])],
                                  amount=[float(np.expm1(r[1])) if p[1] else None
                                          for r, p in zip(data.numeric_raw[u], data.numeric_present[u])],
                                  rating=[float(r[2]) if p[2] else None
                                          for r, p in zip(data.numeric_raw[u], data.numeric_present[u])])
                want = model.interest.forward_user(ue).numpy()
                np.testing.assert_allclose(got[u], want, rtol=1e-4, atol=1e-5)

    def test_losses_mask_accidental_hits(self):
        torch.manual_seed(0)
        user, vecs = torch.randn(4, 8), torch.randn(20, 8)
        pos = torch.tensor([1, 2, 3, 4])
        log_q = torch.full((20,), -np.log(20.0))
        for loss in T.LOSSES:
            c = T.TrainConfig(loss=loss)
            a = T.sampled_loss(user, pos, vecs, torch.tensor([5, 6, 7]), log_q, c, 20)
            # adding each row's own positive as a negative must not change the loss
            b = T.sampled_loss(user, pos, vecs, torch.tensor([5, 6, 7, 1]), log_q, c, 20)
            self.assertTrue(torch.isfinite(a))
            if loss == "bce":  # bce's terms do not depend on the negative count
                self.assertLess(float(b), float(a) + 10)  # finite, masked
            self.assertNotAlmostEqual(float(a), 0.0)

    def test_full_softmax_is_cross_entropy_over_the_known_items(self):
        torch.manual_seed(0)
        user, vecs = torch.randn(4, 8), torch.randn(20, 8)
        pos = torch.tensor([1, 2, 3, 4])
        log_q = torch.full((20,), -np.log(18.0))
        log_q[[7, 9]] = float("-inf")  # never in training
        got = T.sampled_loss(user, pos, vecs, torch.tensor([5]), log_q, T.TrainConfig(loss="ce"), 20)
        logits = (user @ vecs.T).double().numpy()
        keep = [j for j in range(20) if j not in (7, 9)]
        want = np.mean([np.log(np.exp(logits[i, keep]).sum()) - logits[i, int(pos[i])]
                        for i in range(4)])
        self.assertAlmostEqual(float(got), want, places=4)

    def test_negatives_never_unknown_items(self):
        pop = np.array([5.0, 0.0, 3.0, 9.0, 1.0])
        known = np.array([1, 1, 0, 1, 0], np.float32)
        q = T.sampling_distribution(pop, 0.5, known)
        self.assertAlmostEqual(q.sum(), 1.0)
        self.assertEqual(q[2], 0.0)
        self.assertEqual(q[4], 0.0)
        self.assertGreater(q[1], 0.0)  # known but never a target: still drawn (uniform share)
        self.assertGreater(q[3], q[0])

    def test_config_rejects_bad_values(self):
        with self.assertRaisesRegex(ValueError, "loss must be"):
            T.TrainConfig.from_dict({"loss": "mse"})
        with self.assertRaisesRegex(ValueError, "unknown model option"):
            T.TrainConfig.from_dict({"hiden_size": 3})
        with self.assertRaisesRegex(ValueError, "at least 1"):
            T.TrainConfig.from_dict({"item_dim": 0})


class TinyRun(unittest.TestCase):
    """The whole pipeline on the demo shop's tiny preset (seconds)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = Path(cls.tmp.name)
        demo_shop.write_shop(demo_shop.generate("tiny", seed=0), d / "data")
        cls.config = d / "tiny.json"
        cls.config.write_text(json.dumps({
            "name": "tiny", "events": "data/events.jsonl", "items": "data/items.jsonl",
            "truth": "data/truth.json", "event_types": ["view", "click", "cart", "purchase", "review"],
            "collapse_funnel": True, "export": HAVE_TOOLS, "c_eval": HAVE_TOOLS,
            "text": {"max_len": 24, "pretrain": {
                "vocab": "no-such-vocab.txt", "vocab_fallback": "corpus", "do_lower_case": True,
                "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 64, "max_steps": 20, "batch_size": 32, "minutes": 0.5}},
            "model": {"item_dim": 16, "hidden_size": 24, "max_events": 20, "batch_tokens": 256,
                      "n_negatives": 32, "max_epochs": 3, "time_budget_s": 60}}))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_cli(self, *args):
        return subprocess.run([sys.executable, str(REPO_ROOT / "models/train/train.py"), *map(str, args)],
                              capture_output=True, text=True, timeout=300)

    def test_run_report_export_and_resume(self):
        run_dir = Path(self.tmp.name) / "run"
        p = self.run_cli(self.config, "--run-dir", run_dir, "--no-progress", "--set", "model.max_epochs=2")
        self.assertEqual(p.returncode, 0, p.stderr)
        m = json.loads((run_dir / "metrics.json").read_text())
        self.assertEqual(len(m["train"]["epochs"]), 2)
        for name in ("driftrec", "popularity", "transitions", "pool-decay"):
            self.assertIn(name, m["models"])
        self.assertIn("NDCG@10", m["paired_vs_best_baseline"])
        self.assertTrue((run_dir / "report.md").read_text().startswith("# tiny"))
        self.assertTrue((run_dir / "plots" / "training.png").exists())
        self.assertGreater(m["interest_shift"]["users"], 0)
        self.assertTrue((run_dir / "corpus_vocab.txt").exists())  # no vocabulary given: built
        self.assertTrue((run_dir / "text" / "manifest.json").exists())
        # a rerun with more epochs resumes after epoch 2 instead of starting over
        p = self.run_cli(self.config, "--run-dir", run_dir, "--no-progress", "--set", "model.max_epochs=3")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("resumed after epoch 2", p.stderr)
        m = json.loads((run_dir / "metrics.json").read_text())
        self.assertEqual([e["epoch"] for e in m["train"]["epochs"]], [1, 2, 3])
        if not HAVE_TOOLS:
            self.skipTest(f"no C tools in {BUILD}: export and the C library check not run")
        manifest = json.loads((run_dir / "bundle" / "manifest.json").read_text())
        self.assertEqual(manifest["format"], "driftrec-bundle")
        self.assertEqual(manifest["preprocessing"]["max_events"], 20)
        self.assertEqual(manifest["text_encoder"], "text")
        self.assertIn("text_projection", manifest)  # query text in Recommend needs it
        exact = m["c_library"]["exact"]
        # int8 C model vs PyTorch fp32 on the same users: tiny differences only
        self.assertLess(abs(exact["paired_vs_fp32"]["NDCG@10"]["mean"]), 0.05)
        self.assertEqual(exact["metrics"]["NDCG@10"]["n"], m["models"]["driftrec"]["NDCG@10"]["n"])

    def test_bad_config_is_a_clear_error(self):
        bad = Path(self.tmp.name) / "bad.json"
        bad.write_text(json.dumps({"name": "x", "events": "data/events.jsonl", "modle": {}}))
        p = self.run_cli(bad)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown key(s) modle", p.stderr)
        bad.write_text(json.dumps({"name": "x", "events": "data/events.jsonl", "model": {"loss": "nope"}}))
        p = self.run_cli(bad)
        self.assertEqual(p.returncode, 2)
        self.assertIn("loss must be one of", p.stderr)
        bad.write_text("{not json")
        p = self.run_cli(bad)
        self.assertEqual(p.returncode, 2)
        bad.write_text(json.dumps({"name": "x", "events": "missing.jsonl"}))
        p = self.run_cli(bad)
        self.assertEqual(p.returncode, 2)
        self.assertIn("missing.jsonl", p.stderr)
        self.assertNotIn("Traceback", p.stderr)


if __name__ == "__main__":
    unittest.main()
