"""End-to-end: connection max-age (--max-connection-age-ms) and the in-flight gauge, the two
things a deployment past one machine leans on.

A Kubernetes Service balances TCP connections, and a gRPC client keeps one connection for
ever, so replicas added later get no calls unless the server makes clients reconnect.  These
tests check, on the wire, that the server sends GOAWAY after the configured age (and never
without the flag), that a grpcio client reconnects without a failed call, and that
driftrec_in_flight_requests counts calls being handled, which the autoscaler reads.
"""
import json
import os
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import grpc

from tests.e2e.test_server import SERVER_BIN, Server, event, health_pb2

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 0x4, 0x6, 0x7


def frame(ftype, flags=0, stream=0, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def read_frame(sock):
    """One HTTP/2 frame as (type, flags, payload); None when the peer closed."""
    head = b""
    while len(head) < 9:
        chunk = sock.recv(9 - len(head))
        if not chunk:
            return None
        head += chunk
    length = int.from_bytes(head[:3], "big")
    payload = b""
    while len(payload) < length:
        chunk = sock.recv(length - len(payload))
        if not chunk:
            return None
        payload += chunk
    return head[3], head[4], payload


def seconds_to_goaway(port, wait_s):
    """Opens a bare HTTP/2 connection (no calls) and answers the server's SETTINGS and PINGs;
    returns the seconds until the server's first GOAWAY and its error code, or None if none
    came within wait_s."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        start = time.monotonic()
        s.sendall(PREFACE + frame(SETTINGS))
        while time.monotonic() - start < wait_s:
            s.settimeout(max(0.01, wait_s - (time.monotonic() - start)))
            try:
                f = read_frame(s)
            except socket.timeout:
                return None
            if f is None:
                return None
            ftype, flags, payload = f
            if ftype == SETTINGS and not flags & 0x1:
                s.sendall(frame(SETTINGS, flags=0x1))
            elif ftype == PING and not flags & 0x1:
                s.sendall(frame(PING, flags=0x1, payload=payload))
            elif ftype == GOAWAY:
                return time.monotonic() - start, struct.unpack(">I", payload[4:8])[0]
    return None


class ConnectionAge(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def start(self, *extra):
        srv = Server(self.dir.name + "/history", *extra)
        self.addCleanup(lambda: self.assertEqual(srv.stop(), 0, srv.stderr()))
        return srv

    def test_goaway_after_the_age_and_never_without_it(self):
        srv = self.start("--max-connection-age-ms", "400", "--max-connection-age-grace-ms", "300")
        self.assertIn('"max_connection_age_ms":400', srv.stderr())
        self.assertIn('"max_connection_age_grace_ms":300', srv.stderr())
        got = seconds_to_goaway(srv.port, 5.0)
        self.assertIsNotNone(got, "no GOAWAY within 5 s of a 400 ms max age")
        after_s, code = got
        self.assertEqual(code, 0, "GOAWAY for max age carries NO_ERROR")
        # gRPC jitters the age by +-10%; allow for a slow shared machine on the upper side.
        self.assertGreaterEqual(after_s, 0.35)
        self.assertLess(after_s, 3.0)

        plain = self.start()
        self.assertIn('"max_connection_age_ms":0', plain.stderr())
        self.assertIsNone(seconds_to_goaway(plain.port, 1.5),
                          "GOAWAY from a server without --max-connection-age-ms")

    def test_grpc_client_reconnects_without_a_failed_call(self):
        srv = self.start("--max-connection-age-ms", "300", "--max-connection-age-grace-ms", "1000")
        states = []
        srv.channel.subscribe(states.append, try_to_connect=True)
        deadline = time.monotonic() + 2.0
        calls = 0
        while time.monotonic() < deadline:
            # Every call succeeds: a GOAWAY'd connection's calls finish, new calls go to a new one.
            self.assertEqual(srv.health(""), health_pb2.HealthCheckResponse.SERVING)
            self.assertEqual(srv.ingest([event(item=f"a{calls}")]).accepted, 1)
            calls += 1
            time.sleep(0.01)
        srv.channel.unsubscribe(states.append)
        ready = states.count(grpc.ChannelConnectivity.READY)
        # About 2 s / 0.3 s connections; at least two reconnections even on a slow machine.
        self.assertGreaterEqual(ready, 3, f"connectivity states: {states}")
        self.assertGreater(calls, 20)

    def test_config_file_keys_and_bad_values(self):
        path = os.path.join(self.dir.name, "config.json")
        with open(path, "w") as f:
            json.dump({"max-connection-age-ms": 60000, "max-connection-age-grace-ms": 10000}, f)
        srv = self.start("--config", path)
        self.assertIn('"max_connection_age_ms":60000', srv.stderr())
        self.assertIn('"max_connection_age_grace_ms":10000', srv.stderr())
        for flag, value in [("--max-connection-age-ms", "-1"),
                            ("--max-connection-age-ms", "10s"),
                            ("--max-connection-age-grace-ms", "99999999999")]:
            with self.subTest(flag=flag, value=value):
                r = subprocess.run([SERVER_BIN, flag, value, "--metrics", "off"],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(f"{flag} {value}: expected an integer", r.stderr)


class InFlightGauge(unittest.TestCase):
    def test_in_flight_counts_calls_being_handled(self):
        with tempfile.TemporaryDirectory() as d:
            srv = Server(d + "/history", "--workers", "2")
            try:
                self.assertIn("driftrec_in_flight_requests 0\n", srv.metrics())
                # Many concurrent Ingests (each one durable commit): a scrape meanwhile sees
                # some in flight; afterwards none.
                stop = threading.Event()
                errors = []

                def client(c):
                    n = 0
                    while not stop.is_set():
                        try:
                            srv.ingest([event(user=f"f{c}", item=f"i{n}")])
                        except grpc.RpcError as e:  # RESOURCE_EXHAUSTED is not expected here
                            errors.append(e.code())
                            return
                        n += 1

                threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
                for t in threads:
                    t.start()
                seen = 0
                deadline = time.monotonic() + 10
                while seen == 0 and time.monotonic() < deadline:
                    for line in srv.metrics().splitlines():
                        if line.startswith("driftrec_in_flight_requests "):
                            seen = max(seen, int(line.split()[1]))
                stop.set()
                for t in threads:
                    t.join(timeout=10)
                self.assertEqual(errors, [])
                self.assertGreater(seen, 0, "no call in flight seen under 8 concurrent clients")
                # A worker counts its call done just after it starts the reply, so the last
                # replies can reach the clients a moment before the gauge falls to 0.
                deadline = time.monotonic() + 5
                while ("driftrec_in_flight_requests 0\n" not in srv.metrics()
                       and time.monotonic() < deadline):
                    time.sleep(0.01)
                self.assertIn("driftrec_in_flight_requests 0\n", srv.metrics())
            finally:
                self.assertEqual(srv.stop(), 0, srv.stderr())


if __name__ == "__main__":
    unittest.main()
