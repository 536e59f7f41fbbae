"""End-to-end tests of driftrec-server with a real gRPC client (python3-grpcio).

Each test class starts the real server on a free loopback port with its own history
directory, talks to it through grpcio, and stops it.  The binaries and the generated
Python messages come from the build tree (DR_SERVER_BIN, DR_HISTORY_BIN, DR_PROTO_PY,
set by ctest).  The classes that exercise the history store run again over Redis (the
...Redis classes): a real redis-server each starts on a free port, in a temporary directory,
with appendonly yes and appendfsync always; skipped when redis-server is absent.
"""
import hashlib
import hmac
import json
import os
import re
import shutil
import urllib.request
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import grpc

sys.path.insert(0, os.environ.get("DR_PROTO_PY", "build/proto_gen/python"))
import driftrec_pb2 as pb  # noqa: E402
import health_pb2  # noqa: E402

SERVER_BIN = os.environ.get("DR_SERVER_BIN", "build/server/driftrec-server")
HISTORY_BIN = os.environ.get("DR_HISTORY_BIN", "build/server/driftrec-history")
CLI_BIN = os.environ.get("DR_CLI_BIN", "build/server/driftrec-cli")
ENCODE_BIN = os.environ.get("DR_ENCODE_BIN", "build/models/driftrec-encode")
USER_BIN = os.environ.get("DR_USER_BIN", "build/models/driftrec-user")
LOAD_BIN = os.environ.get("DR_LOAD_BIN", "build/bench/load/driftrec-load")
# How many times slower than a plain build the binaries are (a sanitizer build: the TSan run
# sets it); the few tests whose work is sized in wall-clock time scale by it.
SLOWDOWN = max(1.0, float(os.environ.get("DR_TEST_SLOWDOWN", "1")))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# DR_REDIS_SERVER names the binary (a path that is not one: the Redis tests skip).
REDIS_BIN = next((p for p in ([os.environ["DR_REDIS_SERVER"]] if os.environ.get("DR_REDIS_SERVER")
                              else [shutil.which("redis-server"), "/usr/bin/redis-server"])
                  if p and os.access(p, os.X_OK)), None)
NO_REDIS = "redis-server not found (apt-get install redis-server, or set DR_REDIS_SERVER)"


class RedisServer:
    """A real redis-server on a free loopback port, in its own directory, durable as a history
    store must be: every acknowledged write is in the AOF (fsync'd) before the reply."""

    def __init__(self, durable=True, replica_of=None):
        self.dir = tempfile.TemporaryDirectory()
        self.durable = durable
        self.replica_of = ["--replicaof", "127.0.0.1", str(replica_of.port)] if replica_of else []
        self.proc = None
        self.start()

    def start(self, port=None):
        """Starts the server (given a port: restarts it from its AOF); waits for PING."""
        for _ in range(1 if port else 3):
            self.port = port or free_port()
            self.proc = subprocess.Popen(
                [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                 self.dir.name, "--appendonly", "yes" if self.durable else "no",
                 "--appendfsync", "always", "--save", "", "--logfile", "redis.log",
                 *self.replica_of],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self.command("PING") == "+PONG":
                    self.url = f"redis://127.0.0.1:{self.port}"
                    return
                time.sleep(0.01)
            self.kill()
        raise RuntimeError("redis-server did not start: "
                           + Path(self.dir.name, "redis.log").read_text()[-2000:])

    def command(self, *args):
        """One command, its reply's first line (enough for PING and the like)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                args = [a.encode() for a in args]
                s.sendall(f"*{len(args)}\r\n".encode()
                          + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
                return s.recv(65536).split(b"\r\n")[0].decode()
        except OSError:
            return None

    def info(self, section):
        """INFO section's text."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(f"INFO {section}\r\n".encode())
            return s.recv(65536).decode()

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def restart(self):
        """A kill -9, then the same port and AOF: what it replays is what it acknowledged."""
        self.kill()
        self.start(self.port)

    def stop(self):
        self.kill()
        self.dir.cleanup()


class RedisTarget(str):
    """A Redis history for Server and history(): the URL, with the key prefix that keeps one
    test's keys apart from another's and the log key file a Redis history needs."""

    def __new__(cls, url, prefix, key_file):
        target = super().__new__(cls, url)
        target.prefix, target.key_file = prefix, key_file
        return target


_prefixes = iter(range(1, 1 << 30))


def redis_target(redis, key_dir):
    return RedisTarget(redis.url, f"t{next(_prefixes)}:", os.path.join(key_dir, "log-key"))


class Server:
    """The real server process on loopback.  creds: grpc channel credentials for a TLS
    server (the test client's channel uses them; default plaintext)."""

    def __init__(self, history_dir, *extra, creds=None):
        self.history_dir = history_dir
        self.creds = creds
        if isinstance(history_dir, RedisTarget):
            extra = ("--history-prefix", history_dir.prefix, "--log-key-file",
                     history_dir.key_file, *extra)
        for _ in range(3):
            self.port = free_port()
            self.log = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(
                [SERVER_BIN, "--listen", f"127.0.0.1:{self.port}", "--history", history_dir,
                 "--variant", "A", "--metrics", "127.0.0.1:0", *extra],
                stderr=self.log)
            if self._wait_for_port():
                break
            # free_port's port was taken before the server bound it (by another process's
            # connection, say): another port.
            self.log.close()
        else:
            raise RuntimeError("the server found no free port in 3 tries")
        self.channel = self.connect(creds)
        grpc.channel_ready_future(self.channel).result(timeout=10)
        # The "serving" line follows the port's opening; a bundle loads after both.
        deadline = time.monotonic() + 30
        while '"msg":"serving"' not in self.stderr() and time.monotonic() < deadline:
            time.sleep(0.01)
        found = re.search(r'"metrics_port":(\d+)', self.stderr())
        self.metrics_port = int(found.group(1)) if found else None
        if "--model" in extra:
            while (self.health("driftrec.v1.Recommender") != health_pb2.HealthCheckResponse.SERVING
                   and time.monotonic() < deadline):
                time.sleep(0.01)

    def _wait_for_port(self, timeout=30.0):
        """True once the port accepts connections; False if the server could not bind it;
        an error if it stopped for another reason or took too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "cannot listen" in self.stderr():
                    return False
                raise RuntimeError(f"the server stopped ({self.proc.returncode}): "
                                   + self.stderr()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("the server did not open its port: " + self.stderr()[-2000:])

    def connect(self, creds=None, host="127.0.0.1", options=()):
        """A new channel to the server: TLS with creds, else plaintext."""
        target = f"{host}:{self.port}"
        if creds is None:
            return grpc.insecure_channel(target, options=list(options))
        return grpc.secure_channel(target, creds, options=list(options))

    def metrics(self):
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()

    def call(self, method, request, response_type, timeout=5):
        fn = self.channel.unary_unary(
            method, request_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
            response_deserializer=response_type.FromString if response_type else None)
        return fn(request, timeout=timeout)

    def ingest(self, events, timeout=5):
        return self.call("/driftrec.v1.Recommender/Ingest", pb.IngestRequest(events=events),
                         pb.IngestResponse, timeout)

    def health(self, service=""):
        return self.call("/grpc.health.v1.Health/Check",
                         health_pb2.HealthCheckRequest(service=service),
                         health_pb2.HealthCheckResponse).status

    def stop(self, sig=signal.SIGTERM):
        """The exit code, once the server is gone; an AssertionError if a sanitizer reported
        anything (a TSan report also makes the exit code 66, but not after kill -9)."""
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        report = sanitizer_report(self.stderr())
        if report:
            raise AssertionError(f"driftrec-server (exit {code}): {report}")
        return code

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __del__(self):
        self.log.close()


SANITIZER_REPORT = re.compile(r"WARNING: ThreadSanitizer|ERROR: AddressSanitizer|"
                              r"ERROR: LeakSanitizer|runtime error: ")


def sanitizer_report(text):
    """The first sanitizer report in a process's stderr and what follows it, or None."""
    found = SANITIZER_REPORT.search(text)
    return text[max(0, found.start() - 200):found.start() + 6000] if found else None


def history(history_dir, *args):
    """driftrec-history's JSON lines, from an LMDB directory or a RedisTarget."""
    if isinstance(history_dir, RedisTarget):
        args = ("--prefix", history_dir.prefix, *args)
    out = subprocess.run([HISTORY_BIN, history_dir, *args], check=True, capture_output=True,
                         text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line]


def event(user="u1", item="i1", ts=1_700_000_000, etype=pb.CLICK, **kw):
    return pb.Event(user_id=user, item_id=item, ts=ts, event_type=etype, **kw)


class IngestAndHealth(unittest.TestCase):
    backend = "lmdb"

    def history_target(self):
        return self.dir.name + "/history"

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.srv = Server(self.history_target())

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0, self.srv.stderr())
        self.dir.cleanup()

    def test_health_states(self):
        S = health_pb2.HealthCheckResponse
        self.assertEqual(self.srv.health(""), S.SERVING)
        # Ready for the recommender only once a model is loaded and warm: none is.
        self.assertEqual(self.srv.health("driftrec.v1.Recommender"), S.NOT_SERVING)
        with self.assertRaises(grpc.RpcError) as cm:
            self.srv.health("no.such.Service")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_ingest_round_trip_and_variant_header(self):
        fn = self.srv.channel.unary_unary(
            "/driftrec.v1.Recommender/Ingest",
            request_serializer=pb.IngestRequest.SerializeToString,
            response_deserializer=pb.IngestResponse.FromString)
        resp, call = fn.with_call(pb.IngestRequest(events=[
            event(item="i1", ts=1_700_000_100, dwell_s=3.5, event_id="e1"),
            event(item="i0", ts=1_700_000_000, etype=pb.VIEW, rating=4, amount=19.99,
                  text="great \u00e9t\u00e9 \u4e2d\u6587"),
        ]), timeout=5)
        self.assertEqual((resp.accepted, resp.duplicates), (2, 0))
        self.assertIn(("x-variant", "A"), call.initial_metadata())
        rows = history(self.srv.history_dir, "user", "u1")
        self.assertEqual([r["item_id"] for r in rows], ["i0", "i1"])  # time order
        self.assertEqual(rows[0]["text"], "great \u00e9t\u00e9 \u4e2d\u6587")
        self.assertEqual(rows[0]["amount"], 19.99)
        self.assertEqual(rows[1]["dwell_s"], 3.5)
        self.assertEqual(len(history(self.srv.history_dir, "user", "u1", "1")), 1)
        self.assertEqual(history(self.srv.history_dir, "user", "u")[:1], [])  # prefix != user

    def test_repeated_event_id_is_applied_once(self):
        e = event(item="i9", event_id="evt-42")
        self.assertEqual(self.srv.ingest([e]).accepted, 1)
        r = self.srv.ingest([e, e, event(item="i10", event_id="evt-43")])
        self.assertEqual((r.accepted, r.duplicates), (1, 2))
        items = [row["item_id"] for row in history(self.srv.history_dir, "user", "u1")]
        self.assertEqual(sorted(items), ["i10", "i9"])
        self.assertEqual(len(history(self.srv.history_dir, "log")), 2)

    def test_metrics(self):
        self.srv.ingest([event(item="m1")])
        with self.assertRaises(grpc.RpcError):
            self.srv.ingest([event(rating=0)])
        text = self.srv.metrics()
        self.assertIn('driftrec_requests_total{method="Ingest",code="OK",variant="A"} 1', text)
        self.assertIn(
            'driftrec_requests_total{method="Ingest",code="INVALID_ARGUMENT",variant="A"} 1', text)
        # Both reached a worker (events are checked there, beside the store), so the queue and
        # compute histograms saw both, and both were timed end to end.
        self.assertIn('driftrec_queue_seconds_count{method="Ingest"} 2', text)
        self.assertIn('driftrec_compute_seconds_count{method="Ingest"} 2', text)
        self.assertIn('driftrec_request_seconds_count{method="Ingest"} 2', text)
        self.assertIn("driftrec_deadline_dropped_total 0", text)
        self.assertRegex(text, r'driftrec_info\{kernel_isa="(ref|avx2|avx512|avx512vnni|neon|neondot)"')
        self.assertIn("driftrec_queue_depth 0", text)
        self.assertIn(f'driftrec_history_durable{{backend="{self.backend}"}} 1', text)
        linked = subprocess.run(["ldd", SERVER_BIN], capture_output=True, text=True).stdout
        if "libjemalloc" in linked:  # not under the sanitizers
            self.assertRegex(text, r'driftrec_jemalloc_bytes\{stat="allocated"\} [1-9]')
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(f"http://127.0.0.1:{self.srv.metrics_port}/nope", timeout=5)
        self.assertEqual(cm.exception.code, 404)

    def test_cli_round_trip(self):
        def cli(*args):
            return subprocess.run([CLI_BIN, "--addr", f"127.0.0.1:{self.srv.port}", *args],
                                  capture_output=True, text=True, timeout=30)
        r = cli("health")
        self.assertEqual((r.returncode, json.loads(r.stdout)["status"]), (0, "SERVING"))
        r = cli("ingest", "--user", "bob", "--item", "tent-2", "--type", "purchase",
                "--amount", "129.5", "--event-id", "cli-1", "--ts", "1700000000")
        self.assertEqual(json.loads(r.stdout), {"accepted": 1, "duplicates": 0})
        r = cli("ingest", "--user", "bob", "--item", "tent-2", "--type", "purchase",
                "--event-id", "cli-1")
        self.assertEqual(json.loads(r.stdout), {"accepted": 0, "duplicates": 1})
        rows = history(self.srv.history_dir, "user", "bob")
        self.assertEqual([(x["item_id"], x["event_type"], x["amount"]) for x in rows],
                         [("tent-2", "purchase", 129.5)])
        r = cli("ingest", "--user", "bob", "--item", "x", "--type", "click", "--rating", "7")
        self.assertEqual(r.returncode, 1)
        self.assertIn("INVALID_ARGUMENT", r.stderr)
        self.assertIn("rating", r.stderr)
        self.assertEqual(cli("frobnicate").returncode, 2)

    def test_load_client_counts_match_the_server_metrics(self):
        def load(*args):
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                subprocess.run([LOAD_BIN, "--addr", f"127.0.0.1:{self.srv.port}", "--warmup", "0",
                                "--duration", "1.5", "--json", out.name, *args], check=True,
                               capture_output=True, timeout=60)
                return json.load(open(out.name))

        closed = load("--method", "ingest", "--concurrency", "4")
        opened = load("--method", "health", "--mode", "open", "--rate", "200")
        self.assertGreater(closed["calls"], 100)
        self.assertEqual(closed["status"], {"OK": closed["calls"]})
        # Open loop: Poisson arrivals at 200/s for 1.5 s, none over the cap.  (Whether the
        # sender kept time -- "valid" -- depends on what else shares the cores during a test
        # run, so it is reported, not asserted.)
        self.assertTrue(200 <= opened["calls"] <= 400, opened)
        self.assertEqual(opened["over_cap"], 0)
        self.assertEqual(opened["status"], {"OK": opened["calls"]})
        self.assertGreaterEqual(opened["send_lag_p99_ms"], 0.0)
        text = self.srv.metrics()
        self.assertIn('driftrec_requests_total{method="Ingest",code="OK",variant="A"} '
                      f'{closed["calls"]}\n', text)
        stored = history(self.srv.history_dir, "log")
        self.assertEqual(len(stored), closed["calls"])  # every acknowledged Ingest is stored
        health_ok = re.search(r'driftrec_requests_total\{method="Health",code="OK",variant="A"\} '
                              r'(\d+)', text)
        # The test's own health checks add to the server's count, never the client's.
        self.assertGreaterEqual(int(health_ok.group(1)), opened["status"]["OK"])

    def test_lmdb_environment_is_durable(self):
        flags = history(self.srv.history_dir, "flags")[0]
        # kill -9 cannot reveal a missing fsync: check the flags that would disable it.
        self.assertEqual((flags["nosync"], flags["nometasync"], flags["mapasync"]), (0, 0, 0))


# (name, method, request or raw bytes, expected status, substring of the message)
LONG = "x" * 20_000
BAD_REQUESTS = [
    ("truncated protobuf", "Ingest", b"\x0a\x10\x0a\x02u1", "INVALID_ARGUMENT", "malformed"),
    ("wrong wire type", "Ingest", b"\x0d\x01\x02\x03\x04", "INVALID_ARGUMENT", "malformed"),
    ("garbage bytes", "Recommend", b"\xff\xff\xff\xff", "INVALID_ARGUMENT", "malformed"),
    ("no events", "Ingest", pb.IngestRequest(), "INVALID_ARGUMENT", "events"),
    ("1001 events", "Ingest", pb.IngestRequest(events=[event()] * 1001), "INVALID_ARGUMENT",
     "1..1000 allowed"),
    ("empty user", "Ingest", pb.IngestRequest(events=[event(user="")]), "INVALID_ARGUMENT",
     "user_id: required"),
    ("missing item", "Ingest", pb.IngestRequest(events=[pb.Event(user_id="u", ts=1,
                                                                   event_type=pb.CLICK)]),
     "INVALID_ARGUMENT", "item_id"),
    ("missing ts", "Ingest", pb.IngestRequest(events=[pb.Event(user_id="u", item_id="i",
                                                                 event_type=pb.CLICK)]),
     "INVALID_ARGUMENT", "ts: required"),
    ("negative ts", "Ingest", pb.IngestRequest(events=[event(ts=-5)]), "INVALID_ARGUMENT",
     "ts: out of range"),
    ("unspecified type", "Ingest", pb.IngestRequest(events=[event(etype=pb.EVENT_TYPE_UNSPECIFIED)]),
     "INVALID_ARGUMENT", "event_type"),
    ("rating 9", "Ingest", pb.IngestRequest(events=[event(rating=9)]), "INVALID_ARGUMENT",
     "rating"),
    ("NaN dwell", "Ingest", pb.IngestRequest(events=[event(dwell_s=float("nan"))]),
     "INVALID_ARGUMENT", "dwell_s"),
    ("negative amount", "Ingest", pb.IngestRequest(events=[event(amount=-1)]),
     "INVALID_ARGUMENT", "amount"),
    ("300-byte user id", "Ingest", pb.IngestRequest(events=[event(user="u" * 300)]),
     "INVALID_ARGUMENT", "at most 256"),
    ("embedded NUL", "Ingest", pb.IngestRequest(events=[event(user="ab\0cd")]),
     "INVALID_ARGUMENT", "NUL"),
    # Invalid UTF-8 cannot be built with Python's str: hand-written bytes (field 1, an Event
    # whose user_id is 0xc3 0x28).
    ("invalid UTF-8", "Ingest", b"\x0a\x0e\x0a\x02\xc3\x28\x12\x01i\x18\x01\x20\x03\x4a\x01e",
     "INVALID_ARGUMENT", "invalid UTF-8"),
    ("20 KB text", "Ingest", pb.IngestRequest(events=[event(text=LONG)]), "INVALID_ARGUMENT",
     "text"),
    ("10 MB text", "Ingest", pb.IngestRequest(events=[event(text="y" * 10_000_000)]),
     "RESOURCE_EXHAUSTED", ""),
    ("k = 0", "Recommend", pb.RecommendRequest(user_id="u1", k=0), "INVALID_ARGUMENT", "k:"),
    ("k = 10^6", "Recommend", pb.RecommendRequest(user_id="u1", k=1_000_000),
     "INVALID_ARGUMENT", "k:"),
    ("empty user (Recommend)", "Recommend", pb.RecommendRequest(k=5), "INVALID_ARGUMENT",
     "user_id"),
    ("100k-event inline history", "Recommend",
     pb.RecommendRequest(user_id="u1", recent_events=[event(user="u1")] * 100_000),
     "INVALID_ARGUMENT", "100000 events, at most 1000"),
    ("100k events with text (> 4 MiB)", "Ingest",
     pb.IngestRequest(events=[event(text="t" * 64)] * 100_000), "RESOURCE_EXHAUSTED", ""),
    ("2000 inline events", "Recommend",
     pb.RecommendRequest(user_id="u1", recent_events=[event(user="u1")] * 2000),
     "INVALID_ARGUMENT", "recent_events"),
    ("inline event of another user", "Recommend",
     pb.RecommendRequest(user_id="u1", recent_events=[event(user="u2")]), "INVALID_ARGUMENT",
     "differs"),
    # exclude = 7 (field 5) is no ExcludeMode: hand-written, Python refuses to build it.
    ("unknown exclude mode", "Recommend", b"\x0a\x02u1\x28\x07", "INVALID_ARGUMENT",
     "exclude"),
    ("no candidates", "Rank", pb.RankRequest(user_id="u1"), "INVALID_ARGUMENT",
     "candidate_item_ids"),
    ("6000 candidates", "Rank", pb.RankRequest(user_id="u1",
                                               candidate_item_ids=["i"] * 6000),
     "INVALID_ARGUMENT", "candidate_item_ids"),
    ("no texts", "Embed", pb.EmbedRequest(), "INVALID_ARGUMENT", "texts"),
    ("unknown method", "NoSuchMethod", b"", "UNIMPLEMENTED", "not implemented"),
    ("valid, but no model", "Recommend", pb.RecommendRequest(user_id="u1", k=10),
     "FAILED_PRECONDITION", "no recommendation model"),
    ("valid Rank, but no model", "Rank", pb.RankRequest(user_id="u1", candidate_item_ids=["i"]),
     "FAILED_PRECONDITION", "--model"),
]


class MalformedRequests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.srv = Server(cls.dir.name + "/history")

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.stderr()
        cls.dir.cleanup()

    def test_each_gets_its_status_and_the_server_keeps_serving(self):
        self.assertGreaterEqual(len(BAD_REQUESTS), 20)
        for name, method, request, status, text in BAD_REQUESTS:
            with self.subTest(name):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.srv.call(f"/driftrec.v1.Recommender/{method}", request, None, timeout=10)
                self.assertEqual(cm.exception.code().name, status, cm.exception.details())
                self.assertIn(text, cm.exception.details() or "")
                # Still serving after every bad request, and nothing was stored.
                self.assertEqual(self.srv.health(""), health_pb2.HealthCheckResponse.SERVING)
        self.assertEqual(history(self.srv.history_dir, "log"), [])
        self.assertEqual(self.srv.ingest([event(item="ok")]).accepted, 1)


# ---- Recommend and Rank from a model bundle ------------------------------------------------

TRAIN_DIR = os.path.join(REPO, "models", "train")
N_ITEMS, DIM, MAX_EVENTS = 400, 16, 12
CLIP = {"dwell_s": 300.0, "amount": 500.0}
CATEGORIES = ["shoes", "tents", "books", "phones"]
T0 = 1_700_000_000
# The server runs the int8 interest model; the reference is the fp32 PyTorch model it was
# exported from.  Measured on this bundle: score differences up to about 0.005 (scores are
# O(1)); the bound leaves room for other ISAs and seeds.
INT8_TOL = 0.03
FLOAT_TOL = 1e-5  # the same model and events on two paths (replay, cached steps)


class Bundle:
    """A small bundle from the training package's writer (docs/bundle.md): a random-init
    interest model exported as int8, random item vectors, four named categories; and the fp32
    PyTorch model it came from, the reference for every user vector.  model_seed picks the
    interest model's random weights (another seed: another model over the same items)."""

    def __init__(self, out_dir, model_seed=7):
        if TRAIN_DIR not in sys.path:
            sys.path.insert(0, TRAIN_DIR)
        import driftrec_train.runtime  # noqa: F401  (BLAS set-up: before numpy and torch load)
        import numpy as np
        import torch
        from driftrec_train import bundle as bundle_mod, interest
        self.np, self.torch, self.interest = np, torch, interest
        torch.set_num_threads(1)
        config = interest.InterestConfig(item_dim=DIM, hidden_size=32, num_layers=1,
                                         max_events=MAX_EVENTS, half_life_s=2 * 86400.0)
        self.model = interest.InterestModel(config)
        interest.random_init(self.model, torch.Generator().manual_seed(model_seed))
        self.model.eval()
        rng = np.random.default_rng(20261128)
        self.ids = [f"item-{i}" for i in range(N_ITEMS)]
        self.ids[5] = "caf\u00e9-5"
        self.vectors = (0.5 * rng.standard_normal((N_ITEMS, DIM))).astype(np.float32)
        self.categories = np.arange(N_ITEMS, dtype=np.uint32) % len(CATEGORIES)
        self.row = {i: r for r, i in enumerate(self.ids)}
        self.path = str(bundle_mod.write_bundle(
            os.path.join(out_dir, "bundle"), name="e2e-shop", interest_model=self.model,
            item_ids=self.ids, item_vectors=self.vectors,
            preprocessing={"clip": CLIP, "time_unit": "seconds"}, training={"run": "e2e"},
            categories=self.categories, category_names=CATEGORIES, index_threads=1))
        with open(os.path.join(self.path, "manifest.json")) as f:
            self.manifest = json.load(f)

    def user_vector(self, events, window=MAX_EVENTS):
        """PyTorch fp32 over events (pb.Event in the store's order: by ts, then arrival) as
        the server replays them: unknown items left out, then the last `window` (None: all),
        dwell_s and amount clipped, no text."""
        np, I = self.np, self.interest
        types = self.manifest["event_types"]
        known = [e for e in events if e.item_id in self.row]
        if window is not None:
            known = known[-window:] if window else []

        def opt(e, name, clip=None):
            if not e.HasField(name):
                return None
            v = float(getattr(e, name))
            return min(v, clip) if clip is not None else v

        ue = I.UserEvents(
            item_vecs=np.stack([self.vectors[self.row[e.item_id]] for e in known])
            if known else np.zeros((0, DIM), np.float32),
            text_vecs=None,
            event_types=[types.index(pb.EventType.Name(e.event_type).lower()) for e in known],
            ts=[e.ts for e in known],
            dwell_s=[opt(e, "dwell_s", CLIP["dwell_s"]) for e in known],
            amount=[opt(e, "amount", CLIP["amount"]) for e in known],
            rating=[opt(e, "rating") for e in known])
        with self.torch.no_grad():
            return self.model.forward_user(ue).double().numpy()

    def exact_scores(self, uv):
        return self.vectors.astype(self.np.float64) @ uv

    def exact_top(self, uv, k, excluded=()):
        s = self.exact_scores(uv)
        order = sorted((r for r in range(N_ITEMS) if r not in excluded), key=lambda r: (-s[r], r))
        return [self.ids[r] for r in order[:k]]


def store_order(events):
    """The history store's order: by ts, arrival breaking ties (a stable sort)."""
    return sorted(events, key=lambda e: e.ts)


def random_events(rng, user, n, t0=T0, items=None):
    """n events of one user in arrival order: random items (one in seven unknown to the
    model), types, optional dwell (sometimes above the clip), amount and rating, gaps of 0
    to a day."""
    out, ts = [], t0
    for j in range(n):
        ts += int(rng.choice([0, 30, 400, 7200, 90_000]))
        item = (items[j] if items else
                f"item-{int(rng.integers(0, N_ITEMS))}" if rng.random() > 1 / 7
                else f"new-item-{int(rng.integers(0, 1000))}")
        e = pb.Event(user_id=user, item_id=item, ts=ts,
                     event_type=int(rng.choice([pb.IMPRESSION, pb.VIEW, pb.CLICK, pb.CART,
                                                pb.PURCHASE, pb.REVIEW])))
        if rng.random() < 0.7:
            e.dwell_s = float(rng.choice([rng.uniform(0, 200), 5000.0]))
        if rng.random() < 0.3:
            e.amount = float(rng.uniform(1, 900))
        if rng.random() < 0.3:
            e.rating = int(rng.integers(1, 6))
        out.append(e)
    return out


def metric(text, name):
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


class RecommendWithBundle(unittest.TestCase):
    """Recommend and Rank served from a bundle (--model), checked against PyTorch and numpy;
    the state cache against replays; the errors a client can cause."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.bundle = Bundle(cls.dir.name)
        cls.history_dir = cls.history_target()
        cls.srv = Server(cls.history_dir, "--model", cls.bundle.path)
        cls.stored = {}  # user -> the events acknowledged for it, in arrival order

    @classmethod
    def history_target(cls):
        return cls.dir.name + "/history"

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.stderr()
        cls.dir.cleanup()

    def ingest_for(self, events, srv=None):
        r = (srv or self.srv).ingest(events)
        self.assertEqual(r.accepted, len(events))
        for e in events:
            self.stored.setdefault(e.user_id, []).append(e)

    def recommend(self, user, srv=None, **kw):
        return (srv or self.srv).call("/driftrec.v1.Recommender/Recommend",
                                      pb.RecommendRequest(user_id=user, **kw),
                                      pb.RecommendResponse, timeout=10)

    def rank(self, user, candidates, **kw):
        return self.srv.call("/driftrec.v1.Recommender/Rank",
                             pb.RankRequest(user_id=user, candidate_item_ids=candidates, **kw),
                             pb.RankResponse, timeout=10)

    def history_rows(self, user, types=None):
        return {self.bundle.row[e.item_id] for e in self.stored.get(user, [])
                if e.item_id in self.bundle.row and (types is None or e.event_type in types)}

    def assert_same_ranking(self, a, b, what):
        self.assertEqual([i.item_id for i in a.items], [i.item_id for i in b.items], what)
        for x, y in zip(a.items, b.items):
            self.assertAlmostEqual(x.score, y.score, delta=FLOAT_TOL * (1 + abs(y.score)),
                                   msg=what)

    def test_model_is_served(self):
        S = health_pb2.HealthCheckResponse
        self.assertEqual(self.srv.health("driftrec.v1.Recommender"), S.SERVING)
        r = self.srv.call("/driftrec.v1.Recommender/GetModel", pb.GetModelRequest(),
                          pb.GetModelResponse)
        self.assertEqual(len(r.models), 1)
        m = r.models[0]
        self.assertEqual((m.name, m.version, m.is_default, m.item_count, m.vector_dim),
                         ("e2e-shop", self.bundle.manifest["version"], True, N_ITEMS, DIM))
        r = self.srv.call("/driftrec.v1.Recommender/GetModel",
                          pb.GetModelRequest(model="e2e-shop"), pb.GetModelResponse)
        self.assertEqual([x.name for x in r.models], ["e2e-shop"])
        with self.assertRaises(grpc.RpcError) as cm:
            self.srv.call("/driftrec.v1.Recommender/GetModel", pb.GetModelRequest(model="nope"),
                          pb.GetModelResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn(f'model="e2e-shop",model_version="{m.version}"', self.srv.metrics())

        def cli(*args):
            r = subprocess.run([CLI_BIN, "--addr", f"127.0.0.1:{self.srv.port}", *args],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            return json.loads(r.stdout)
        got = cli("get-model")["models"][0]
        self.assertEqual((got["item_count"], got["vector_dim"]), (N_ITEMS, DIM))
        cli("ingest", "--user", "cli-user", "--item", "item-9", "--type", "click", "--ts", str(T0))
        got = cli("recommend", "--user", "cli-user", "--k", "3", "--category", "books")
        self.assertEqual(len(got["items"]), 3)
        self.assertEqual({i["because_item_id"] for i in got["items"]}, {"item-9"})
        got = cli("rank", "--user", "cli-user", "item-1", "item-2", "nope")
        self.assertEqual(got["unknown_item_ids"], ["nope"])

    def test_load_client_replay_counts_match_the_server_metrics(self):
        # driftrec-load with a replay file (bench/load/make_replay.py over an events.jsonl of
        # this bundle's items) and a mix of Recommend with and without query text (this bundle
        # has no text encoder: FAILED_PRECONDITION, counted like any status), Rank and Ingest;
        # its per-method, per-status counts must equal the server's counters' growth.
        def requests_total():
            pat = r'^driftrec_requests_total\{method="(\w+)",code="(\w+)",variant="A"\} (\d+)$'
            return {(m, c): int(n) for m, c, n in re.findall(pat, self.srv.metrics(), re.M)}

        rng = __import__("random").Random(5)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "events.jsonl"), "w") as f:
                for u in range(20):
                    ts = T0
                    for _ in range(60):
                        ts += rng.choice([0, 30, 400, 7200])
                        f.write(json.dumps({
                            "user_id": f"replay-{u}", "item_id": rng.choice(self.bundle.ids),
                            "ts": ts, "event_type": rng.choice(["view", "click", "purchase"]),
                            "dwell_s": rng.choice([None, 12.5]), "amount": None,
                            "rating": None, "text": ""}) + "\n")
            replay = os.path.join(d, "replay.jsonl")
            subprocess.run([sys.executable, os.path.join(REPO, "bench", "load", "make_replay.py"),
                            os.path.join(d, "events.jsonl"), replay, "--candidates", "30"],
                           check=True, capture_output=True, timeout=60)
            with open(replay) as f:
                lines = [json.loads(x) for x in f]
            self.assertTrue(20 <= len(lines) <= 60)  # 20 users, up to 3 cuts each
            self.assertTrue(all(1 <= len(x["events"]) <= 50 for x in lines))
            before = requests_total()
            out = os.path.join(d, "load.json")
            r = subprocess.run([LOAD_BIN, "--addr", f"127.0.0.1:{self.srv.port}", "--replay",
                                replay, "--mix", "recommend=60,recommend_query=10,rank=20,ingest=10",
                                "--concurrency", "4", "--warmup", "0", "--duration", "2",
                                "--json", out], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f:
                got = json.load(f)
        after = requests_total()
        grown = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        per = got["methods"]
        self.assertEqual(set(per), {"recommend", "recommend_query", "rank", "ingest"})
        self.assertGreater(per["recommend"]["calls"], 20)
        self.assertEqual(per["recommend"]["status"], {"OK": per["recommend"]["calls"]})
        self.assertEqual(per["rank"]["status"], {"OK": per["rank"]["calls"]})
        self.assertEqual(per["ingest"]["status"], {"OK": per["ingest"]["calls"]})
        self.assertEqual(per["recommend_query"]["status"],
                         {"FAILED_PRECONDITION": per["recommend_query"]["calls"]})
        want = {}
        for name, m in per.items():
            server_method = {"recommend_query": "Recommend"}.get(name, name.capitalize())
            for code, n in m["status"].items():
                want[(server_method, code)] = want.get((server_method, code), 0) + n
        self.assertEqual(grown, want)
        self.assertEqual(sum(m["calls"] for m in per.values()), got["calls"])
        for m in per.values():
            self.assertLessEqual(m["latency_ms"]["p50"], m["latency_ms"]["p99"])

    def test_recommend_and_rank_equal_pytorch_and_numpy(self):
        import numpy as np
        rng = np.random.default_rng(1)
        users = [f"match-{u}" for u in range(6)]
        for u in users:
            self.ingest_for(random_events(rng, u, int(rng.integers(3, MAX_EVENTS + 1))))
        overlaps = []
        worst = 0.0
        for u in users + ["match-nobody"]:  # the last has no history: the model's empty vector
            uv = self.bundle.user_vector(store_order(self.stored.get(u, [])))
            exact = self.bundle.exact_scores(uv)
            seen = self.history_rows(u)
            r = self.recommend(u, k=10, request_id=f"req-{u}")
            ids = [i.item_id for i in r.items]
            self.assertEqual(len(ids), 10, u)
            self.assertEqual(len(set(ids)), 10, u)
            self.assertTrue(all(i in self.bundle.row for i in ids), ids)
            self.assertFalse({self.bundle.row[i] for i in ids} & seen, f"{u}: a history item")
            scores = [i.score for i in r.items]
            self.assertEqual(scores, sorted(scores, reverse=True), u)
            for it in r.items:
                diff = abs(it.score - exact[self.bundle.row[it.item_id]])
                worst = max(worst, diff)
                self.assertLess(diff, INT8_TOL, f"{u} {it.item_id}")
            top = self.bundle.exact_top(uv, 10, seen)
            overlaps.append(len(set(ids) & set(top)) / 10)
            self.assertEqual((r.model, r.model_version, r.variant, r.request_id),
                             ("e2e-shop", self.bundle.manifest["version"], "A", f"req-{u}"))
            self.assertGreaterEqual(r.timings.total_us, r.timings.search_us)
            if seen:  # explained by an item of the user's history
                self.assertTrue(all(self.bundle.row.get(i.because_item_id) in seen
                                    and i.explanation.startswith("because you ")
                                    for i in r.items), r.items[0])

            # Rank: exact scores of the candidates, best first; unknown ids reported, a
            # repeated one scored once.  Recommend's own items score the same through Rank.
            cands = [self.bundle.ids[int(j)] for j in rng.choice(N_ITEMS, 25, replace=False)]
            cands += ["no-such-item", cands[0]] + ids[:3]
            rr = self.rank(u, cands)
            self.assertEqual(list(rr.unknown_item_ids), ["no-such-item"])
            self.assertEqual(sorted(i.item_id for i in rr.items), sorted(set(cands) - {"no-such-item"}))
            rs = [i.score for i in rr.items]
            self.assertEqual(rs, sorted(rs, reverse=True))
            for it in rr.items:
                self.assertLess(abs(it.score - exact[self.bundle.row[it.item_id]]), INT8_TOL)
            ranked = {i.item_id: i.score for i in rr.items}
            for it in r.items[:3]:
                self.assertAlmostEqual(ranked[it.item_id], it.score, delta=FLOAT_TOL)
        print(f"\nRecommend vs PyTorch fp32 + numpy: top-10 overlap {np.mean(overlaps):.3f}, "
              f"largest score difference {worst:.4f}", file=sys.stderr)
        self.assertGreaterEqual(np.mean(overlaps), 0.8)

    def test_cached_states_equal_replays(self):
        import numpy as np
        rng = np.random.default_rng(2)
        first, second = random_events(rng, "x", 6), random_events(rng, "x", 3, t0=T0 + 10**6)

        def events_for(user, events):
            out = []
            for e in events:
                c = pb.Event()
                c.CopyFrom(e)
                c.user_id = user
                out.append(c)
            return out

        text = self.srv.metrics()
        hits = metric(text, "driftrec_state_cache_hits_total")
        misses = metric(text, "driftrec_state_cache_misses_total")
        self.recommend("twin-a")  # cached now, with the empty history
        self.ingest_for(events_for("twin-a", first))       # steps A's cached state
        self.ingest_for(events_for("twin-b", first))       # B is not cached: nothing to step
        a, b = self.recommend("twin-a", k=20), self.recommend("twin-b", k=20)  # hit; replay
        self.assert_same_ranking(a, b, "stepped state vs replay")
        self.ingest_for(events_for("twin-a", second))      # both cached now: both stepped
        self.ingest_for(events_for("twin-b", second))
        self.ingest_for(events_for("twin-c", first + second))  # C: replayed at its first call
        a, b, c = (self.recommend(u, k=20) for u in ("twin-a", "twin-b", "twin-c"))
        self.assert_same_ranking(a, c, "stepped twice vs replay")
        self.assert_same_ranking(b, c, "replayed then stepped vs replay")
        text = self.srv.metrics()  # A: miss, hit, hit; B: miss, hit; C: miss
        self.assertEqual(metric(text, "driftrec_state_cache_hits_total") - hits, 3)
        self.assertEqual(metric(text, "driftrec_state_cache_misses_total") - misses, 3)

        # An event older than the cached state's last one cannot be stepped: the state is
        # dropped and rebuilt from the store, where the event sits in time order.
        invalidated = metric(text, "driftrec_state_cache_invalidations_total")
        for u in ("twin-a", "twin-c"):
            self.ingest_for([event(user=u, item="item-3", ts=T0 + 1, etype=pb.CART)])
        self.assertEqual(metric(self.srv.metrics(), "driftrec_state_cache_invalidations_total"),
                         invalidated + 2)
        a, c = self.recommend("twin-a", k=20), self.recommend("twin-c", k=20)
        self.assert_same_ranking(a, c, "after a late event")
        uv = self.bundle.user_vector(store_order(self.stored["twin-a"]))
        top = self.bundle.exact_top(uv, 20, self.history_rows("twin-a"))
        self.assertGreaterEqual(len(set(top) & {i.item_id for i in a.items}), 14)

        # A restart empties the cache: every user is replayed from the store, same ranking.
        cls = type(self)
        self.assertEqual(cls.srv.stop(), 0, cls.srv.stderr())
        cls.srv = Server(cls.history_dir, "--model", cls.bundle.path)
        self.assert_same_ranking(a, self.recommend("twin-a", k=20), "before and after a restart")
        self.assertEqual(metric(self.srv.metrics(), "driftrec_state_cache_misses_total"), 1)

    def test_concurrent_ingest_and_recommend(self):
        # Ingest and Recommend race on the same users; afterwards every user's answer from the
        # cache equals the answer of a server without a cache over the same store.  (The
        # ticket rule keeps a replay that raced an Ingest out of the cache.)
        import numpy as np
        rng = np.random.default_rng(6)
        users = [f"race-{u}" for u in range(5)]
        batches = []
        for step in range(MAX_EVENTS):  # at most max_events each: replay == cached steps
            ts = T0 + 1000 * (step // 2)  # pairs of steps share a timestamp
            batches.append([event(user=u, item=f"item-{int(rng.integers(0, N_ITEMS))}", ts=ts,
                                  etype=int(rng.choice([pb.VIEW, pb.CLICK, pb.CART])),
                                  dwell_s=float(rng.uniform(1, 100)))
                            for u in users if rng.random() < 0.8])
        done, errors = threading.Event(), []

        def reader(seed):
            r = np.random.default_rng(seed)
            while not done.is_set():
                try:
                    self.recommend(users[int(r.integers(0, len(users)))], k=5)
                except grpc.RpcError as e:
                    errors.append(e)
                    return

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        try:
            for b in batches:
                if b:
                    self.ingest_for(b)
        finally:
            done.set()
            for t in threads:
                t.join(timeout=30)
        self.assertEqual(errors, [])
        cold = Server(self.history_dir, "--model", self.bundle.path, "--state-cache", "0")
        try:
            for u in users:
                self.assert_same_ranking(self.recommend(u, k=20),
                                         self.recommend(u, srv=cold, k=20), u)
            self.assertNotIn("driftrec_state_cache_hits_total", cold.metrics())
        finally:
            self.assertEqual(cold.stop(), 0, cold.stderr())

    def test_state_window_semantics(self):
        # Beyond max_events the two paths differ by design (docs/architecture.md): a replay
        # takes the last max_events usable events, a cached state has stepped through every
        # event since it was built.  Each must equal PyTorch over its own events.
        import numpy as np
        rng = np.random.default_rng(3)
        events = random_events(rng, "long-cold", 2 * MAX_EVENTS)
        self.recommend("long-warm")  # cached from its first (empty) call on
        self.ingest_for(events)
        warm = []
        for e in events:
            c = pb.Event()
            c.CopyFrom(e)
            c.user_id = "long-warm"
            warm.append(c)
        self.ingest_for(warm)
        for user, window in (("long-cold", MAX_EVENTS), ("long-warm", None)):
            uv = self.bundle.user_vector(store_order(self.stored[user]), window=window)
            r = self.recommend(user, k=10, exclude=pb.EXCLUDE_NONE)
            exact = self.bundle.exact_scores(uv)
            for it in r.items:
                self.assertLess(abs(it.score - exact[self.bundle.row[it.item_id]]), INT8_TOL,
                                user)
            self.assertGreaterEqual(len({i.item_id for i in r.items}
                                        & set(self.bundle.exact_top(uv, 10))), 7, user)

    def test_inline_events_apply_to_one_request(self):
        import numpy as np
        rng = np.random.default_rng(4)
        stored = random_events(rng, "inline", 5)
        newer = random_events(rng, "inline", 2, t0=stored[-1].ts + 60)
        older = random_events(rng, "inline", 1, t0=T0 - 10_000)
        self.ingest_for(stored)
        for extra, twin in ((newer, "inline-twin-newer"), (older, "inline-twin-older")):
            twin_events = []
            for e in stored + extra:
                c = pb.Event()
                c.CopyFrom(e)
                c.user_id = twin
                twin_events.append(c)
            self.ingest_for(twin_events)
            # Inline events without user_id inherit the request's.
            inline = []
            for e in extra:
                c = pb.Event()
                c.CopyFrom(e)
                c.ClearField("user_id")
                inline.append(c)
            got = self.recommend("inline", k=15, recent_events=inline)
            self.assert_same_ranking(got, self.recommend(twin, k=15),
                                     f"inline vs stored ({twin})")
        rows = history(self.history_dir, "user", "inline")
        self.assertEqual(len(rows), len(stored))  # Recommend stores nothing

    def test_exclusion_modes_and_category(self):
        import numpy as np
        rng = np.random.default_rng(5)
        events = random_events(rng, "excl", 10)
        events[0].event_type = pb.PURCHASE
        events[0].item_id = "item-7"
        self.ingest_for(events)
        seen = self.history_rows("excl")
        bought = self.history_rows("excl", {pb.PURCHASE})
        ids = lambda r: {self.bundle.row[i.item_id] for i in r.items}  # noqa: E731
        # k above the model's item count: every item the mode allows comes back
        r = self.recommend("excl", k=1000)
        self.assertEqual(ids(r), set(range(N_ITEMS)) - seen)
        r = self.recommend("excl", k=1000, exclude=pb.EXCLUDE_PURCHASED)
        self.assertEqual(ids(r), set(range(N_ITEMS)) - bought)
        r = self.recommend("excl", k=1000, exclude=pb.EXCLUDE_NONE)
        self.assertEqual(len(r.items), N_ITEMS)
        r = self.recommend("excl", k=10, category="tents")
        self.assertEqual(len(r.items), 10)
        for i in r.items:
            row = self.bundle.row[i.item_id]
            self.assertEqual(self.bundle.categories[row], CATEGORIES.index("tents"))
            self.assertNotIn(row, seen)

    def test_skipped_events_are_counted(self):
        before = metric(self.srv.metrics(), 'driftrec_skipped_events_total{reason="unknown_item"}')
        self.ingest_for([event(user="skipper", item=f"brand-new-{j}", ts=T0 + j)
                         for j in range(3)] + [event(user="skipper", item="item-1", ts=T0 + 9)])
        r = self.recommend("skipper", k=5)
        self.assertEqual(len(r.items), 5)
        after = metric(self.srv.metrics(), 'driftrec_skipped_events_total{reason="unknown_item"}')
        self.assertEqual(after - before, 3)

    def test_bad_requests_get_clear_errors(self):
        R, K = "Recommend", "Rank"
        cases = [
            (R, pb.RecommendRequest(user_id="u", k=0), "INVALID_ARGUMENT", "k: 0 is not in 1..1000"),
            (R, pb.RecommendRequest(user_id="u", k=10**6), "INVALID_ARGUMENT", "k: 1000000"),
            (R, pb.RecommendRequest(k=3), "INVALID_ARGUMENT", "user_id: required"),
            (R, pb.RecommendRequest(user_id="u", model="other"), "NOT_FOUND",
             'model "other" is not loaded (this instance serves "e2e-shop")'),
            (R, pb.RecommendRequest(user_id="u", category="boats"), "INVALID_ARGUMENT",
             'category "boats": not one of'),
            (R, pb.RecommendRequest(user_id="u", query_text="red shoes"), "FAILED_PRECONDITION",
             'query_text: model "e2e-shop" has no text encoder and text projection'),
            (R, pb.RecommendRequest(user_id="u", recent_events=[event(user="v")]),
             "INVALID_ARGUMENT", "differs"),
            (K, pb.RankRequest(user_id="u"), "INVALID_ARGUMENT", "candidate_item_ids: 0 given"),
            (K, pb.RankRequest(user_id="u", candidate_item_ids=["item-1", ""]),
             "INVALID_ARGUMENT", "candidate_item_ids[1]: required"),
            (K, pb.RankRequest(user_id="u", candidate_item_ids=["item-1"] * 5001),
             "INVALID_ARGUMENT", "1..5000 allowed"),
            (K, pb.RankRequest(candidate_item_ids=["item-1"]), "INVALID_ARGUMENT", "user_id"),
            (K, pb.RankRequest(user_id="u", candidate_item_ids=["item-1"], model="other"),
             "NOT_FOUND", "not loaded"),
        ]
        for method, request, status, text in cases:
            with self.subTest(f"{method} {status} {text}"):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.srv.call(f"/driftrec.v1.Recommender/{method}", request, None)
                self.assertEqual(cm.exception.code().name, status, cm.exception.details())
                self.assertIn(text, cm.exception.details())
        # Only unknown candidates: not an error, they are reported.
        r = self.rank("u", ["ghost-1", "ghost-2"])
        self.assertEqual((len(r.items), list(r.unknown_item_ids)), (0, ["ghost-1", "ghost-2"]))
        self.assertEqual(self.srv.health("driftrec.v1.Recommender"),
                         health_pb2.HealthCheckResponse.SERVING)

    def test_eviction_keeps_answers(self):
        with tempfile.TemporaryDirectory() as d:
            srv = Server(d + "/history", "--model", self.bundle.path, "--state-cache", "1")
            try:
                srv.ingest([event(user=u, item=f"item-{j}", ts=T0 + j)
                            for u in ("ev-1", "ev-2") for j in range(1, 6)])
                first = self.recommend("ev-1", srv=srv, k=10)
                self.recommend("ev-2", srv=srv)  # evicts ev-1
                self.assert_same_ranking(first, self.recommend("ev-1", srv=srv, k=10),
                                         "before and after an eviction")
                text = srv.metrics()
                self.assertEqual(metric(text, "driftrec_state_cache_evictions_total"), 2)
                self.assertEqual(metric(text, "driftrec_state_cache_entries"), 1)
                self.assertEqual(metric(text, "driftrec_state_cache_capacity"), 1)
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())

    def assert_model_refused(self, history_dir, args, text, env=None):
        """A server started with args stops with status 2, its log naming the bundle refusal
        and text."""
        r = subprocess.run([SERVER_BIN, "--history", history_dir, "--listen",
                            f"127.0.0.1:{free_port()}", "--metrics", "off", *args],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, **(env or {})})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("cannot load the model bundle", r.stderr)
        self.assertIn(text, r.stderr)

    def test_bad_bundles_stop_the_start(self):
        with tempfile.TemporaryDirectory() as d:
            broken = os.path.join(d, "broken")
            shutil.copytree(self.bundle.path, broken)
            with open(os.path.join(broken, "items", "vectors.f32"), "r+b") as f:
                f.seek(100)
                byte = f.read(1)
                f.seek(100)
                f.write(bytes([byte[0] ^ 1]))
            config = os.path.join(d, "config.json")
            with open(config, "w") as f:
                json.dump({"model": broken}, f)
            cases = [(["--model", broken], {}, "items/vectors.f32: sha256"),
                     (["--model", d + "/missing"], {}, d + "/missing"),
                     (["--config", config], {}, "items/vectors.f32"),
                     ([], {"DR_MODEL": broken}, "items/vectors.f32")]
            for args, env, text in cases:
                with self.subTest(args=args, env=env):
                    self.assert_model_refused(d + "/history", args, text, env)
            # The flag beats the environment (flags > environment > file > defaults).
            os.environ["DR_MODEL"] = broken
            try:
                srv = Server(d + "/history", "--model", self.bundle.path)
            finally:
                del os.environ["DR_MODEL"]
            self.assertEqual(srv.health("driftrec.v1.Recommender"),
                             health_pb2.HealthCheckResponse.SERVING)
            self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_step_time_bundles_are_refused_unless_allowed(self):
        """A model trained on order-only data counts events where requests carry seconds."""
        with tempfile.TemporaryDirectory() as d:
            def with_unit(name, unit):
                path = os.path.join(d, name)
                shutil.copytree(self.bundle.path, path)
                with open(os.path.join(path, "manifest.json")) as f:
                    manifest = json.load(f)
                manifest["preprocessing"]["time_unit"] = unit
                with open(os.path.join(path, "manifest.json"), "w") as f:
                    json.dump(manifest, f)
                return path

            steps, hours = with_unit("steps", "steps"), with_unit("hours", "hours")
            # (The log is JSON: quotes inside the detail are escaped.)
            cases = [(["--model", steps], "trained with preprocessing.time_unit"),
                     (["--model", steps, "--allow-step-time", "no"], "--allow-step-time yes"),
                     (["--model", hours], "preprocessing.time_unit must be"),
                     (["--model", hours, "--allow-step-time", "yes"], "time_unit must be")]
            for args, text in cases:
                with self.subTest(args=args):
                    self.assert_model_refused(d + "/history", args, text)
            r = subprocess.run([SERVER_BIN, "--allow-step-time", "maybe"], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("expected yes or no", r.stderr)
            srv = Server(d + "/history", "--model", steps, "--allow-step-time", "yes")
            try:
                self.assertEqual(srv.health("driftrec.v1.Recommender"),
                                 health_pb2.HealthCheckResponse.SERVING)
                self.assertEqual(len(self.recommend("step-user", srv=srv, k=5).items), 5)
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())

    def impressions(self, history_dir, request_id, n, timeout=10.0):
        """The log's impression records of one request, waiting up to timeout for the writer's
        group commit to hold n of them."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [r for r in history(history_dir, "log", "impression")
                    if r.get("request_id") == request_id]
            if len(rows) >= n or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)

    def test_recommend_logs_impressions(self):
        self.ingest_for([event(user="imp-user", item="item-3", ts=T0, event_id="imp-e1")])
        before = metric(self.srv.metrics(), "driftrec_impressions_logged_total")
        t0 = int(time.time())
        r = self.recommend("imp-user", k=7, request_id="imp-req-1")
        t1 = int(time.time())
        rows = self.impressions(self.history_dir, "imp-req-1", 7)
        self.assertEqual(len(rows), 7, rows)
        self.assertEqual([x["position"] for x in rows], list(range(7)))  # log order = rank
        self.assertEqual([x["item_id"] for x in rows], [i.item_id for i in r.items])
        for x in rows:
            self.assertEqual((x["kind"], x["event_type"], x["user_id"], x["variant"],
                              x["model_version"]),
                             ("impression", "impression", "imp-user", "A",
                              self.bundle.manifest["version"]))
            self.assertTrue(t0 <= x["ts"] <= t1, x)
        # Without a request id the server makes one up, returns it and logs under it: feedback
        # can name the recommendation.
        r2 = self.recommend("imp-user", k=3)
        self.assertRegex(r2.request_id, r"^[0-9a-f]{16}$")
        self.assertNotEqual(r2.request_id, self.recommend("imp-user", k=1).request_id)
        rows2 = self.impressions(self.history_dir, r2.request_id, 3)
        self.assertEqual([(x["item_id"], x["position"]) for x in rows2],
                         [(i.item_id, p) for p, i in enumerate(r2.items)])
        # Feedback on an impression goes through Ingest, with the same request id, variant and
        # position: the log joins the two.
        clicked = r.items[2].item_id
        self.ingest_for([event(user="imp-user", item=clicked, ts=T0 + 60, request_id="imp-req-1",
                               variant="A", position=2, event_id="imp-e2")])
        feedback = [x for x in history(self.history_dir, "log", "event")
                    if x.get("request_id") == "imp-req-1"]
        self.assertEqual([(x["kind"], x["item_id"], x["position"], x["variant"])
                          for x in feedback], [("event", clicked, 2, "A")])
        shown = {(x["item_id"], x["position"]) for x in rows}
        self.assertIn((feedback[0]["item_id"], feedback[0]["position"]), shown)
        # Impressions are not history: the user's stored events are the two ingested ones.
        self.assertEqual([x["item_id"] for x in history(self.history_dir, "user", "imp-user")],
                         ["item-3", clicked])
        text = self.srv.metrics()
        self.assertGreaterEqual(metric(text, "driftrec_impressions_logged_total") - before, 11)
        self.assertEqual(metric(text, 'driftrec_impressions_dropped_total{reason="queue_full"}'), 0)

    def test_impressions_beyond_the_queue_are_dropped_and_counted(self):
        with tempfile.TemporaryDirectory() as d:
            srv = Server(d + "/history", "--model", self.bundle.path, "--impression-queue", "5")
            try:
                r = self.recommend("q-user", srv=srv, k=10, request_id="too-many")
                self.assertEqual(len(r.items), 10)  # answered as usual
                r = self.recommend("q-user", srv=srv, k=4, request_id="fits")
                text = srv.metrics()
                self.assertEqual(
                    metric(text, 'driftrec_impressions_dropped_total{reason="queue_full"}'), 10)
                self.assertEqual(metric(text, "driftrec_impression_queue_capacity"), 5)
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())
            rows = history(d + "/history", "log", "impression")
            self.assertEqual([(x["request_id"], x["position"]) for x in rows],
                             [("fits", p) for p in range(4)])
        with tempfile.TemporaryDirectory() as d:
            srv = Server(d + "/history", "--model", self.bundle.path, "--impression-queue", "0")
            try:
                self.recommend("q-user", srv=srv, k=3)
                self.assertNotIn("driftrec_impressions_logged_total", srv.metrics())
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())
            self.assertEqual(history(d + "/history", "log"), [])

    def test_clean_shutdown_logs_every_impression(self):
        # Clients call Recommend until SIGTERM stops the server under them: the drain commits
        # every impression still queued, so the log holds every response a client received.
        with tempfile.TemporaryDirectory() as d:
            srv = Server(d + "/history", "--model", self.bundle.path)
            shown, errors, n_calls = {}, [], [0]

            def client(c):
                for n in range(100_000):
                    rid = f"drain-{c}-{n}"
                    try:
                        r = self.recommend(f"drain-user-{n % 7}", srv=srv, k=1 + (n * 7) % 25,
                                           request_id=rid)
                    except grpc.RpcError as e:
                        if e.code() not in (grpc.StatusCode.UNAVAILABLE,
                                            grpc.StatusCode.CANCELLED):
                            errors.append(e)
                        return
                    shown[rid] = [i.item_id for i in r.items]
                    n_calls[0] += 1

            threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
            for t in threads:
                t.start()
            while n_calls[0] < 100 and all(t.is_alive() for t in threads):
                time.sleep(0.02)
            srv.proc.send_signal(signal.SIGTERM)  # the clients' channel stays open meanwhile
            self.assertEqual(srv.proc.wait(timeout=30), 0, srv.stderr())
            for t in threads:
                t.join(timeout=30)
            srv.stop()
            self.assertEqual(errors, [])
            self.assertGreaterEqual(len(shown), 100)
            logged = {}
            for x in history(d + "/history", "log", "impression"):
                logged.setdefault(x["request_id"], []).append((x["position"], x["item_id"]))
            for rid, items in shown.items():
                self.assertEqual([item for _, item in sorted(logged.get(rid, []))], items, rid)
            # A call may be logged and then cancelled by the shutdown before its client has the
            # reply: at most one per client.
            self.assertLessEqual(len(set(logged) - set(shown)), len(threads))
    def test_log_lines_name_users_only_by_keyed_hash(self):
        user = "alice.secret-4711@example.com"

        def expected_hash(key_file):
            with open(key_file) as f:
                key = bytes.fromhex(f.read().strip())
            return hmac.new(key, user.encode(), hashlib.sha256).hexdigest()[:16]

        def requests(srv, n):
            srv.ingest([event(user=user, item="item-4", ts=T0 + n, event_id=f"log-{n}")])
            self.recommend(user, srv=srv, k=3, request_id=f"log-req-{n}")
            srv.call("/driftrec.v1.Recommender/Rank",
                     pb.RankRequest(user_id=user, candidate_item_ids=["item-1", "item-2"]),
                     pb.RankResponse)
            with self.assertRaises(grpc.RpcError):  # a failing request is logged too
                self.recommend(user, srv=srv, k=3, category="boats")

        def user_lines(srv):
            text = srv.stderr()
            self.assertNotIn(user, text)
            self.assertNotIn("alice", text)
            lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
            self.assertTrue(all("ts" in x and x["level"] in ("info", "debug") for x in lines))
            return [x for x in lines if "user" in x]

        with tempfile.TemporaryDirectory() as d:
            hist = d + "/history"
            srv = Server(hist, "--model", self.bundle.path, "--log-level", "debug")
            try:
                requests(srv, 1)
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())
            key_file = hist + "/log-key"  # made next to the history, for the service alone
            for path in (key_file, hist + "/data.mdb", hist + "/lock.mdb"):
                self.assertEqual(os.stat(path).st_mode & 0o777, 0o600, path)
            self.assertEqual(os.stat(hist).st_mode & 0o777, 0o700)
            want = expected_hash(key_file)
            lines = user_lines(srv)
            self.assertEqual({x["user"] for x in lines}, {want})
            self.assertEqual(sorted((x["method"], x["code"]) for x in lines),
                             [("Ingest", "OK"), ("Rank", "OK"), ("Recommend", "INVALID_ARGUMENT"),
                              ("Recommend", "OK")])
            failed = [x for x in lines if x["code"] != "OK"][0]
            self.assertIn('category "boats"', failed["detail"])
            self.assertIn("log-req-1", {x.get("request_id") for x in lines})
            # The event log keeps the real id (for retraining and A/B analysis).
            self.assertIn(user, {x["user_id"] for x in history(hist, "log")})

            # A restart with the same key: the same hash.
            srv = Server(hist, "--model", self.bundle.path, "--log-level", "debug")
            try:
                requests(srv, 2)
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())
            self.assertEqual({x["user"] for x in user_lines(srv)}, {want})

            # Another key (flag), made where it says: another hash.
            other_key = d + "/keys/other.key"
            os.makedirs(d + "/keys")
            srv = Server(hist, "--model", self.bundle.path, "--log-level", "debug",
                         "--log-key-file", other_key)
            try:
                requests(srv, 3)
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())
            self.assertEqual(os.stat(other_key).st_mode & 0o777, 0o600)
            other = expected_hash(other_key)
            self.assertNotEqual(other, want)
            self.assertEqual({x["user"] for x in user_lines(srv)}, {other})

            # A key others may read is refused, with the fix named.
            os.chmod(other_key, 0o644)
            r = subprocess.run([SERVER_BIN, "--history", hist, "--listen",
                                f"127.0.0.1:{free_port()}", "--metrics", "off",
                                "--log-key-file", other_key],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("chmod 600", r.stderr)

    def test_rank_order_equals_driftrec_user_scores(self):
        # The user vector from driftrec-user (the C library's interest model, run from scratch
        # over the same events as the server replays them: known items only, dwell_s and
        # amount clipped, the last max_events), dotted with the bundle's item vectors and
        # sorted (ties to the lower row) is Rank's order, score for score.
        import numpy as np
        rng = np.random.default_rng(8)
        b = self.bundle
        types = {pb.EventType.Value(t.upper()): t for t in b.manifest["event_types"]}

        def tool_vector(user):
            lines = []
            for e in store_order(self.stored[user]):
                if e.item_id not in b.row:
                    continue
                x = {"user_id": user, "item_id": e.item_id, "ts": e.ts,
                     "event_type": types[e.event_type]}
                if e.HasField("dwell_s"):
                    x["dwell_s"] = min(e.dwell_s, CLIP["dwell_s"])
                if e.HasField("amount"):
                    x["amount"] = min(e.amount, CLIP["amount"])
                if e.HasField("rating"):
                    x["rating"] = e.rating
                lines.append(json.dumps(x))
            with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as items:
                for i, item in enumerate(b.ids):
                    items.write(json.dumps({"item_id": item,
                                            "vector": [float(v) for v in b.vectors[i]]}) + "\n")
                items.flush()
                out = subprocess.run([USER_BIN, os.path.join(b.path, "interest"), "--items",
                                      items.name], input="\n".join(lines) + "\n",
                                     capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            rows = [json.loads(line) for line in out.stdout.splitlines()]
            return np.array(rows[0]["vector"] if rows else b.user_vector([]), np.float64)

        for n, user in ((5, "tool-short"), (3 * MAX_EVENTS, "tool-long")):
            self.ingest_for(random_events(rng, user, n))
            cands = [b.ids[int(j)] for j in rng.choice(N_ITEMS, 80, replace=False)]
            r = self.rank(user, cands + ["not-an-item"])  # the first call: a replay
            uv = tool_vector(user)
            scores = b.vectors.astype(np.float64) @ uv
            want = sorted(cands, key=lambda i: (-scores[b.row[i]], b.row[i]))
            got = [i.item_id for i in r.items]
            self.assertEqual(got, want, user)
            for it in r.items:
                self.assertAlmostEqual(it.score, scores[b.row[it.item_id]],
                                       delta=1e-5 * (1 + abs(it.score)), msg=user)
            self.assertEqual(list(r.unknown_item_ids), ["not-an-item"])

    def test_health_through_start_model_load_and_drain(self):
        # From launch to exit: the port closed, then alive but the model not yet loaded and
        # warm ("" SERVING, the service NOT_SERVING, Recommend UNAVAILABLE), then SERVING,
        # then, after SIGTERM, NOT_SERVING for the drain delay while calls are still served,
        # then closed.  The warm-up is made long so the loading state is seen.
        S = health_pb2.HealthCheckResponse
        with tempfile.TemporaryDirectory() as d:
            port = free_port()
            log = tempfile.TemporaryFile()
            proc = subprocess.Popen(
                [SERVER_BIN, "--listen", f"127.0.0.1:{port}", "--history", d + "/history",
                 "--metrics", "off", "--model", self.bundle.path, "--warmup", "100000",
                 "--drain-delay-ms", "1500"], stderr=log)
            states, during = [], {}
            channel = None

            def note(state):
                if not states or states[-1] != state:
                    states.append(state)

            def check(service):
                try:
                    return S.ServingStatus.Name(channel.unary_unary(
                        "/grpc.health.v1.Health/Check",
                        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                        response_deserializer=health_pb2.HealthCheckResponse.FromString)(
                            health_pb2.HealthCheckRequest(service=service), timeout=2).status)
                except grpc.RpcError as e:
                    return e.code().name

            def recommend():
                try:
                    channel.unary_unary("/driftrec.v1.Recommender/Recommend",
                                        request_serializer=pb.RecommendRequest.SerializeToString,
                                        response_deserializer=pb.RecommendResponse.FromString)(
                        pb.RecommendRequest(user_id="health-user", k=3), timeout=5)
                    return "OK"
                except grpc.RpcError as e:
                    return e.code().name

            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:  # the port opens
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                        break
                    except OSError:
                        note(("down", "down"))
                        time.sleep(0.002)
                channel = grpc.insecure_channel(f"127.0.0.1:{port}")
                while time.monotonic() < deadline:
                    state = (check(""), check("driftrec.v1.Recommender"))
                    note(state)
                    if state == ("SERVING", "NOT_SERVING") and "loading" not in during:
                        during["loading"] = recommend()
                    if state == ("SERVING", "SERVING"):
                        break
                during["ready"] = recommend()
                proc.send_signal(signal.SIGTERM)
                while time.monotonic() < deadline:
                    state = (check(""), check("driftrec.v1.Recommender"))
                    if state == ("SERVING", "NOT_SERVING"):
                        continue  # the drain began between the two checks: ask again
                    note(state)
                    if state == ("NOT_SERVING", "NOT_SERVING") and "draining" not in during:
                        during["draining"] = recommend()
                    if state[0] not in ("SERVING", "NOT_SERVING"):
                        break
                    time.sleep(0.01)
                self.assertEqual(proc.wait(timeout=30), 0)
            finally:
                if channel:
                    channel.close()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log.seek(0)
                stderr = log.read().decode(errors="replace")
                log.close()
            # Each state in order, none skipped, nothing out of order; "down" at the end is
            # UNAVAILABLE once the port closes.
            self.assertEqual([s for s in states if s != ("down", "down")][:3],
                             [("SERVING", "NOT_SERVING"), ("SERVING", "SERVING"),
                              ("NOT_SERVING", "NOT_SERVING")], (states, stderr))
            self.assertIn(states[-1][0], ("UNAVAILABLE", "CANCELLED"), states)
            self.assertEqual(during, {"loading": "UNAVAILABLE", "ready": "OK",
                                      "draining": "OK"}, stderr)


class InterestMoves(unittest.TestCase):
    """A bundle built so that a click on the other cluster must move the recommendations: item
    vectors in two clusters far apart (+3 and -3 along one axis, small noise elsewhere), and an
    interest model whose fusion gate is shut (bias -30: the user vector is the long-term
    time-decayed mean of the item vectors, half-life one hour).  Clicks an hour apart or more
    make the newest click the user vector, whatever the random LSTM says."""

    N = 200  # rows < N/2: cluster "a"; the rest: cluster "b"

    @classmethod
    def setUpClass(cls):
        if TRAIN_DIR not in sys.path:
            sys.path.insert(0, TRAIN_DIR)
        import driftrec_train.runtime  # noqa: F401
        import numpy as np
        import torch
        from driftrec_train import bundle as bundle_mod, interest
        torch.set_num_threads(1)
        config = interest.InterestConfig(item_dim=DIM, hidden_size=16, num_layers=1,
                                         max_events=MAX_EVENTS, half_life_s=3600.0)
        model = interest.InterestModel(config)
        interest.random_init(model, torch.Generator().manual_seed(11))
        with torch.no_grad():
            model.fuse.gate.weight.mul_(0.01)
            model.fuse.gate.bias.fill_(-30.0)
        model.eval()
        rng = np.random.default_rng(12)
        vectors = (0.3 * rng.standard_normal((cls.N, DIM))).astype(np.float32)
        vectors[: cls.N // 2, 0] += 3.0
        vectors[cls.N // 2:, 0] -= 3.0
        cls.ids = [f"{'a' if r < cls.N // 2 else 'b'}-{r}" for r in range(cls.N)]
        cls.dir = tempfile.TemporaryDirectory()
        path = bundle_mod.write_bundle(
            os.path.join(cls.dir.name, "bundle"), name="two-clusters", interest_model=model,
            item_ids=cls.ids, item_vectors=vectors,
            preprocessing={"clip": CLIP, "time_unit": "seconds"}, training={"run": "e2e"},
            index_threads=1)
        cls.srv = Server(cls.dir.name + "/history", "--model", str(path))

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.stderr()
        cls.dir.cleanup()

    def recommend(self, user):
        r = self.srv.call("/driftrec.v1.Recommender/Recommend",
                          pb.RecommendRequest(user_id=user, k=10), pb.RecommendResponse)
        self.assertEqual(len(r.items), 10)
        return r

    def test_a_click_on_the_other_cluster_moves_the_next_recommend(self):
        for user, cached in (("mover", True), ("mover-cold", False)):
            with self.subTest(user=user):
                self.srv.ingest([event(user=user, item=f"a-{r}", ts=T0 + 60 * r,
                                       event_id=f"{user}-{r}") for r in range(1, 5)])
                if cached:  # cached now: the click below steps the state
                    before = self.recommend(user)
                    self.assertEqual({i.item_id[0] for i in before.items}, {"a"})
                self.srv.ingest([event(user=user, item="b-150", ts=T0 + 86400, dwell_s=30.0,
                                       event_id=f"{user}-click")])
                after = self.recommend(user)  # a stepped state, or a replay of the store
                self.assertEqual({i.item_id[0] for i in after.items}, {"b"}, after.items)
                self.assertEqual({i.because_item_id for i in after.items}, {"b-150"})
                self.assertNotIn("b-150", {i.item_id for i in after.items})  # seen: excluded


def write_text_encoder(out_dir, hidden_size):
    """A small random BERT text encoder (vocabulary of 64, one layer), exported int8 as
    training exports it, into out_dir/text; returns (its directory, its vocab.txt)."""
    if TRAIN_DIR not in sys.path:
        sys.path.insert(0, TRAIN_DIR)
    import driftrec_train.runtime  # noqa: F401  (BLAS set-up: before numpy and torch load)
    import torch
    from driftrec_train import bert, export, golden
    vocab = os.path.join(out_dir, "vocab.txt")
    golden.write_vocab(Path(vocab), 64)
    enc = bert.TextEncoder(bert.BertConfig(
        vocab_size=64, hidden_size=hidden_size, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=32, pooling="mean"))
    bert.random_init(enc, torch.Generator().manual_seed(5), std=0.3)
    text_dir = export.export_bert(enc.eval(), os.path.join(out_dir, "text"), dtype="int8",
                                  name="e2e-text", vocab=vocab, do_lower_case=True)
    return text_dir, vocab


class QueryText(unittest.TestCase):
    """Recommend's query_text, the documented heuristic (docs/api.md): a bundle with a small
    random BERT text encoder (int8, as training exports it) and a random text projection;
    the server's blended vector's top-k against the same blend computed with PyTorch (the
    encoder on the exported weights, the fp32 interest model) and numpy."""

    N, TEXT_DIM, MAX_LEN = 300, 32, 16
    QUERIES = ["red hiking boot", "cheap phone case with large screen", "warm water proof"]

    @classmethod
    def setUpClass(cls):
        if TRAIN_DIR not in sys.path:
            sys.path.insert(0, TRAIN_DIR)
        import driftrec_train.runtime  # noqa: F401
        import numpy as np
        import torch
        from driftrec_train import bundle as bundle_mod, export, interest, mlm
        from driftrec_train.events import EVENT_TYPES
        torch.set_num_threads(1)
        cls.click = EVENT_TYPES.index("click")
        cls.np, cls.torch, cls.interest, cls.mlm = np, torch, interest, mlm
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        text_dir, vocab = write_text_encoder(d, cls.TEXT_DIM)
        cls.encoder = export.load_bert(text_dir)  # the weights the server has
        cls.vocab = vocab
        config = interest.InterestConfig(item_dim=DIM, hidden_size=16, num_layers=1,
                                         max_events=MAX_EVENTS, half_life_s=86400.0)
        cls.model = interest.InterestModel(config)
        interest.random_init(cls.model, torch.Generator().manual_seed(13))
        cls.model.eval()
        rng = np.random.default_rng(31)
        cls.vectors = (0.5 * rng.standard_normal((cls.N, DIM))).astype(np.float32)
        cls.proj = rng.standard_normal((DIM, cls.TEXT_DIM)).astype(np.float32)
        cls.ids = [f"q-{r}" for r in range(cls.N)]
        common = dict(name="query-shop", interest_model=cls.model, item_ids=cls.ids,
                      item_vectors=cls.vectors, training={"run": "e2e"}, index_threads=1,
                      text_model_dir=text_dir)
        cls.path = str(bundle_mod.write_bundle(
            os.path.join(d, "bundle"), text_projection=cls.proj,
            preprocessing={"clip": CLIP, "time_unit": "seconds",
                           "text": {"max_len": cls.MAX_LEN}}, **common))
        # The same bundle without the projection: its encoder alone maps nothing to items.
        cls.no_proj = str(bundle_mod.write_bundle(
            os.path.join(d, "no-proj"), preprocessing={"clip": CLIP, "time_unit": "seconds"},
            **common))
        cls.srv = Server(d + "/history", "--model", cls.path)
        cls.srv_w1 = Server(d + "/history-w1", "--model", cls.path, "--query-weight", "1")
        events = [event(user="qt", item=f"q-{r}", ts=T0 + 600 * j, event_id=f"qt-{j}")
                  for j, r in enumerate((3, 40, 41, 170, 222))]
        for srv in (cls.srv, cls.srv_w1):
            srv.ingest(events)
        cls.history = events

    @classmethod
    def tearDownClass(cls):
        for srv in (cls.srv, cls.srv_w1):
            assert srv.stop() == 0, srv.stderr()
        cls.dir.cleanup()

    def recommend(self, srv, user, **kw):
        return srv.call("/driftrec.v1.Recommender/Recommend",
                        pb.RecommendRequest(user_id=user, **kw), pb.RecommendResponse, timeout=10)

    def user_vector(self, events):
        np, I = self.np, self.interest
        row = {i: r for r, i in enumerate(self.ids)}
        ue = I.UserEvents(
            item_vecs=np.stack([self.vectors[row[e.item_id]] for e in events])
            if events else np.zeros((0, DIM), np.float32),
            text_vecs=None, event_types=[self.click] * len(events),
            ts=[e.ts for e in events], dwell_s=[None] * len(events),
            amount=[None] * len(events), rating=[None] * len(events))
        with self.torch.no_grad():
            return self.model.forward_user(ue).double().numpy()

    def query_vector(self, text):
        """W_text . (t / |t|), t the encoder's mean-pooled output as training computes it."""
        t = self.mlm.encode_texts(self.encoder, [text], self.vocab, True, self.MAX_LEN)[0]
        t = t.astype(self.np.float64)
        return self.proj.astype(self.np.float64) @ (t / max(self.np.linalg.norm(t), 1e-6))

    def blend(self, u, q, w):
        nu, nq = self.np.linalg.norm(u), self.np.linalg.norm(q)
        return q if nu == 0 else (1 - w) * u + w * nu * q / nq

    def top(self, v, k, excluded=()):
        s = self.vectors.astype(self.np.float64) @ v
        order = sorted((r for r in range(self.N) if r not in excluded), key=lambda r: (-s[r], r))
        return [self.ids[r] for r in order[:k]], s

    def test_query_blends_with_the_user_vector(self):
        u = self.user_vector(self.history)
        seen = {int(e.item_id[2:]) for e in self.history}
        plain = [i.item_id for i in self.recommend(self.srv, "qt", k=10).items]
        for text in self.QUERIES:
            with self.subTest(text=text):
                r = self.recommend(self.srv, "qt", k=10, query_text=text)
                got = [i.item_id for i in r.items]
                want, scores = self.top(self.blend(u, self.query_vector(text), 0.5), 10, seen)
                overlap = len(set(got) & set(want))
                self.assertGreaterEqual(overlap, 8, (got, want))
                scale = self.np.abs(scores).max()
                for it in r.items:  # the blended vector's exact dot products, int8 apart
                    self.assertLess(abs(it.score - scores[int(it.item_id[2:])]), 0.03 * scale)
                self.assertNotEqual(got, plain, "the query moved nothing")
        # No word pieces (only spaces): training gives such text a zero vector, so no change.
        r = self.recommend(self.srv, "qt", k=10, query_text="   ")
        self.assertEqual([i.item_id for i in r.items], plain)

    def test_weight_one_ranks_by_the_query_alone(self):
        text = self.QUERIES[0]
        q = self.query_vector(text)
        want, _ = self.top(q, 10)
        lists = []
        for user in ("qt", "nobody-yet"):  # a history and the empty-history vector
            r = self.recommend(self.srv_w1, user, k=10, query_text=text,
                               exclude=pb.EXCLUDE_NONE)
            lists.append([i.item_id for i in r.items])
        self.assertEqual(lists[0], lists[1], "the user still counts at w = 1")
        self.assertGreaterEqual(len(set(lists[0]) & set(want)), 8, (lists[0], want))

    def test_bundles_without_a_projection_or_with_a_bad_one(self):
        with tempfile.TemporaryDirectory() as d:
            srv = Server(d + "/history", "--model", self.no_proj, "--warmup", "0")
            try:
                with self.assertRaises(grpc.RpcError) as cm:
                    self.recommend(srv, "qt", query_text="red boot")
                self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                self.assertIn("has no text projection", cm.exception.details())
                self.assertEqual(len(self.recommend(srv, "qt", k=3).items), 3)
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())
            broken = os.path.join(d, "broken")
            shutil.copytree(self.path, broken)
            with open(os.path.join(broken, "manifest.json")) as f:
                m = json.load(f)
            m.pop("text_encoder")
            with open(os.path.join(broken, "manifest.json"), "w") as f:
                json.dump(m, f)
            r = subprocess.run([SERVER_BIN, "--history", d + "/history", "--listen",
                                f"127.0.0.1:{free_port()}", "--metrics", "off", "--model", broken],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("text_projection without a text_encoder", r.stderr)
            r = subprocess.run([SERVER_BIN, "--query-weight", "1.5"], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("query-weight 1.5: expected a number in [0, 1]", r.stderr)


def ingest_until_stopped(srv, n_clients=3):
    """Clients ingesting batches of 5 events (each with an event_id) until their call fails;
    returns (threads, stop event, the acknowledged event ids)."""
    acked, stop = [], threading.Event()

    def client(worker):
        n = 0
        while not stop.is_set():
            batch = [event(user=f"k{worker}", item=f"i{n}-{j}", ts=1_700_000_000 + n,
                           event_id=f"w{worker}-{n}-{j}") for j in range(5)]
            try:
                srv.ingest(batch, timeout=2)
            except grpc.RpcError:
                return  # the server (or its store) died under us: not acknowledged
            acked.extend(e.event_id for e in batch)
            n += 1

    threads = [threading.Thread(target=client, args=(w,)) for w in range(n_clients)]
    for t in threads:
        t.start()
    return threads, stop, acked


class KillDuringIngest(unittest.TestCase):
    def history_target(self, d):
        return d + "/history"

    def test_every_acknowledged_event_survives_kill_9(self):
        with tempfile.TemporaryDirectory() as d:
            hist = self.history_target(d)
            srv = Server(hist)
            threads, stop, acked = ingest_until_stopped(srv)
            time.sleep(1.5)
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(timeout=10)
            stop.set()
            for t in threads:
                t.join(timeout=10)
            srv.stop()  # closes the channel; fails on a sanitizer report before the kill
            self.assertGreater(len(acked), 50, "too few events were acknowledged to mean much")
            # Restart on the same store: everything acknowledged is there, once.
            srv2 = Server(hist)
            try:
                self.assertEqual(srv2.health(""), health_pb2.HealthCheckResponse.SERVING)
            finally:
                self.assertEqual(srv2.stop(), 0, srv2.stderr())
            stored = [r.get("event_id") for r in history(hist, "log")]
            self.assertEqual(len(stored), len(set(stored)))
            missing = set(acked) - set(stored)
            self.assertEqual(missing, set(), f"{len(missing)} acknowledged events lost")
            print(f"\nkill -9 of driftrec-server ({type(self).__name__}): {len(acked)} events "
                  f"acknowledged, {len(stored)} stored", file=sys.stderr)


def metric_value(text, name, labels):
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


class HotReload(unittest.TestCase):
    """A model registry (--model-root ROOT --model-name NAME: ROOT/NAME/VERSION/ bundles):
    new versions swapped in under load without a failed call, SIGHUP and polling as
    triggers, and a corrupt version refused while the served one stays."""

    NAME = "e2e-shop"

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.bundle = Bundle(cls.dir.name)
        cls.model_dir = os.path.join(cls.dir.name, "registry", cls.NAME)
        os.makedirs(cls.model_dir)
        cls.add_version("1")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    @classmethod
    def add_version(cls, version, corrupt=False):
        """A copy of the bundle as ROOT/NAME/version (files hard-linked, the manifest its own,
        naming the version), copied in under a dot name and renamed, as operators should."""
        tmp = os.path.join(cls.model_dir, ".tmp-" + version)
        shutil.copytree(cls.bundle.path, tmp, copy_function=os.link)
        manifest = dict(cls.bundle.manifest, version=version)
        os.unlink(os.path.join(tmp, "manifest.json"))
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        if corrupt:  # a vectors file whose bytes no longer match the manifest's sha256
            path = os.path.join(tmp, "items", "vectors.f32")
            with open(path, "rb") as f:
                data = bytearray(f.read())
            os.unlink(path)
            data[100] ^= 0xFF
            with open(path, "wb") as f:
                f.write(data)
        os.rename(tmp, os.path.join(cls.model_dir, version))

    def start(self, history_dir, *extra):
        srv = Server(history_dir, "--model-root", os.path.dirname(self.model_dir),
                     "--model-name", self.NAME, *extra)
        deadline = time.monotonic() + 30
        while (srv.health("driftrec.v1.Recommender") != health_pb2.HealthCheckResponse.SERVING
               and time.monotonic() < deadline):
            time.sleep(0.01)
        return srv

    def served_version(self, srv):
        r = srv.call("/driftrec.v1.Recommender/GetModel", pb.GetModelRequest(),
                     pb.GetModelResponse)
        return r.models[0].version

    def loads(self, srv, result):
        return metric_value(srv.metrics(), "driftrec_model_loads_total", f'{{result="{result}"}}')

    def wait_loads(self, srv, result, n, timeout=30):
        deadline = time.monotonic() + timeout
        while self.loads(srv, result) < n:
            self.assertLess(time.monotonic(), deadline, srv.stderr()[-3000:])
            time.sleep(0.005)

    def test_50_reloads_under_load_fail_no_call(self):
        with tempfile.TemporaryDirectory() as d:
            srv = self.start(d + "/history", "--model-poll-ms", "0", "--workers", "2")
            calls, failures, stop = [0], [], threading.Event()

            def client(worker):
                # Recommend, Rank and Ingest in turn, each with a deadline, every failure kept.
                rng = self.bundle.np.random.default_rng(worker)
                n = 0
                while not stop.is_set():
                    user = f"hot-{worker}-{n % 7}"
                    try:
                        if n % 3 == 0:
                            srv.ingest([event(user=user, item=self.bundle.ids[int(rng.integers(
                                0, N_ITEMS))], ts=T0 + n, event_id=f"hot-{worker}-{n}")])
                        elif n % 3 == 1:
                            r = srv.call("/driftrec.v1.Recommender/Recommend",
                                         pb.RecommendRequest(user_id=user, k=5),
                                         pb.RecommendResponse)
                            if len(r.items) != 5:
                                failures.append(f"{len(r.items)} items")
                        else:
                            srv.call("/driftrec.v1.Recommender/Rank",
                                     pb.RankRequest(user_id=user,
                                                    candidate_item_ids=self.bundle.ids[:20]),
                                     pb.RankResponse)
                    except grpc.RpcError as e:
                        failures.append(f"{e.code()}: {e.details()}")
                    n += 1
                    calls[0] += 1

            threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
            try:
                for t in threads:
                    t.start()
                time.sleep(0.5)
                ok0 = self.loads(srv, "ok")
                started = time.monotonic()
                for i in range(50):
                    v = str(100 + i)
                    self.add_version(v)
                    srv.proc.send_signal(signal.SIGHUP)
                    self.wait_loads(srv, "ok", ok0 + i + 1)
                    self.assertEqual(self.served_version(srv), v)
                elapsed = time.monotonic() - started
                time.sleep(0.3)
                stop.set()
                for t in threads:
                    t.join(timeout=30)
                self.assertLessEqual(elapsed, 60.0, "50 reloads took too long")
                self.assertGreater(calls[0], 200, "too few calls to mean much")
                self.assertEqual(failures, [], "calls failed while models were swapped")
                self.assertEqual(self.loads(srv, "failed"), 0)
                # The state cache went with each old model: a user's answer equals a replay.
                user = "hot-check"
                events = random_events(self.bundle.np.random.default_rng(3), user, 8,
                                       items=self.bundle.ids[:8])
                srv.ingest(events)
                r = srv.call("/driftrec.v1.Recommender/Rank",
                             pb.RankRequest(user_id=user, candidate_item_ids=self.bundle.ids[:50]),
                             pb.RankResponse)
                want = self.bundle.exact_scores(self.bundle.user_vector(store_order(events)))
                self.assertEqual(len(r.items), 50)
                for it in r.items:
                    w = want[self.bundle.row[it.item_id]]
                    self.assertAlmostEqual(it.score, w, delta=0.02 * (1 + abs(w)))
            finally:
                stop.set()
                self.assertEqual(srv.stop(), 0, srv.stderr()[-3000:])
            self.assertEqual(srv.stderr().count('"msg":"model replaced"'), 50)
            print(f"\n50 reloads under load in {elapsed:.1f} s, {calls[0]} calls, none failed",
                  file=sys.stderr)

    def test_a_corrupt_version_is_refused_and_the_served_one_stays(self):
        with tempfile.TemporaryDirectory() as d:
            srv = self.start(d + "/history", "--model-poll-ms", "100")
            try:
                before = self.served_version(srv)
                bad = "99999"
                self.add_version(bad, corrupt=True)
                self.wait_loads(srv, "failed", 1)
                time.sleep(0.5)  # several polls: a failed version is not retried each time
                self.assertEqual(self.loads(srv, "failed"), 1)
                self.assertEqual(self.served_version(srv), before)
                self.assertEqual(srv.health("driftrec.v1.Recommender"),
                                 health_pb2.HealthCheckResponse.SERVING)
                r = srv.call("/driftrec.v1.Recommender/Recommend",
                             pb.RecommendRequest(user_id="x", k=3), pb.RecommendResponse)
                self.assertEqual(len(r.items), 3)
                log = srv.stderr()
                self.assertIn("model load failed: the served model stays", log)
                self.assertIn("vectors.f32", log[log.index("model load failed"):])
                # SIGHUP retries it (an operator's explicit ask), and it fails again.
                srv.proc.send_signal(signal.SIGHUP)
                self.wait_loads(srv, "failed", 2)
                # The fixed version, under the next number, is picked up by the poll.
                shutil.rmtree(os.path.join(self.model_dir, bad))
                self.add_version("100000")
                deadline = time.monotonic() + 20
                while self.served_version(srv) != "100000":
                    self.assertLess(time.monotonic(), deadline, srv.stderr()[-3000:])
                    time.sleep(0.02)
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr()[-3000:])

    def test_admin_reload_needs_the_admin_token_and_refuses_a_bad_version(self):
        with tempfile.TemporaryDirectory() as d:
            token_file = os.path.join(d, "admin-token")
            with open(token_file, "w") as f:
                f.write("admin-" + "ab" * 16 + "\n")
            os.chmod(token_file, 0o600)
            srv = self.start(d + "/history", "--model-poll-ms", "0", "--admin-token-file",
                             token_file)

            def reload(token=None):
                fn = srv.channel.unary_unary(
                    "/driftrec.v1.Admin/Reload", request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=pb.ReloadResponse.FromString)
                md = [("authorization", f"Bearer {token}")] if token else []
                return fn(pb.ReloadRequest(), metadata=md, timeout=60)
            try:
                before = self.served_version(srv)
                new = str(int(max((v for v in os.listdir(self.model_dir) if v.isdigit()),
                                  key=int)) + 1)
                self.add_version(new)
                for token in (None, "wrong-token-" + "x" * 20):
                    with self.assertRaises(grpc.RpcError) as cm:
                        reload(token)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
                self.assertEqual(self.served_version(srv), before)  # nothing was loaded
                r = reload("admin-" + "ab" * 16)
                self.assertEqual((r.model, r.model_version, r.previous_version),
                                 (self.NAME, new, before))
                self.assertEqual(r.model_dir, os.path.join(self.model_dir, new))
                self.assertGreater(r.load_ms, 0)
                self.assertEqual(self.served_version(srv), new)
                # A corrupt newer version: FAILED_PRECONDITION naming the file; the served stays.
                bad = str(int(new) + 1)
                self.add_version(bad, corrupt=True)
                with self.assertRaises(grpc.RpcError) as cm:
                    reload("admin-" + "ab" * 16)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                self.assertIn("the served model stays", cm.exception.details())
                self.assertIn("vectors.f32", cm.exception.details())
                self.assertEqual(self.served_version(srv), new)
                shutil.rmtree(os.path.join(self.model_dir, bad))
                # driftrec-cli with the admin token reloads too.
                r = subprocess.run([CLI_BIN, "--addr", f"127.0.0.1:{srv.port}", "--token-file",
                                    token_file, "admin-reload"], capture_output=True, text=True,
                                   timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                got = json.loads(r.stdout)
                self.assertEqual((got["model_version"], got["previous_version"]), (new, new))
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr()[-3000:])

    def test_bad_model_source_options(self):
        root = os.path.dirname(self.model_dir)
        with tempfile.TemporaryDirectory() as d:
            empty = os.path.join(d, "empty")
            os.makedirs(os.path.join(empty, self.NAME, ".tmp-1"))
            cases = [
                (["--model", self.bundle.path, "--model-root", root, "--model-name", self.NAME],
                 "exclusive"),
                (["--model-root", root], "--model-root needs --model-name"),
                (["--model-name", self.NAME], "--model-name needs --model-root"),
                (["--model-root", root, "--model-name", "../x"], "without '/'"),
                (["--model-root", empty, "--model-name", self.NAME],
                 "no version directory with a manifest.json"),
                (["--model-root", root, "--model-name", "nope"], "model registry"),
                (["--model-root", os.path.dirname(self.bundle.path), "--model-name", "bundle"],
                 "is itself a bundle"),
            ]
            for args, message in cases:
                r = subprocess.run([SERVER_BIN, "--listen", f"127.0.0.1:{free_port()}",
                                    "--history", d + "/h", "--metrics", "off", *args],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 2, (args, r.stderr))
                self.assertIn(message, r.stderr, args)


class EmbedWithTextModel(unittest.TestCase):
    """Embed served from a BERT-mini model that the golden generator writes (seeded)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        gen = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tests/golden/generate.py"),
                              "--out", cls.dir.name, "--cases", "bert-mini"],
                             capture_output=True, text=True, timeout=300)
        if gen.returncode != 0:
            raise RuntimeError("golden model generation failed: " + gen.stderr[-2000:])
        cls.model = os.path.join(cls.dir.name, "bert-mini-int8")
        cls.srv = Server(cls.dir.name + "/history", "--text-model", cls.model)

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.stderr()
        cls.dir.cleanup()

    def embed(self, texts):
        return self.srv.call("/driftrec.v1.Recommender/Embed", pb.EmbedRequest(texts=texts),
                             pb.EmbedResponse, timeout=30)

    def test_overload_and_deadlines_on_a_lowered_capacity(self):
        # One worker and three queue slots: capacity 4 calls at a time.  A large Embed takes
        # long enough on BERT-mini to hold the worker while the test crowds in behind it.
        srv = Server(self.dir.name + "/history-overload", "--text-model", self.model,
                     "--workers", "1", "--queue", "3")
        try:
            def embed(texts, timeout):
                return srv.call("/driftrec.v1.Recommender/Embed", pb.EmbedRequest(texts=texts),
                                pb.EmbedResponse, timeout=timeout)
            big = ["walking boots with a waterproof lining " * 14] * 16
            started = time.monotonic()
            embed(big, 60)
            t_big = time.monotonic() - started
            while t_big < 0.15 and len(big) < 1024:  # at least 150 ms of work per call
                big = big * 2
                started = time.monotonic()
                embed(big, 60)
                t_big = time.monotonic() - started
            for _ in range(4):  # the server's mean compute time (admission's) settles on it
                embed(big, 60)

            def drops():
                return metric(srv.metrics(), "driftrec_deadline_dropped_total")

            # A deadline that expires while the call waits in the queue: the server drops it
            # before compute (counted) and the client sees DEADLINE_EXCEEDED.
            before = drops()
            hold = threading.Thread(target=embed, args=(big, 60))
            hold.start()
            time.sleep(t_big / 5)  # the worker is busy with it now
            with self.assertRaises(grpc.RpcError) as cm:
                embed(["short"], timeout=t_big / 5)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            hold.join(timeout=60)
            deadline = time.monotonic() + 10
            while drops() < before + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertEqual(drops(), before + 1, "the expired call was not dropped before compute")

            # Admission by deadline: with two long calls queued behind a third (a slot still
            # free), a call whose deadline is shorter than the expected wait is refused at once,
            # not queued.
            holders = [threading.Thread(target=embed, args=(big, 60)) for _ in range(3)]
            for t in holders:
                t.start()
            wait_until = time.monotonic() + 10  # until two of them wait in the queue
            while (metric(srv.metrics(), "driftrec_queue_depth") or 0) < 2:
                self.assertLess(time.monotonic(), wait_until, "the holders did not queue")
                time.sleep(0.002)
            started = time.monotonic()
            with self.assertRaises(grpc.RpcError) as cm:
                embed(["short"], timeout=t_big)
            refused_after = time.monotonic() - started
            self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("expected wait", cm.exception.details())
            self.assertLess(refused_after, t_big / 2)
            for t in holders:
                t.join(timeout=60)
            self.assertIn('driftrec_refused_total{reason="expected_wait"} 1\n', srv.metrics())

            # Three times the capacity at once: the excess gets RESOURCE_EXHAUSTED at once,
            # every accepted call completes within its deadline.
            results, lock = [], threading.Lock()

            def one():
                t0 = time.monotonic()
                try:
                    embed(big, timeout=30 * t_big + 10)
                    code = "OK"
                except grpc.RpcError as e:
                    code = e.code().name
                with lock:
                    results.append((code, time.monotonic() - t0))
            barrier_threads = [threading.Thread(target=one) for _ in range(12)]
            for t in barrier_threads:
                t.start()
            for t in barrier_threads:
                t.join(timeout=120)
            codes = [c for c, _ in results]
            self.assertEqual(len(codes), 12)
            self.assertEqual(set(codes) - {"OK", "RESOURCE_EXHAUSTED"}, set(), codes)
            self.assertGreaterEqual(codes.count("RESOURCE_EXHAUSTED"), 4, codes)
            self.assertGreaterEqual(codes.count("OK"), 2, codes)  # the worker + the queue
            # Refusals are immediate: well under one call's compute time.
            refused = [t for c, t in results if c == "RESOURCE_EXHAUSTED"]
            self.assertLess(max(refused), t_big, results)
            text = srv.metrics()
            n_full = codes.count("RESOURCE_EXHAUSTED")
            self.assertIn(f'driftrec_refused_total{{reason="queue_full"}} {n_full}\n', text)
            self.assertIn('driftrec_requests_total{method="Embed",code="RESOURCE_EXHAUSTED",'
                          f'variant="A"}} {n_full + 1}\n', text)  # + the expected-wait one
        finally:
            self.assertEqual(srv.stop(), 0, srv.stderr()[-3000:])

    def test_a_drain_that_cuts_calls_says_so(self):
        # Long calls in flight and a grace period shorter than they need: the server cancels
        # them, logs how many, and exits with status 3 (0 is a clean drain).
        srv = Server(self.dir.name + "/history-drain", "--text-model", self.model,
                     "--workers", "1", "--drain-grace-ms", "50")
        big = ["walking boots with a waterproof lining " * 14] * max(4, int(256 / SLOWDOWN))
        codes = []

        def one():
            try:
                srv.call("/driftrec.v1.Recommender/Embed", pb.EmbedRequest(texts=big),
                         pb.EmbedResponse, timeout=60)
                codes.append("OK")
            except grpc.RpcError as e:
                codes.append(e.code().name)
        threads = [threading.Thread(target=one) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(srv.proc.wait(timeout=60), 3, srv.stderr()[-2000:])
        for t in threads:
            t.join(timeout=60)
        srv.stop()
        log = srv.stderr()
        cut = [json.loads(x) for x in log.splitlines() if '"msg":"stopped"' in x][0]
        self.assertGreaterEqual(cut["calls_cut"], 1, log[-2000:])
        self.assertIn("grace period over", log)
        self.assertNotIn("OK", codes[:cut["calls_cut"]] if len(set(codes)) > 1 else [])
        self.assertTrue(set(codes) <= {"OK", "CANCELLED", "UNAVAILABLE"}, codes)

    def test_embed_equals_the_encoder_tool(self):
        texts = ["hiking boots for wet trails", "\u4e2d\u6587 and caf\u00e9", "", "x " * 400]
        resp = self.embed(texts)
        self.assertEqual(len(resp.vectors), len(texts))
        # driftrec-encode reads one text per line; the empty one would be a blank line.
        out = subprocess.run([ENCODE_BIN, self.model, "--max-len", "128"],
                             input="\n".join(texts[:2] + texts[3:]) + "\n", capture_output=True,
                             text=True, timeout=60, check=True).stdout.splitlines()
        want = [json.loads(line) for line in out]
        for got, exp in zip([resp.vectors[0], resp.vectors[1], resp.vectors[3]], want):
            self.assertEqual(len(got.values), len(exp))
            self.assertLess(max(abs(a - b) for a, b in zip(got.values, exp)), 1e-6)
        self.assertEqual(resp.model, "bert-mini")

    def test_get_model_and_health(self):
        r = self.srv.call("/driftrec.v1.Recommender/GetModel", pb.GetModelRequest(),
                          pb.GetModelResponse)
        self.assertEqual([(m.name, m.is_default) for m in r.models], [("bert-mini", True)])
        self.assertGreater(r.models[0].vector_dim, 0)
        # Recommend still needs the recommendation model: not ready, and says which.
        self.assertEqual(self.srv.health("driftrec.v1.Recommender"),
                         health_pb2.HealthCheckResponse.NOT_SERVING)
        with self.assertRaises(grpc.RpcError) as cm:
            self.srv.call("/driftrec.v1.Recommender/Recommend",
                          pb.RecommendRequest(user_id="u", k=3), None)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("recommendation model", cm.exception.details())

    def test_embed_limits(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.embed(["t"] * 257)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(len(self.embed(["t"] * 256).vectors), 256)


class ConfigFile(unittest.TestCase):
    def test_bad_config_files_are_refused_with_the_key_named(self):
        cases = [('{"wokers": 3}', "unknown option 'wokers'"),
                 ('{"workers": "many"}', "workers many: expected an integer"),
                 ('{"workers": 2.5}', "workers: expected an integer"),
                 ('{"variant": ["A"]}', "variant: expected a string or an integer"),
                 ('["listen"]', "not a JSON object"),
                 ('{"listen": ', "syntax error")]
        with tempfile.TemporaryDirectory() as d:
            for text, message in cases:
                with self.subTest(text):
                    path = os.path.join(d, "config.json")
                    with open(path, "w") as f:
                        f.write(text)
                    r = subprocess.run([SERVER_BIN, "--config", path], capture_output=True,
                                       text=True, timeout=30)
                    self.assertEqual(r.returncode, 2, r.stderr)
                    self.assertIn(message, r.stderr)

    def test_config_applies_and_flags_override_it(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "config.json")
            with open(path, "w") as f:
                json.dump({"variant": "C", "workers": 3, "queue": 16, "metrics": "off"}, f)
            srv = Server(d + "/history", "--config", path)  # the harness adds --variant A
            try:
                self.assertIn('"workers":3', srv.stderr())       # from the file
                self.assertIn('"variant":"A"', srv.stderr())     # the flag wins
                self.assertIsNotNone(srv.metrics_port)           # --metrics beat "off"
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(d):
    """A CA and a server certificate it signs (for localhost and 127.0.0.1), a second CA with a
    client certificate (mTLS), and an unrelated CA; files in d."""
    def ca(name):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=driftrec test {name}",
                cwd=d)

    def leaf(name, issuer, san):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey",
                f"{issuer}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-extfile", f"{name}.ext", cwd=d)

    for name in ("ca", "client-ca", "other-ca"):
        ca(name)
    leaf("server", "ca", "DNS:localhost,IP:127.0.0.1")
    leaf("client", "client-ca", None)
    leaf("stranger", "other-ca", None)  # a client certificate from a CA the server does not trust
    for f in os.listdir(d):
        if f.endswith(".key"):
            os.chmod(os.path.join(d, f), 0o600)


def read(path):
    with open(path, "rb") as f:
        return f.read()


@unittest.skipUnless(shutil.which("openssl"), "openssl is not installed: no test certificates")
class TlsAndTokens(unittest.TestCase):
    """TLS, mTLS and bearer tokens: one TLS server with a Recommender token and an admin
    token; other configurations start their own."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.d = cls.dir.name
        make_certificates(cls.d)
        cls.token = "recommender-" + os.urandom(16).hex()
        cls.admin_token = "admin-" + os.urandom(16).hex()
        cls.token_file, cls.admin_token_file = cls.path("token"), cls.path("admin-token")
        for path, token in ((cls.token_file, cls.token), (cls.admin_token_file, cls.admin_token)):
            with open(path, "w") as f:
                f.write(token + "\n")
            os.chmod(path, 0o600)
        cls.ca_creds = grpc.ssl_channel_credentials(read(cls.path("ca.pem")))
        cls.srv = Server(cls.d + "/history", "--tls-cert", cls.path("server.pem"),
                         "--tls-key", cls.path("server.key"), "--token-file", cls.token_file,
                         "--admin-token-file", cls.admin_token_file, "--log-level", "debug",
                         creds=cls.ca_creds)

    @classmethod
    def tearDownClass(cls):
        code = cls.srv.stop()
        log = cls.srv.stderr()
        cls.dir.cleanup()
        assert code == 0, log

    @classmethod
    def path(cls, name):
        return os.path.join(cls.d, name)

    def call(self, method, request, response_type=None, token=None, channel=None, md=()):
        metadata = list(md) + ([("authorization", f"Bearer {token}")] if token else [])
        fn = (channel or self.srv.channel).unary_unary(
            method, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString if response_type else None)
        return fn(request, timeout=10, metadata=metadata)

    def code_of(self, *args, **kw):
        try:
            self.call(*args, **kw)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    def cli(self, *args, host="127.0.0.1"):
        return subprocess.run([CLI_BIN, "--addr", f"{host}:{self.srv.port}", *args],
                              capture_output=True, text=True, timeout=30)

    def requests_total(self, method, code):
        found = re.search(r'driftrec_requests_total\{method="%s",code="%s",variant="A"\} (\d+)'
                          % (method, code), self.srv.metrics())
        return int(found.group(1)) if found else 0

    GET_MODEL = "/driftrec.v1.Recommender/GetModel"
    GET_STATUS = "/driftrec.v1.Admin/GetStatus"

    def test_plaintext_client_to_the_tls_port_fails(self):
        channel = self.srv.connect()
        with self.assertRaises(grpc.RpcError) as cm:
            self.call("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest(),
                      health_pb2.HealthCheckResponse, channel=channel)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        channel.close()
        r = self.cli("health")
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAVAILABLE", r.stderr)

    def test_tls_clients_with_the_right_ca(self):
        # By IP (the certificate names 127.0.0.1) and by name, and through the name override.
        for host, options in (("127.0.0.1", ()), ("localhost", ()),
                              ("127.0.0.1", (("grpc.ssl_target_name_override", "localhost"),))):
            with self.subTest(host=host, options=options):
                channel = self.srv.connect(self.ca_creds, host=host, options=options)
                r = self.call(self.GET_MODEL, pb.GetModelRequest(), pb.GetModelResponse,
                              token=self.token, channel=channel)
                self.assertEqual(list(r.models), [])  # no model on this instance
                channel.close()
        ca = ["--tls-ca", self.path("ca.pem")]
        r = self.cli(*ca, "health")
        self.assertEqual((r.returncode, json.loads(r.stdout)), (0, {"status": "SERVING"}))
        r = self.cli(*ca, "--token-file", self.token_file, "get-model")
        self.assertEqual((r.returncode, json.loads(r.stdout)), (0, {"models": []}), r.stderr)
        r = self.cli(*ca, "--tls-server-name", "localhost", "--metadata",
                     f"authorization=Bearer {self.token}", "--metadata", "x-trace=t1", "get-model")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.cli(*ca, "--tls-server-name", "not-the-server", "health")
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAVAILABLE", r.stderr)

    def test_a_wrong_ca_fails(self):
        channel = self.srv.connect(grpc.ssl_channel_credentials(read(self.path("other-ca.pem"))))
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(self.GET_MODEL, pb.GetModelRequest(), token=self.token, channel=channel)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        channel.close()
        r = self.cli("--tls-ca", self.path("other-ca.pem"), "health")
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAVAILABLE", r.stderr)

    def test_recommender_token(self):
        U, OK = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.OK
        before = self.requests_total("GetModel", "UNAUTHENTICATED")
        req = pb.GetModelRequest()
        self.assertEqual(self.code_of(self.GET_MODEL, req), U)
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(self.GET_MODEL, req)
        self.assertIn("missing credentials", cm.exception.details())
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(self.GET_MODEL, req, token=self.token + "x")
        self.assertEqual((cm.exception.code(), cm.exception.details()), (U, "invalid token"))
        self.assertEqual(self.code_of(self.GET_MODEL, req, token=self.token[:-1]), U)
        self.assertEqual(self.code_of(self.GET_MODEL, req, token=self.admin_token), U)
        self.assertEqual(self.code_of(self.GET_MODEL, req, md=[("authorization", self.token)]), U)
        self.assertEqual(self.code_of(self.GET_MODEL, req,
                                      md=[("authorization", f"Basic {self.token}")]), U)
        self.assertEqual(self.code_of(self.GET_MODEL, req, token=self.token), OK)
        self.assertEqual(self.code_of(self.GET_MODEL, req,
                                      md=[("authorization", f"bearer {self.token}")]), OK)
        self.assertEqual(self.requests_total("GetModel", "UNAUTHENTICATED") - before, 7)
        # Ingest without the token stores nothing; with it, the event is stored.
        ingest = pb.IngestRequest(events=[event(user="tok-user", item="t1", event_id="tok-1")])
        self.assertEqual(self.code_of("/driftrec.v1.Recommender/Ingest", ingest, pb.IngestResponse),
                         U)
        self.assertEqual(history(self.srv.history_dir, "user", "tok-user"), [])
        r = self.call("/driftrec.v1.Recommender/Ingest", ingest, pb.IngestResponse,
                      token=self.token)
        self.assertEqual(r.accepted, 1)
        # Unknown methods of the service are checked first too.
        self.assertEqual(self.code_of("/driftrec.v1.Recommender/Nope", req), U)
        self.assertEqual(self.code_of("/driftrec.v1.Recommender/Nope", req, token=self.token),
                         grpc.StatusCode.UNIMPLEMENTED)
        # Health needs no token (probes).
        self.assertEqual(self.srv.health(""), health_pb2.HealthCheckResponse.SERVING)
        # The tokens are in no log line, not even at debug level.
        log = self.srv.stderr()
        self.assertIn('"code":"UNAUTHENTICATED"', log)
        self.assertNotIn(self.token, log)
        self.assertNotIn(self.admin_token, log)
        r = self.cli("--tls-ca", self.path("ca.pem"), "get-model")
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAUTHENTICATED", r.stderr)

    def test_admin_needs_the_admin_token(self):
        U = grpc.StatusCode.UNAUTHENTICATED
        req = pb.GetStatusRequest()
        self.assertEqual(self.code_of(self.GET_STATUS, req), U)
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(self.GET_STATUS, req, token=self.token)  # the Recommender's token
        self.assertEqual((cm.exception.code(), cm.exception.details()), (U, "invalid admin token"))
        r = self.call(self.GET_STATUS, req, pb.GetStatusResponse, token=self.admin_token)
        self.assertGreater(r.uptime_s, 0)
        self.assertFalse(r.is_ready)          # no model
        self.assertFalse(r.HasField("model"))
        self.assertEqual(r.variant, "A")
        # Every Admin path, known or not, needs the admin token first.
        self.assertEqual(self.code_of("/driftrec.v1.Admin/Nope", req), U)
        self.assertEqual(self.code_of("/driftrec.v1.Admin/Nope", req, token=self.admin_token),
                         grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(self.code_of("/driftrec.v1.Admin/Reload", pb.ReloadRequest()), U)
        # With the token, Reload on an instance without a model source says so.
        with self.assertRaises(grpc.RpcError) as cm:
            self.call("/driftrec.v1.Admin/Reload", pb.ReloadRequest(), token=self.admin_token)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("no model source", cm.exception.details())
        ca = ["--tls-ca", self.path("ca.pem")]
        r = self.cli(*ca, "--token-file", self.admin_token_file, "admin-status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["is_ready"], False)
        r = self.cli(*ca, "--token-file", self.token_file, "admin-status")
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAUTHENTICATED: invalid admin token", r.stderr)
        self.assertGreaterEqual(self.requests_total("AdminGetStatus", "UNAUTHENTICATED"), 2)

    def test_admin_is_disabled_without_an_admin_token(self):
        with tempfile.TemporaryDirectory() as d:
            srv = Server(d + "/history")  # plaintext, no tokens
            try:
                with self.assertRaises(grpc.RpcError) as cm:
                    self.call(self.GET_STATUS, pb.GetStatusRequest(), channel=srv.channel,
                              token=self.admin_token)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
                self.assertIn("Admin service is disabled", cm.exception.details())
                # Without --token-file, Recommender calls need no token.
                self.call(self.GET_MODEL, pb.GetModelRequest(), channel=srv.channel)
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_mtls(self):
        client_creds = grpc.ssl_channel_credentials(
            read(self.path("ca.pem")), read(self.path("client.key")), read(self.path("client.pem")))
        with tempfile.TemporaryDirectory() as d:
            srv = Server(d + "/history", "--tls-cert", self.path("server.pem"), "--tls-key",
                         self.path("server.key"), "--tls-client-ca", self.path("client-ca.pem"),
                         creds=client_creds)
            try:
                self.assertIn('"transport":"mtls"', srv.stderr())
                self.assertEqual(srv.health(), health_pb2.HealthCheckResponse.SERVING)
                stranger = grpc.ssl_channel_credentials(
                    read(self.path("ca.pem")), read(self.path("stranger.key")),
                    read(self.path("stranger.pem")))
                for creds in (self.ca_creds, stranger):  # no client certificate; an untrusted one
                    channel = srv.connect(creds)
                    with self.assertRaises(grpc.RpcError) as cm:
                        self.call("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest(),
                                  channel=channel)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                    channel.close()

                def cli(*args):
                    return subprocess.run([CLI_BIN, "--addr", f"127.0.0.1:{srv.port}", "--tls-ca",
                                           self.path("ca.pem"), *args, "health"],
                                          capture_output=True, text=True, timeout=30)
                r = cli("--tls-cert", self.path("client.pem"), "--tls-key", self.path("client.key"))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(cli().returncode, 1)
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_bad_tls_and_token_files_stop_the_start(self):
        p = self.path
        with open(p("garbage.pem"), "w") as f:
            f.write("not a certificate\n")
        with open(p("short-token"), "w") as f:
            f.write("secret-short\n")
        with open(p("two-lines"), "w") as f:
            f.write("first-line-of-the-token\nsecond-line-of-it\n")
        cert, key = ["--tls-cert", p("server.pem")], ["--tls-key", p("server.key")]
        cases = [
            (["--tls-cert", p("missing.pem"), *key], p("missing.pem")),
            (["--tls-cert", p("garbage.pem"), *key], p("garbage.pem") + " (--tls-cert): no PEM"),
            ([*cert, "--tls-key", p("garbage.pem")], p("garbage.pem") + " (--tls-key): no "),
            ([*cert, "--tls-key", p("client.key")], p("client.key") + " (--tls-key) does not match"),
            ([*cert, "--tls-key", p("server.pem")], p("server.pem") + " (--tls-key): no"),
            (cert, "--tls-cert and --tls-key go together"),
            (key, "--tls-cert and --tls-key go together"),
            (["--tls-client-ca", p("client-ca.pem")], "--tls-client-ca needs TLS"),
            ([*cert, *key, "--tls-client-ca", p("garbage.pem")],
             p("garbage.pem") + " (--tls-client-ca): no PEM"),
            (["--token-file", p("missing-token")], p("missing-token")),
            (["--token-file", p("short-token")], p("short-token") + " (--token-file): shorter than 16"),
            (["--token-file", p("two-lines")], p("two-lines") + ": byte 23 is not"),
            (["--admin-token-file", p("short-token")], p("short-token")),
            (["--token-file", self.token_file, "--admin-token-file", self.token_file],
             "the admin token must differ"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                r = subprocess.run([SERVER_BIN, "--listen", "127.0.0.1:0", "--history",
                                    p("bad-history"), "--metrics", "off", *args],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("TLS or token configuration", r.stderr)
                self.assertIn(message, r.stderr)
                self.assertNotIn("secret-short", r.stderr)  # a token is never echoed
                self.assertNotIn("first-line-of", r.stderr)
        # The same options from a config file and from the environment.
        with open(p("tls-config.json"), "w") as f:
            json.dump({"tls-cert": p("server.pem"), "tls-key": p("garbage.pem")}, f)
        for args, extra_env, message in (
                (["--config", p("tls-config.json")], {}, p("garbage.pem") + " (--tls-key)"),
                ([], {"DR_TOKEN_FILE": p("short-token")}, p("short-token") + " (--token-file)"),
                ([], {"DR_ADMIN_TOKEN_FILE": p("short-token")},
                 p("short-token") + " (--admin-token-file)"),
                ([], {"DR_TLS_CERT": p("server.pem")}, "--tls-key is missing")):
            with self.subTest(args=args, env=extra_env):
                env = dict(os.environ, **extra_env)
                r = subprocess.run([SERVER_BIN, "--listen", "127.0.0.1:0", "--history",
                                    p("bad-history"), "--metrics", "off", *args],
                                   capture_output=True, text=True, timeout=30, env=env)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)

    def test_load_client_over_tls_with_a_token_counts_match_the_server_metrics(self):
        def load(*args):
            out = self.path(f"load-{len(args)}.json")
            r = subprocess.run([LOAD_BIN, "--addr", f"127.0.0.1:{self.srv.port}", "--tls-ca",
                                self.path("ca.pem"), "--duration", "2", "--json", out, *args], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f:
                return json.load(f)

        names = [("Ingest", "ingest"), ("Health", "health")]
        before = {(m, c): self.requests_total(m, c) for m, _ in names
                  for c in ("OK", "UNAUTHENTICATED")}
        # No warm-up: every call the server saw is in the client's counts.
        ok = load("--mix", "ingest=3,health=1", "--token-file", self.token_file,
                  "--warmup", "0", "--metadata", "x-load-run=tls")
        refused = load("--method", "ingest", "--mode", "open", "--rate", "100", "--warmup", "0")
        self.assertGreater(ok["calls"], 50)
        self.assertEqual(ok["status"], {"OK": ok["calls"]})
        self.assertEqual(refused["status"], {"UNAUTHENTICATED": refused["calls"]})
        self.assertGreater(refused["calls"], 100)
        grown = {k: self.requests_total(*k) - v for k, v in before.items()}
        self.assertEqual(grown[("Ingest", "OK")], ok["methods"]["ingest"]["status"]["OK"])
        self.assertEqual(grown[("Health", "OK")], ok["methods"]["health"]["status"]["OK"])
        self.assertEqual(grown[("Ingest", "UNAUTHENTICATED")], refused["calls"])
        self.assertEqual(grown[("Health", "UNAUTHENTICATED")], 0)
        self.assertEqual(sum(ok["latency_histogram"]["count"]), ok["calls"])
        self.assertEqual(sum(ok["timeline"]["calls"]), ok["calls"])
        self.assertEqual(sum(refused["timeline"]["errors"]), refused["calls"])
        self.assertEqual(ok["connections"], 1)
        if shutil.which("ss"):
            self.assert_load_opens_connections(3)
        # Bad transport options are refused before any call.
        for args in (["--tls-cert", self.path("client.pem")], ["--metadata", "novalue"],
                     ["--metadata", "Upper=1"], ["--tls-ca", self.path("missing.pem")]):
            r = subprocess.run([LOAD_BIN, "--addr", f"127.0.0.1:{self.srv.port}", *args,
                                "--duration", "1"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, (args, r.stderr))

    def assert_load_opens_connections(self, n):
        """driftrec-load --connections n holds n more connections to the server while it runs."""
        def established():
            out = subprocess.run(["ss", "-Htn", "state", "established",
                                  f"( dport = :{self.srv.port} )"], capture_output=True,
                                 text=True, timeout=10).stdout
            return len(out.splitlines())
        before = established()
        proc = subprocess.Popen([LOAD_BIN, "--addr", f"127.0.0.1:{self.srv.port}", "--tls-ca",
                                 self.path("ca.pem"), "--method", "health", "--connections",
                                 str(n), "--warmup", "0", "--duration", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        most = 0
        while proc.poll() is None:
            most = max(most, established() - before)
            time.sleep(0.1)
        self.assertEqual(proc.returncode, 0)
        self.assertEqual(most, n)

    @unittest.skipIf(subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"],
                                    capture_output=True).returncode != 0,
                     "python3-matplotlib is not installed")
    def test_load_plot_makes_a_png(self):
        png = self.path("load.png")
        r = subprocess.run([LOAD_BIN, "--addr", f"127.0.0.1:{self.srv.port}", "--tls-ca",
                            self.path("ca.pem"), "--token-file", self.token_file, "--mix",
                            "ingest=1,health=1", "--warmup", "0", "--duration", "1.5",
                            "--json", self.path("plotted.json"), "--plot", png],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        data = read(png)
        self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(data), 10_000)
        script = os.path.join(REPO, "bench/load/plot_load.py")
        both = self.path("both.png")
        r = subprocess.run(["/usr/bin/python3", script, self.path("plotted.json"),
                            self.path("plotted.json"), "--label", "a", "--label", "b", "-o", both],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(read(both)[:8], b"\x89PNG\r\n\x1a\n")
        with open(self.path("not-a-result.json"), "w") as f:
            f.write('{"calls": 3}')
        for bad in ("not-a-result.json", "ca.pem", "missing.json"):
            r = subprocess.run(["/usr/bin/python3", script, self.path(bad), "-o",
                                self.path("bad.png")], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn("plot_load:", r.stderr)
        self.assertFalse(os.path.exists(self.path("bad.png")))


class ProxyHeaders(unittest.TestCase):
    """What an A/B proxy in front sends (docs/ab-testing.md): x-user-id, which must name the
    message's user; x-ab-variant, the arm it chose, which a misrouted call contradicts."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.srv = Server(cls.dir.name + "/history")

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.stderr()
        cls.dir.cleanup()

    def call(self, srv, method, request, response_type, metadata=()):
        fn = srv.channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=response_type.FromString)
        return fn(request, metadata=list(metadata), timeout=5)

    def ingest(self, events, metadata=(), srv=None):
        return self.call(srv or self.srv, "/driftrec.v1.Recommender/Ingest",
                         pb.IngestRequest(events=events), pb.IngestResponse, metadata)

    def assert_refused(self, fn, message):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(cm.exception.details(), message)

    def test_user_header_must_name_every_event_user(self):
        ok = self.ingest([event(user="hu1", item="a", event_id="hu1-1"),
                          event(user="hu1", item="b", event_id="hu1-2")],
                         [("x-user-id", "hu1")])
        self.assertEqual(ok.accepted, 2)
        self.assert_refused(
            lambda: self.ingest([event(user="hu1", item="c", event_id="hu1-3"),
                                 event(user="hu2", item="d", event_id="hu1-4")],
                                [("x-user-id", "hu1")]),
            "events[1].user_id does not match the x-user-id header")
        self.assert_refused(lambda: self.ingest([event(user="hu10", item="e")],
                                                [("x-user-id", "hu1")]),
                            "events[0].user_id does not match the x-user-id header")
        # Nothing of a refused batch is stored; without the header anything goes.
        self.assertEqual([r["item_id"] for r in history(self.srv.history_dir, "user", "hu1")],
                         ["a", "b"])
        self.assertEqual(self.ingest([event(user="hu2", item="f")]).accepted, 1)
        # An empty header is no header (what a proxy sends for an anonymous caller).
        self.assertEqual(self.ingest([event(user="hu3", item="g")], [("x-user-id", "")]).accepted,
                         1)

    def test_user_header_on_recommend_and_rank(self):
        # Checked before the model is needed: this instance has none, so a matching header
        # gets FAILED_PRECONDITION and a mismatched one INVALID_ARGUMENT.
        for method, req, resp in [
                ("Recommend", pb.RecommendRequest(user_id="hu1", k=3), pb.RecommendResponse),
                ("Rank", pb.RankRequest(user_id="hu1", candidate_item_ids=["a"]),
                 pb.RankResponse)]:
            with self.subTest(method):
                path = "/driftrec.v1.Recommender/" + method
                self.assert_refused(lambda: self.call(self.srv, path, req, resp,
                                                      [("x-user-id", "hu2")]),
                                    "the x-user-id header does not match user_id")
                with self.assertRaises(grpc.RpcError) as cm:
                    self.call(self.srv, path, req, resp, [("x-user-id", "hu1")])
                self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)

    def test_feedback_without_a_variant_is_labelled_with_this_arm(self):
        self.ingest([event(user="hv1", item="x", request_id="r-1", position=0, event_id="hv-1"),
                     event(user="hv1", item="y", variant="B", event_id="hv-2")])
        rows = {r["item_id"]: r for r in history(self.srv.history_dir, "log", "event")
                if r["user_id"] == "hv1"}
        self.assertEqual(rows["x"]["variant"], "A")  # the server's --variant
        self.assertEqual(rows["y"]["variant"], "B")  # as given

    def test_misrouted_calls_are_served_and_counted(self):
        def misrouted():
            return metric(self.srv.metrics(), 'driftrec_ab_misrouted_total{variant="A"}')

        before = misrouted()
        self.assertEqual(self.ingest([event(user="hm1", item="a")],
                                     [("x-ab-variant", "A")]).accepted, 1)
        self.assertEqual(misrouted(), before)
        r = self.ingest([event(user="hm1", item="b")], [("x-ab-variant", "B")])
        self.assertEqual(r.accepted, 1)  # served all the same
        self.assertEqual(misrouted(), before + 1)
        self.assertIn('"msg":"call routed to the wrong A/B arm","x_ab_variant":"B","variant":"A"',
                      self.srv.stderr())

    def test_required_user_header(self):
        with tempfile.TemporaryDirectory() as d:
            srv = Server(d + "/history", "--require-user-header", "on")
            try:
                self.assert_refused(
                    lambda: self.ingest([event(user="hr1")], srv=srv),
                    "the x-user-id header is required on this instance (--require-user-header)")
                self.assertEqual(self.ingest([event(user="hr1")], [("x-user-id", "hr1")],
                                             srv=srv).accepted, 1)
                self.assertEqual(srv.health(), health_pb2.HealthCheckResponse.SERVING)  # exempt
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())
            r = subprocess.run([SERVER_BIN, "--require-user-header", "yes"], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 2)
            self.assertIn("--require-user-header yes: expected on or off", r.stderr)


class Shutdown(unittest.TestCase):
    def test_sigterm_with_calls_in_flight_drains_cleanly(self):
        with tempfile.TemporaryDirectory() as d:
            srv = Server(d + "/history", "--drain-grace-ms", "2000")
            errors = []

            def client():
                for n in range(200):
                    try:
                        srv.ingest([event(item=f"s{n}", event_id=f"s-{threading.get_ident()}-{n}")])
                    except grpc.RpcError as e:
                        if e.code() not in (grpc.StatusCode.UNAVAILABLE,
                                            grpc.StatusCode.CANCELLED):
                            errors.append(e.code())
                        return

            threads = [threading.Thread(target=client) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.3)
            srv.proc.send_signal(signal.SIGTERM)  # with the clients' calls in flight
            self.assertEqual(srv.proc.wait(timeout=30), 0, srv.stderr())
            for t in threads:
                t.join(timeout=10)
            srv.stop()
            self.assertEqual(errors, [])
            self.assertIn('"stopped"', srv.stderr())


# ---- the same store tests over Redis ----------------------------------------------------------


class RedisClass:
    """A mixin: one redis-server for the class (skipped without one), stopped at the end."""

    backend = "redis"

    @classmethod
    def setUpClass(cls):
        if not REDIS_BIN:
            raise unittest.SkipTest(NO_REDIS)
        cls.redis = RedisServer()
        cls.key_dir = tempfile.TemporaryDirectory()
        try:
            super().setUpClass()
        except BaseException:
            cls.redis.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.redis.stop()
            cls.key_dir.cleanup()


class IngestAndHealthRedis(RedisClass, IngestAndHealth):
    """IngestAndHealth over Redis: each test has its own key prefix."""

    def history_target(self):
        return redis_target(self.redis, self.key_dir.name)

    test_lmdb_environment_is_durable = None  # LMDB's flags; Redis's settings below

    def test_redis_is_durable(self):
        flags = history(self.srv.history_dir, "flags")[0]
        self.assertEqual(flags, {"backend": "redis", "appendonly": "yes",
                                 "appendfsync": "always", "durable": 1})

    def test_redis_key_layout(self):
        self.srv.ingest([event(user="caf\u00e9", item="i1", event_id="k-1")])
        prefix = self.srv.history_dir.prefix
        for key, kind in ((prefix + "seq", "string"), (prefix + "ids", "hash"),
                          (prefix + "log", "stream"), (prefix + "u:caf\u00e9", "zset")):
            self.assertEqual(self.redis.command("TYPE", key), "+" + kind, key)
        self.assertEqual(self.redis.command("GET", prefix + "seq"), "$1")


    def test_two_replicas_share_one_history(self):
        # A second server on the same Redis and prefix: what one stores the other reads, an
        # event_id is applied once whichever replica gets it, and concurrent Ingest through
        # both leaves one log with a gap-free seq.
        other = Server(self.srv.history_dir)
        try:
            self.assertEqual(self.srv.ingest([event(item="a", event_id="x-1")]).accepted, 1)
            r = other.ingest([event(item="a", event_id="x-1"), event(item="b", ts=1_700_000_001)])
            self.assertEqual((r.accepted, r.duplicates), (1, 1))
            errors = []

            def client(srv, name):
                for n in range(60):
                    try:
                        srv.ingest([event(user=name, item=f"i{n}", ts=1_700_000_000 + n,
                                          event_id=f"{name}-{n}")])
                        srv.ingest([event(user=name, item=f"i{n}", ts=1_700_000_000 + n,
                                          event_id=f"{name}-{n}")])  # a retry: a duplicate
                    except grpc.RpcError as e:
                        errors.append(e)

            threads = [threading.Thread(target=client, args=(srv, f"{tag}{c}"))
                       for tag, srv in (("a", self.srv), ("b", other)) for c in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            self.assertEqual(errors, [])
        finally:
            self.assertEqual(other.stop(), 0, other.stderr())
        log = history(self.srv.history_dir, "log")
        self.assertEqual([x["seq"] for x in log], list(range(1, 2 + 4 * 60 + 1)))
        for user in ("a0", "a1", "b0", "b1"):
            rows = history(self.srv.history_dir, "user", user)
            self.assertEqual([x["item_id"] for x in rows], [f"i{n}" for n in range(60)], user)


class KillDuringIngestRedis(RedisClass, KillDuringIngest):
    """kill -9 of driftrec-server over Redis, and kill -9 of redis-server itself."""

    def history_target(self, d):
        return redis_target(self.redis, d)

    def test_every_acknowledged_event_survives_kill_9_of_redis(self):
        # redis-server dies under heavy ingest: the calls in flight fail (UNAVAILABLE), and
        # once it is back from its AOF, every acknowledged event is there, once; the server
        # reconnects by itself.
        with tempfile.TemporaryDirectory() as d:
            hist = self.history_target(d)
            srv = Server(hist)
            try:
                threads, stop, acked = ingest_until_stopped(srv)
                time.sleep(1.5)
                self.redis.kill(signal.SIGKILL)
                for t in threads:
                    t.join(timeout=10)
                stop.set()
                self.assertGreater(len(acked), 50, "too few events were acknowledged")
                with self.assertRaises(grpc.RpcError) as cm:
                    srv.ingest([event(item="down", event_id="down-1")])
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertIn("history store is unavailable", cm.exception.details())
                self.redis.restart()
                self.assertEqual(srv.ingest([event(item="back", event_id="back-1")]).accepted, 1)
                text = srv.metrics()
                self.assertRegex(text, r'driftrec_requests_total\{method="Ingest",'
                                       r'code="UNAVAILABLE",variant="A"\} [1-9]')
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())
            stored = [r.get("event_id") for r in history(hist, "log")]
            self.assertEqual(len(stored), len(set(stored)))
            missing = set(acked) - set(stored)
            self.assertEqual(missing, set(), f"{len(missing)} acknowledged events lost")
            self.assertIn("back-1", stored)
            print(f"\nkill -9 of redis-server: {len(acked)} events acknowledged, {len(stored)} "
                  "stored after the restart from its AOF", file=sys.stderr)


class RedisSettings(unittest.TestCase):
    """What the server does with a Redis history it must not trust, or cannot reach."""

    @classmethod
    def setUpClass(cls):
        if not REDIS_BIN:
            raise unittest.SkipTest(NO_REDIS)

    def start(self, *args):
        return subprocess.run([SERVER_BIN, "--listen", f"127.0.0.1:{free_port()}",
                               "--metrics", "off", *args],
                              capture_output=True, text=True, timeout=60)

    def test_volatile_redis_is_refused_unless_allowed(self):
        redis = RedisServer(durable=False)  # appendonly no: Debian's default
        try:
            with tempfile.TemporaryDirectory() as d:
                r = self.start("--history", redis.url, "--log-key-file", d + "/key")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("would lose acknowledged events (appendonly no", r.stderr)
                self.assertIn("--history-allow-volatile", r.stderr)
                srv = Server(redis_target(redis, d), "--history-allow-volatile", "yes")
                try:
                    self.assertIn('"level":"warn","msg":"the history store would lose '
                                  'acknowledged events in a crash"', srv.stderr())
                    self.assertIn('driftrec_history_durable{backend="redis"} 0', srv.metrics())
                    self.assertEqual(srv.ingest([event()]).accepted, 1)
                finally:
                    self.assertEqual(srv.stop(), 0, srv.stderr())
                r = self.start("--history", redis.url, "--log-key-file", d + "/key",
                               "--history-allow-volatile", "maybe")
                self.assertEqual(r.returncode, 2)
                self.assertIn("expected yes or no", r.stderr)
        finally:
            redis.stop()

    def test_writes_wait_for_replicas(self):
        # --history-replicas 1: an Ingest is acknowledged once a replica has it too; with the
        # replica gone it fails with UNAVAILABLE (stored on the primary: the retry is a
        # duplicate, not a second copy).
        primary = RedisServer()
        replica = RedisServer(replica_of=primary)
        try:
            deadline = time.monotonic() + 20
            while "master_link_status:up" not in replica.info("replication"):
                self.assertLess(time.monotonic(), deadline, "the replica did not sync")
                time.sleep(0.05)
            with tempfile.TemporaryDirectory() as d:
                srv = Server(redis_target(primary, d), "--history-replicas", "1",
                             "--history-timeout-ms", "1000")
                try:
                    self.assertEqual(srv.ingest([event(item="a", event_id="r-1")]).accepted, 1)
                    replica.kill()
                    start = time.monotonic()
                    with self.assertRaises(grpc.RpcError) as cm:
                        srv.ingest([event(item="b", event_id="r-2")])
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                    self.assertGreater(time.monotonic() - start, 0.4)  # WAIT: half the timeout
                    self.assertIn("0 of 1 replicas", srv.stderr())
                    rows = history(srv.history_dir, "user", "u1")
                    self.assertEqual([r["item_id"] for r in rows], ["a", "b"])
                finally:
                    self.assertEqual(srv.stop(), 0, srv.stderr())
        finally:
            replica.stop()
            primary.stop()

    def test_bad_redis_targets_are_refused_with_a_message(self):
        with tempfile.TemporaryDirectory() as d:
            key = ("--log-key-file", d + "/key")
            for url, message in (
                    (f"redis://127.0.0.1:{free_port()}", "cannot connect"),
                    ("redis://127.0.0.1:99999", "bad port"),
                    ("redis://user:secret@127.0.0.1:6379", "user or password is not supported"),
                    ("unix://relative.sock", "absolute")):
                r = self.start("--history", url, "--history-timeout-ms", "500", *key)
                self.assertEqual(r.returncode, 1, url)
                self.assertIn(message, r.stderr, url)
                self.assertNotIn("secret", r.stderr)
            r = self.start("--history", "redis://127.0.0.1:6379")  # no --log-key-file
            self.assertEqual(r.returncode, 1)
            self.assertIn("a Redis history needs --log-key-file", r.stderr)
            r = subprocess.run([HISTORY_BIN, f"redis://127.0.0.1:{free_port()}", "log"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("cannot connect", r.stderr)


# The bundle tests that read and write the store (the history read in time order, cached
# states against replays, concurrent ingest, impressions in the log) over Redis; the ones that
# make stores of their own, or test nothing of the store, run on LMDB only.
REDIS_BUNDLE_TESTS = {
    "test_model_is_served", "test_recommend_and_rank_equal_pytorch_and_numpy",
    "test_cached_states_equal_replays", "test_concurrent_ingest_and_recommend",
    "test_state_window_semantics", "test_inline_events_apply_to_one_request",
    "test_exclusion_modes_and_category", "test_recommend_logs_impressions",
}


class RecommendWithBundleRedis(RedisClass, RecommendWithBundle):
    @classmethod
    def history_target(cls):
        return redis_target(cls.redis, cls.key_dir.name)


for _name in dir(RecommendWithBundle):
    if _name.startswith("test_") and _name not in REDIS_BUNDLE_TESTS:
        setattr(RecommendWithBundleRedis, _name, None)


if __name__ == "__main__":
    unittest.main()
