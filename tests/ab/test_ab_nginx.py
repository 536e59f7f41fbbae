"""An A/B test end to end: nginx (deploy/nginx/driftrec-ab.conf) splitting gRPC traffic by a
salted hash of x-user-id between two driftrec-server instances, each serving another small
random-weight model (variant A, the control, and B); simulated users whose clicks prefer
the items B recommends; then driftrec-ab-report over both instances' event logs.

Checks: the split is near the configured 60/40, each user stays on one arm, anonymous
callers go to the control, the report names B and its sample-ratio check passes; through
the proxy a mismatched x-user-id gets INVALID_ARGUMENT, an oversized request
RESOURCE_EXHAUSTED and a downed arm UNAVAILABLE; the access log has the gRPC status.

The report and its chart are kept in DR_AB_OUT (ctest: build/ab-report).  Not a benchmark:
nginx opens upstream connections per request, which would measure nginx, not driftrec.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

from tests.e2e.test_server import T0, Bundle, Server, free_port, pb

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(REPO, "deploy", "nginx", "driftrec-ab.conf")
REPORT_TOOL = os.path.join(REPO, "tools", "driftrec-ab-report")
HISTORY_BIN = os.environ.get("DR_HISTORY_BIN", "build/server/driftrec-history")
# DR_NGINX, else nginx on PATH, else where distributions put it (often not on a user's PATH).
NGINX = next((p for p in ([os.environ["DR_NGINX"]] if os.environ.get("DR_NGINX") else
                          [shutil.which("nginx"), "/usr/sbin/nginx", "/usr/local/sbin/nginx",
                           "/usr/local/nginx/sbin/nginx"])
              if p and os.access(p, os.X_OK)), None)

SALT = "driftrec-e2e-exp-1"
SHARE_A = 60           # percent of users on the control arm
N_USERS = 300
REQUESTS_PER_USER = 4
K = 10
P_CLICK_LIKED, P_CLICK_OTHER, P_PURCHASE = 0.25, 0.03, 0.3


def wait_for_port(port, proc, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} stopped ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not open port {port}")


class Nginx:
    """nginx from the template, with -p a temporary prefix and -e stderr, in the foreground."""

    def __init__(self, prefix, upstream_a, upstream_b):
        self.prefix = prefix
        self.access_log = os.path.join(prefix, "access.log")
        self.log = tempfile.TemporaryFile()
        with open(TEMPLATE) as f:
            template = f.read()
        for _ in range(3):
            self.port = free_port()
            values = {"LISTEN": f"127.0.0.1:{self.port}", "ARM_A": "A", "ARM_B": "B",
                      "UPSTREAM_A": upstream_a, "UPSTREAM_B": upstream_b, "SALT": SALT,
                      "PERCENT_A": f"{SHARE_A}%", "ACCESS_LOG": self.access_log}
            conf = template
            for name, value in values.items():
                conf = conf.replace(f"@{name}@", value)
            left = re.findall(r"@[A-Z_]+@", "\n".join(l.split("#")[0] for l in conf.splitlines()))
            assert not left, f"placeholders left unfilled: {left}"
            self.conf = os.path.join(prefix, "driftrec-ab.conf")
            with open(self.conf, "w") as f:
                f.write(conf)
            self.proc = subprocess.Popen(
                [NGINX, "-p", prefix, "-c", self.conf, "-e", "stderr", "-g", "daemon off;"],
                stdout=self.log, stderr=self.log)
            try:
                wait_for_port(self.port, self.proc, "nginx")
                break
            except RuntimeError:
                if "Address already in use" not in self.stderr():
                    raise RuntimeError("nginx did not start: " + self.stderr()[-2000:])
                self.stop()
        else:
            raise RuntimeError("nginx found no free port in 3 tries")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def call(self, method, request, response_type, user=None, timeout=10):
        fn = self.channel.unary_unary(
            "/driftrec.v1.Recommender/" + method,
            request_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
            response_deserializer=response_type.FromString)
        metadata = [("x-user-id", user)] if user is not None else []
        return fn.with_call(request, metadata=metadata, timeout=timeout)

    def access_lines(self):
        with open(self.access_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if hasattr(self, "channel"):
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def arms_of(call):
    md = dict(call.initial_metadata() or ())
    return md.get("x-variant"), md.get("x-ab-variant")


@unittest.skipIf(NGINX is None, "nginx is not installed (deploy/install-deps.sh test)")
class ABThroughNginx(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        cls.bundles = {"A": Bundle(d + "/a", model_seed=7), "B": Bundle(d + "/b", model_seed=8)}
        cls.servers = {}
        for arm, b in cls.bundles.items():
            cls.servers[arm] = Server(f"{d}/history-{arm}", "--model", b.path, "--variant", arm)
        os.mkdir(d + "/nginx")
        cls.nginx = Nginx(d + "/nginx", f"127.0.0.1:{cls.servers['A'].port}",
                          f"127.0.0.1:{cls.servers['B'].port}")
        cls.out = os.environ.get("DR_AB_OUT") or os.path.join(d, "report")
        os.makedirs(cls.out, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        cls.nginx.stop()
        for srv in cls.servers.values():
            srv.stop()
        cls.dir.cleanup()

    def simulate(self):
        """Users through the proxy: Recommend, then Ingest of the clicks (and purchases) on what
        was shown.  Users like the items B's model puts first for a new user (its empty-history
        top 10) that A's does not: B's recommendations should win.  Returns user -> the arms
        its replies named."""
        top = {arm: set(b.exact_top(b.user_vector([]), K)) for arm, b in self.bundles.items()}
        liked = top["B"] - top["A"]
        self.assertGreaterEqual(len(liked), K // 2)
        rng = random.Random(20261202)
        seen = {}
        for u in range(N_USERS):
            user = f"user-{u:04d}"
            for r in range(REQUESTS_PER_USER):
                request_id = f"{user}-r{r}"
                resp, call = self.nginx.call(
                    "Recommend", pb.RecommendRequest(user_id=user, k=K, request_id=request_id,
                                                     exclude=pb.EXCLUDE_NONE),
                    pb.RecommendResponse, user=user)
                variant, ab_variant = arms_of(call)
                self.assertEqual(variant, ab_variant)  # the arm nginx chose served it
                self.assertEqual(resp.variant, variant)
                seen.setdefault(user, set()).add(variant)
                events = []
                for pos, item in enumerate(i.item_id for i in resp.items):
                    if rng.random() >= (P_CLICK_LIKED if item in liked else P_CLICK_OTHER):
                        continue
                    ts = T0 + 3600 * r + pos
                    events.append(pb.Event(user_id=user, item_id=item, ts=ts,
                                           event_type=pb.CLICK, request_id=request_id,
                                           position=pos, event_id=f"{request_id}-c{pos}"))
                    if rng.random() < P_PURCHASE:
                        events.append(pb.Event(user_id=user, item_id=item, ts=ts + 30,
                                               event_type=pb.PURCHASE, request_id=request_id,
                                               position=pos, event_id=f"{request_id}-p{pos}",
                                               amount=round(rng.uniform(5, 120), 2)))
                if events:  # no variant: the receiving instance labels them
                    ack, call = self.nginx.call("Ingest", pb.IngestRequest(events=events),
                                                pb.IngestResponse, user=user)
                    self.assertEqual(ack.accepted, len(events))
                    seen[user].add(arms_of(call)[0])
        return seen

    def assert_grpc_error(self, code, fn):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception

    def test_experiment(self):
        t0 = time.monotonic()
        seen = self.simulate()

        # Sticky: every reply a user got came from one arm.
        self.assertEqual([u for u, arms in seen.items() if len(arms) != 1], [])
        per_arm = {"A": 0, "B": 0}
        for arms in seen.values():
            per_arm[next(iter(arms))] += 1
        # The split: 60% of 300 users is 180, binomial sd 8.5; allow 4 sd.
        expected_a = N_USERS * SHARE_A / 100
        self.assertLess(abs(per_arm["A"] - expected_a), 4 * (N_USERS * 0.6 * 0.4) ** 0.5,
                        per_arm)

        # Anonymous callers (no x-user-id) all go to the control arm.
        for _ in range(5):
            _, call = self.nginx.call("GetModel", pb.GetModelRequest(), pb.GetModelResponse)
            self.assertEqual(arms_of(call), ("A", "A"))

        # A header that is not the message's user: refused by the server, through the proxy.
        e = self.assert_grpc_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            lambda: self.nginx.call("Recommend", pb.RecommendRequest(user_id="user-0001", k=3),
                                    pb.RecommendResponse, user="user-0002"))
        self.assertEqual(e.details(), "the x-user-id header does not match user_id")
        # Larger than the proxy accepts (client_max_body_size 4m): RESOURCE_EXHAUSTED, not
        # UNKNOWN "Received http2 header with status: 413".
        big = pb.IngestRequest(events=[pb.Event(user_id="user-0001", item_id="item-1", ts=T0,
                                                event_type=pb.VIEW, text="x" * 10000)] * 500)
        self.assert_grpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               lambda: self.nginx.call("Ingest", big, pb.IngestResponse,
                                                       user="user-0001"))

        # Nothing was misrouted; every instance saw only its own users.
        for arm, srv in self.servers.items():
            self.assertIn(f'driftrec_ab_misrouted_total{{variant="{arm}"}} 0', srv.metrics())

        # A downed arm: its users get UNAVAILABLE (retryable), the other arm's are served.
        user_b = next(u for u, arms in seen.items() if arms == {"B"})
        user_a = next(u for u, arms in seen.items() if arms == {"A"})
        self.assertEqual(self.servers["B"].stop(), 0, self.servers["B"].stderr())
        e = self.assert_grpc_error(
            grpc.StatusCode.UNAVAILABLE,
            lambda: self.nginx.call("Recommend", pb.RecommendRequest(user_id=user_b, k=3),
                                    pb.RecommendResponse, user=user_b))
        self.assertEqual(e.details(), "the A/B arm's server is unavailable")
        # A trailers-only reply: its headers are the call's trailing metadata.
        self.assertIn(("x-ab-variant", "B"), e.trailing_metadata())
        _, call = self.nginx.call("GetModel", pb.GetModelRequest(), pb.GetModelResponse,
                                  user=user_a)
        self.assertEqual(arms_of(call)[0], "A")
        self.assertEqual(self.servers["A"].stop(), 0, self.servers["A"].stderr())

        # The access log: one line per call with the arm and the gRPC status (from trailers,
        # from a trailers-only reply, or from the proxy's own error page).
        lines = self.nginx.access_lines()
        shutil.copy(self.nginx.access_log, os.path.join(self.out, "access.log"))
        self.assertGreaterEqual(len(lines), N_USERS * REQUESTS_PER_USER)
        statuses = [(x["method"], x["grpc_status"], x["arm"]) for x in lines]
        self.assertEqual(sum(1 for m, s, _ in statuses
                             if m == "/driftrec.v1.Recommender/Recommend" and s == "0"),
                         N_USERS * REQUESTS_PER_USER)
        with_status = {(m, st) for m, st, _ in statuses}
        self.assertIn(("/driftrec.v1.Recommender/Recommend", "3"), with_status)  # trailers-only
        self.assertIn(("/driftrec.v1.Recommender/Ingest", "8"), with_status)     # proxy: 413
        self.assertIn(("/driftrec.v1.Recommender/Recommend", "14", "B"), statuses)
        self.assertTrue(all(x["http"] == 200 for x in lines if x["grpc_status"] == "0"))
        self.assertEqual({x["arm"] for x in lines}, {"A", "B"})

        # The report over both instances' event logs.
        paths = {n: os.path.join(self.out, n) for n in ("report.json", "report.md", "chart.png")}
        r = subprocess.run(
            [REPORT_TOOL, "--history-bin", HISTORY_BIN, self.servers["A"].history_dir,
             self.servers["B"].history_dir, "--split", f"A={SHARE_A},B={100 - SHARE_A}",
             "--control", "A", "--json", paths["report.json"], "--markdown", paths["report.md"],
             "--chart", paths["chart.png"], "--title", "driftrec A/B e2e (nginx, 300 users)"],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(paths["report.json"]) as f:
            report = json.load(f)
        self.assertEqual(report["verdict"]["better_arm"], "B", report["verdict"])
        self.assertFalse(report["srm"]["mismatch"], report["srm"])
        self.assertEqual({a: report["arms"][a]["users"] for a in ("A", "B")}, per_arm)
        self.assertEqual(report["users_in_several_arms"], 0)
        self.assertEqual(report["unattributed_records"], 0)
        for arm in ("A", "B"):
            self.assertEqual(report["arms"][arm]["impressions"],
                             per_arm[arm] * REQUESTS_PER_USER * K)
        self.assertGreater(report["arms"]["B"]["ctr"]["ci"][0], report["arms"]["A"]["ctr"]["ci"][1])
        with open(paths["chart.png"], "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with open(paths["report.md"]) as f:
            sys.stderr.write("\n" + f.read() + f"\n(kept in {self.out}; "
                             f"{time.monotonic() - t0:.1f} s)\n")


if __name__ == "__main__":
    unittest.main()
