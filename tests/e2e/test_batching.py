"""End-to-end: model work batched across calls (--max-batch) gives the answers of unbatched
calls.

Three servers over the same bundle (a random interest model, a small random BERT text
encoder with a text projection, the same encoder for Embed) and the same histories: one with
--max-batch 1 (no batcher: each call runs its own model work), one with --max-batch 32 and
one with --max-batch 32 --max-queue-delay-us 3000; all with 8 workers so that calls can queue
in the batcher on a 2-core machine.  The same mix of Recommend (replays of cold users, cached
users with inline events, query text), Rank and Embed goes to each from 16 client threads at
once; every answer must be the same (items in the same order, scores and vectors within
FLOAT_TOL), and the delayed server's driftrec_batch_size histogram must show batches of more
than one item (this tiny model computes so fast that without a delay calls seldom overlap;
the delay makes the grouping certain).  Bad input through the batcher (an inline event
older than the user's state) gets the unbatched answer too; a call whose deadline passes
while its work waits out a batch delay is dropped uncomputed and counted.
"""
import os
import re
import sys
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import grpc

from tests.e2e.test_server import (CLIP, DIM, FLOAT_TOL, MAX_EVENTS, T0, TRAIN_DIR, Server,
                                   pb, random_events, write_text_encoder)

N_USERS = 48
N_THREADS = 16


def histogram(text, name, model):
    """{le: cumulative count} of a Prometheus histogram's buckets for one model."""
    out = {}
    for le, v in re.findall(rf'^{name}_bucket{{model="{model}",le="([^"]+)"}} (\S+)$', text, re.M):
        out[le] = float(v)
    return out


class BatchedEqualsUnbatched(unittest.TestCase):
    N_ITEMS, TEXT_DIM, MAX_LEN = 300, 32, 16

    @classmethod
    def setUpClass(cls):
        if TRAIN_DIR not in sys.path:
            sys.path.insert(0, TRAIN_DIR)
        import driftrec_train.runtime  # noqa: F401  (BLAS set-up: before numpy and torch load)
        import numpy as np
        import torch
        from driftrec_train import bundle as bundle_mod, interest
        torch.set_num_threads(1)
        cls.np = np
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        text_dir, _ = write_text_encoder(d, cls.TEXT_DIM)
        config = interest.InterestConfig(item_dim=DIM, hidden_size=32, num_layers=1,
                                         max_events=MAX_EVENTS, half_life_s=86400.0)
        model = interest.InterestModel(config)
        interest.random_init(model, torch.Generator().manual_seed(17))
        model.eval()
        rng = np.random.default_rng(99)
        vectors = (0.5 * rng.standard_normal((cls.N_ITEMS, DIM))).astype(np.float32)
        proj = rng.standard_normal((DIM, cls.TEXT_DIM)).astype(np.float32)
        # random_events draws item-0 .. item-399: ids past N_ITEMS are unknown to the model
        ids = [f"item-{r}" for r in range(cls.N_ITEMS)]
        path = str(bundle_mod.write_bundle(
            os.path.join(d, "bundle"), name="batch-shop", interest_model=model, item_ids=ids,
            item_vectors=vectors, training={"run": "e2e"}, index_threads=1,
            text_model_dir=text_dir, text_projection=proj,
            preprocessing={"clip": CLIP, "time_unit": "seconds",
                           "text": {"max_len": cls.MAX_LEN}}))
        cls.bundle_path, cls.text_dir = path, text_dir
        common = ("--model", path, "--text-model", text_dir, "--workers", "8")
        cls.plain = Server(d + "/history-1", *common, "--max-batch", "1")
        cls.batched = Server(d + "/history-32", *common, "--max-batch", "32")
        cls.delayed = Server(d + "/history-32d", *common, "--max-batch", "32",
                             "--max-queue-delay-us", "3000")
        cls.servers = (cls.plain, cls.batched, cls.delayed)
        cls.rng = np.random.default_rng(2026)
        cls.users = [f"user-{u}" for u in range(N_USERS)]
        for u, user in enumerate(cls.users):
            events = random_events(cls.rng, user, int(cls.rng.integers(0, 3 * MAX_EVENTS)))
            for j, e in enumerate(events):
                e.event_id = f"{user}-{j}"
            if events:
                for srv in cls.servers:
                    assert srv.ingest(events).accepted == len(events)

    @classmethod
    def tearDownClass(cls):
        for srv in cls.servers:
            assert srv.stop() == 0, srv.stderr()
        cls.dir.cleanup()

    WORDS = ["red", "hiking", "boot", "cheap", "phone", "case", "with", "large", "screen",
             "warm", "water", "proof", "tent", "book"]

    def requests(self, seed):
        """A deterministic mix of calls: (method, request, response type)."""
        rng = self.np.random.default_rng(seed)
        out = []
        for i, user in enumerate(self.users):
            kind = (i + seed) % 5
            if kind == 0:  # cold or cached user, no inline events
                out.append(("Recommend", pb.RecommendRequest(user_id=user, k=10),
                            pb.RecommendResponse))
            elif kind == 1:  # inline events after the history: the batched step path
                inline = random_events(rng, user, int(rng.integers(1, 60)), t0=T0 + 90 * 86400)
                out.append(("Recommend", pb.RecommendRequest(user_id=user, k=10,
                                                             recent_events=inline),
                            pb.RecommendResponse))
            elif kind == 2:
                cands = [f"item-{int(c)}" for c in rng.integers(0, self.N_ITEMS, 20)]
                inline = random_events(rng, user, int(rng.integers(0, 8)), t0=T0 + 90 * 86400)
                out.append(("Rank", pb.RankRequest(user_id=user, candidate_item_ids=cands,
                                                   recent_events=inline), pb.RankResponse))
            elif kind == 3:
                text = " ".join(rng.choice(self.WORDS, int(rng.integers(1, 10))))
                out.append(("Recommend", pb.RecommendRequest(user_id=user, k=10, query_text=text),
                            pb.RecommendResponse))
            else:
                texts = [" ".join(rng.choice(self.WORDS, int(rng.integers(1, 25))))
                         for _ in range(int(rng.integers(1, 5)))]
                out.append(("Embed", pb.EmbedRequest(texts=texts), pb.EmbedResponse))
        return out

    def run_all(self, srv, calls):
        def one(call):
            method, req, resp_type = call
            try:
                return srv.call(f"/driftrec.v1.Recommender/{method}", req, resp_type, timeout=30)
            except grpc.RpcError as e:
                return (e.code(), e.details())
        with ThreadPoolExecutor(N_THREADS) as pool:
            return list(pool.map(one, calls))

    max_diff = 0.0  # the largest difference seen, reported

    def assert_same(self, a, b, what):
        if isinstance(a, tuple) or isinstance(b, tuple):
            self.assertEqual(a, b, what)
            return
        if isinstance(a, pb.EmbedResponse):
            self.assertEqual(len(a.vectors), len(b.vectors), what)
            for x, y in zip(a.vectors, b.vectors):
                diff = max(abs(p - q) for p, q in zip(x.values, y.values))
                BatchedEqualsUnbatched.max_diff = max(self.max_diff, diff)
                self.assertLessEqual(diff, FLOAT_TOL * (1 + max(abs(q) for q in y.values)), what)
            return
        self.assertEqual([i.item_id for i in a.items], [i.item_id for i in b.items], what)
        for x, y in zip(a.items, b.items):
            BatchedEqualsUnbatched.max_diff = max(self.max_diff, abs(x.score - y.score))
            self.assertAlmostEqual(x.score, y.score, delta=FLOAT_TOL * (1 + abs(y.score)),
                                   msg=what)
        self.assertEqual([i.explanation for i in a.items], [i.explanation for i in b.items], what)

    def test_batched_answers_equal_unbatched_under_concurrency(self):
        n_compared = 0
        for seed in range(3):  # the first round replays cold users, the later ones hit cache
            calls = self.requests(seed) * 2  # the same call twice in a round
            got_plain = self.run_all(self.plain, calls)
            for srv, name in ((self.batched, "batched"), (self.delayed, "delayed")):
                got = self.run_all(srv, calls)
                for i, (a, b) in enumerate(zip(got_plain, got)):
                    with self.subTest(seed=seed, call=i, method=calls[i][0], server=name):
                        self.assertNotIsInstance(a, tuple, f"unbatched: {a}")
                        self.assert_same(b, a, f"{name}: round {seed} call {i} ({calls[i][0]})")
                        n_compared += 1
        self.assertEqual(n_compared, 2 * 3 * 2 * N_USERS)
        print(f"largest difference from the unbatched answers: {self.max_diff:g}",
              file=sys.stderr)
        for srv, name in ((self.batched, "batched"), (self.delayed, "delayed")):
            text = srv.metrics()
            for model in ("interest", "bert"):
                h = histogram(text, "driftrec_batch_size", model)
                self.assertIn("+Inf", h, f"{name}: no {model} batches counted")
                self.assertTrue(histogram(text, "driftrec_batch_wait_seconds", model),
                                f"{name}: no {model} batch wait times")
                largest = min(float(le) for le, v in h.items() if v == h["+Inf"])
                print(f"{name} {model}: {int(h['+Inf'])} batches, {int(h['+Inf'] - h['1'])} of "
                      f"more than one item, the largest <= {largest:g}", file=sys.stderr)
                if srv is self.delayed:
                    self.assertGreater(h["+Inf"], h["1"],
                                       f"{name}: no {model} batch of more than one item: {h}")
        # --max-batch 1 runs no batcher: no batches counted
        self.assertNotIn("driftrec_batch_size_bucket", self.plain.metrics())

    def test_bad_input_through_the_batcher(self):
        # An inline event older than the user's cached state: the step refuses, the call
        # replays the merged events (as unbatched); and at once with others that step fine.
        user = self.users[1]
        for srv in self.servers:
            srv.call("/driftrec.v1.Recommender/Recommend", pb.RecommendRequest(user_id=user),
                     pb.RecommendResponse, timeout=30)  # cache the state
        old = random_events(self.rng, user, 3, t0=T0 - 86400)
        calls = [("Recommend", pb.RecommendRequest(user_id=user, k=10, recent_events=old),
                  pb.RecommendResponse)] * 8
        calls += self.requests(7)[:16]
        # An empty text and an over-long one (cut to the maximum length), among others.
        calls += [("Embed", pb.EmbedRequest(texts=["fine text", "", "boot " * 400]),
                   pb.EmbedResponse)] * 4
        want = self.run_all(self.plain, calls)
        for srv in (self.batched, self.delayed):
            for a, b in zip(want, self.run_all(srv, calls)):
                self.assertNotIsInstance(a, tuple, f"unbatched: {a}")
                self.assert_same(b, a, "bad input")

    def test_deadline_passed_while_waiting_for_a_batch(self):
        # A 300 ms delay from the oldest item and a 100 ms deadline: the call's replay waits in
        # the batcher past its deadline and is dropped when the batch forms, never computed.
        srv = Server(self.dir.name + "/history-slow", "--model", self.bundle_path, "--text-model",
                     self.text_dir, "--max-batch", "32", "--max-queue-delay-us", "300000")
        try:
            before = float(re.search(r"^driftrec_deadline_dropped_total (\S+)$", srv.metrics(),
                                     re.M).group(1))
            with self.assertRaises(grpc.RpcError) as cm:
                srv.call("/driftrec.v1.Recommender/Recommend",
                         pb.RecommendRequest(user_id="late-user"), pb.RecommendResponse,
                         timeout=0.1)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            with self.assertRaises(grpc.RpcError) as cm:
                srv.call("/driftrec.v1.Recommender/Embed", pb.EmbedRequest(texts=["a late text"]),
                         pb.EmbedResponse, timeout=0.1)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            dropped = before
            for _ in range(100):  # the drops happen when the batches form, 300 ms on
                text = srv.metrics()
                dropped = float(re.search(r"^driftrec_deadline_dropped_total (\S+)$", text,
                                          re.M).group(1))
                if dropped >= before + 2:
                    break
                time.sleep(0.05)
            self.assertEqual(dropped, before + 2, "the batcher's drops are not counted")
            self.assertNotIn('driftrec_batch_size_bucket{model="interest"', text,
                             "the expired replay was computed")
            # With a deadline to spare the same call is answered after the delay.
            r = srv.call("/driftrec.v1.Recommender/Recommend",
                         pb.RecommendRequest(user_id="late-user"), pb.RecommendResponse,
                         timeout=10)
            self.assertEqual(len(r.items), 10)
        finally:
            self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_deadline_passed_in_the_batcher(self):
        # A deadline far too short for a call behind a full work queue ends DEADLINE_EXCEEDED
        # (whichever stage drops it) or RESOURCE_EXHAUSTED (admission: the queue's expected
        # wait exceeds it), never a wrong answer, and the server keeps serving.
        calls = [("Recommend", pb.RecommendRequest(
            user_id=u, recent_events=random_events(self.rng, u, 60, t0=T0 + 99 * 86400)),
                  pb.RecommendResponse) for u in self.users]
        codes = []
        lock = threading.Lock()

        def one(call):
            method, req, resp_type = call
            try:
                self.delayed.call(f"/driftrec.v1.Recommender/{method}", req, resp_type,
                                  timeout=0.002)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
            with lock:
                codes.append(code)
        with ThreadPoolExecutor(N_THREADS) as pool:
            list(pool.map(one, calls))
        self.assertTrue(set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED,
                                       grpc.StatusCode.RESOURCE_EXHAUSTED}, codes)
        r = self.delayed.call("/driftrec.v1.Recommender/Recommend",
                              pb.RecommendRequest(user_id=self.users[0]), pb.RecommendResponse,
                              timeout=30)
        self.assertEqual(len(r.items), 10)


if __name__ == "__main__":
    unittest.main()
