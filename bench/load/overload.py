#!/usr/bin/python3
"""overload.py: driftrec-server held at a multiple of its capacity for minutes.

The capacity knob is lowered (--workers, default 1; --queue, default 64 slots) so that the
overload is the server's, not the shared cores'.  A random-weight bundle (items, dim and an
int8 interest model of the shipped shape, written by the training package's bundle writer)
is served; driftrec-load sends Recommend calls carrying 50 inline events each (a replay
file of synthetic histories), first closed loop to measure the capacity, then open loop at
--factor times it for --minutes, with a per-call deadline (--deadline-ms).  The server's
resident memory is sampled every second.

It shows, per minute: calls, OK, RESOURCE_EXHAUSTED (refused at once), DEADLINE_EXCEEDED
(accepted calls that missed their deadline: the goal is none), the OK calls' p99 and max
latency against the deadline, and resident memory; then whether memory stayed within 10%
from the first minute to the last.  JSON in --out.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import re
import urllib.request

import random_shop

REPO = random_shop.REPO


def write_replay(out_dir, ids, n_users, seed):
    events = os.path.join(out_dir, "events.jsonl")
    random_shop.write_events(events, ids, n_users, 60, seed)
    replay = os.path.join(out_dir, "replay.jsonl")
    subprocess.run([sys.executable, os.path.join(REPO, "bench", "load", "make_replay.py"),
                    events, replay], check=True, capture_output=True)
    return replay


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def server_counts(metrics_port):
    """The server's own view: calls by status; calls dropped in the queue past their deadline
    (before compute), and calls whose deadline had passed when they arrived."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    codes = {c: int(n) for c, n in re.findall(
        r'^driftrec_requests_total\{method="Recommend",code="(\w+)",variant="[^"]*"\} (\d+)$',
        text, re.M)}
    drops = re.search(r"^driftrec_deadline_dropped_total (\d+)$", text, re.M)
    late = re.search(r"^driftrec_deadline_expired_on_arrival_total (\d+)$", text, re.M)
    codes["dropped_in_queue"] = int(drops.group(1)) if drops else 0
    codes["expired_on_arrival"] = int(late.group(1)) if late else 0
    return codes


def run_load(a, port, out, *args):
    cmd = [a.load_bin, "--addr", f"127.0.0.1:{port}", "--replay", a.replay, "--method",
           "recommend", "--timeout-ms", str(a.deadline_ms), "--json", out, *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("overload: driftrec-load failed: " + r.stderr[-2000:])
    with open(out) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default="build/bench/overload")
    ap.add_argument("--minutes", type=int, default=5)
    ap.add_argument("--factor", type=float, default=3.0, help="offered rate / capacity")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--queue", type=int, default=64)
    ap.add_argument("--deadline-ms", type=int, default=200)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=128,
                    help="item dim (LSTM hidden 2x): costly enough per call that the client "
                    "can offer 3x one worker's capacity on the same 2 cores")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    a.load_bin = os.path.join(a.build, "bench", "load", "driftrec-load")
    server_bin = os.path.join(a.build, "server", "driftrec-server")
    os.environ.setdefault("DR_BUILD_DIR", a.build)
    work = tempfile.TemporaryDirectory()
    bundle = os.path.join(work.name, "bundle")
    print(f"overload: writing a random bundle ({a.items} items, dim {a.dim})", flush=True)
    ids = random_shop.write_bundle(bundle, a.items, a.dim, seed=7)
    a.replay = write_replay(work.name, ids, n_users=200, seed=7)
    port = 50950
    log = open(os.path.join(a.out, "server.log"), "w")
    proc = subprocess.Popen([server_bin, "--listen", f"127.0.0.1:{port}", "--history",
                             work.name + "/history", "--metrics", f"127.0.0.1:{port + 1}",
                             "--model", bundle,
                             "--workers", str(a.workers), "--queue", str(a.queue),
                             "--impression-queue", "0"], stderr=log)
    try:
        deadline = time.monotonic() + 120
        while '"model ready"' not in open(log.name).read().replace('"msg":', ''):
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("overload: the server did not start: " + open(log.name).read()[-2000:])
            time.sleep(0.2)
        out = os.path.join(a.out, "load.json")
        cap = run_load(a, port, out, "--concurrency", str(4 * a.workers), "--duration", "10",
                       "--warmup", "2")
        capacity = cap["qps"]
        rate = a.factor * capacity
        print(f"capacity ({a.workers} worker(s), closed loop, 10 s): {capacity:.0f} calls/s; "
              f"offering {rate:.0f}/s open loop for {a.minutes} min, deadline {a.deadline_ms} ms",
              flush=True)
        samples, stop = [], threading.Event()

        def sample():
            t0 = time.monotonic()
            while not stop.wait(1.0):
                samples.append((time.monotonic() - t0, rss_kib(proc.pid)))
        sampler = threading.Thread(target=sample)
        sampler.start()
        minutes = []
        try:
            for m in range(a.minutes):
                codes0 = server_counts(port + 1)
                t0 = time.monotonic()
                r = run_load(a, port, out, "--mode", "open", "--rate", f"{rate:.0f}",
                             "--duration", "60", "--warmup", "0", "--max-in-flight",
                             str(8 * (a.queue + a.workers)), "--max-send-lag-ms", "1000")
                wall = time.monotonic() - t0  # > 60 s when the client's sender lagged
                st = r["status"]
                codes1 = server_counts(port + 1)
                server = {c: n - codes0.get(c, 0) for c, n in codes1.items()
                          if n != codes0.get(c, 0)}
                row = {"minute": m + 1, "calls": r["calls"], "over_cap": r["over_cap"],
                       "ok": st.get("OK", 0),
                       "resource_exhausted": st.get("RESOURCE_EXHAUSTED", 0),
                       "deadline_exceeded": st.get("DEADLINE_EXCEEDED", 0),
                       "other": sum(v for k, v in st.items()
                                    if k not in ("OK", "RESOURCE_EXHAUSTED",
                                                 "DEADLINE_EXCEEDED")),
                       "wall_s": wall,
                       # rates over the wall time: what the server really saw
                       "sent_qps": r["calls"] / wall, "ok_qps": st.get("OK", 0) / wall,
                       "p99_ms": r["latency_ms"]["p99"], "max_ms": r["latency_ms"]["max"],
                       "send_lag_p99_ms": r["send_lag_p99_ms"], "valid": r["valid"],
                       "rss_mib": rss_kib(proc.pid) / 1024.0,
                       "server": server,
                       "server_deadline_drops": server.get("dropped_in_queue", 0)}
                if "methods" in r and "recommend" in r["methods"]:
                    row["ok_p99_ms"] = r["methods"]["recommend"]["latency_ms"]["p99"]
                minutes.append(row)
                print(f"  minute {m + 1}: {row['calls']} calls, OK {row['ok']} "
                      f"({row['ok_qps']:.0f}/s), sent {row['sent_qps']:.0f}/s = "
                      f"{row['sent_qps'] / capacity:.1f}x capacity over {wall:.0f} s, RESOURCE_EXHAUSTED {row['resource_exhausted']}, "
                      f"DEADLINE_EXCEEDED {row['deadline_exceeded']}, other {row['other']}, "
                      f"over_cap {row['over_cap']}; p99 {row['p99_ms']:.1f} ms, max "
                      f"{row['max_ms']:.1f} ms; RSS {row['rss_mib']:.1f} MiB; server: {server}, "
                      f"dropped past deadline {row['server_deadline_drops']}", flush=True)
        finally:
            stop.set()
            sampler.join()
        first = [kib for t, kib in samples if t < 60]
        last = [kib for t, kib in samples if t >= samples[-1][0] - 60]
        rss_first, rss_last = sum(first) / len(first), sum(last) / len(last)
        change = (rss_last - rss_first) / rss_first
        result = {"workers": a.workers, "queue": a.queue, "deadline_ms": a.deadline_ms,
                  "capacity_qps": capacity, "offered_qps": rate, "factor": a.factor,
                  "minutes": minutes, "rss_first_minute_mib": rss_first / 1024,
                  "rss_last_minute_mib": rss_last / 1024, "rss_change": change,
                  "rss_samples_kib": samples}
        with open(os.path.join(a.out, "overload.json"), "w") as f:
            json.dump(result, f, indent=1)
        missed = sum(m["deadline_exceeded"] for m in minutes)
        dropped = sum(m["server_deadline_drops"] for m in minutes)
        print(f"\nRSS: first minute {rss_first / 1024:.1f} MiB, last minute "
              f"{rss_last / 1024:.1f} MiB ({change:+.1%}; goal within 10%: "
              f"{'met' if abs(change) <= 0.10 else 'NOT met'})")
        print(f"calls past their deadline: client {missed}, of them dropped in the server's "
              f"queue {dropped} (goal 0); refused at once: "
              f"{sum(m['resource_exhausted'] for m in minutes)}")
        print(f"JSON: {a.out}/overload.json")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


if __name__ == "__main__":
    main()
