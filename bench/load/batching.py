#!/usr/bin/python3
"""batching.py: Recommend throughput and latency with and without the batcher (--max-batch).

A random-weight bundle of the shipped shape (random_shop.py's: 20000 items, dim 64, an int8
interest model with one LSTM layer of 128) is served; driftrec-load sends Recommend calls
carrying 50 inline events each (a replay of synthetic histories, users without stored
history: after each user's first call the cached empty state is stepped by the 50 events),
closed loop at each --concurrency, against --max-batch 1 and --max-batch 32 (same workers,
same everything else).  The settings alternate within each of --runs rounds, so drift of a
shared machine hits both alike; the table gives the median of the rounds for QPS, p50 and
p99.  JSON in --out.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import random_shop  # noqa: E402  (the random bundle and histories)


def write_replay(out_dir, ids, n_users, n_events, seed):
    events = os.path.join(out_dir, "events.jsonl")
    random_shop.write_events(events, ids, n_users, n_events, seed)
    replay = os.path.join(out_dir, "replay.jsonl")
    subprocess.run([sys.executable, os.path.join(HERE, "make_replay.py"), events, replay],
                   check=True, capture_output=True)
    return replay


def batch_sizes(port):
    import re
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    s = re.search(r'^driftrec_batch_size_sum\{model="interest"\} (\d+)$', text, re.M)
    n = re.search(r'^driftrec_batch_size_count\{model="interest"\} (\d+)$', text, re.M)
    return (int(s.group(1)), int(n.group(1))) if s and n else (0, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default="build/bench/batching")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--max-batch", default="1,32")
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--server-args", default="", help="more server flags, e.g. "
                    "\"--max-queue-delay-us 200\" (both settings)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    load_bin = os.path.join(a.build, "bench", "load", "driftrec-load")
    server_bin = os.path.join(a.build, "server", "driftrec-server")
    os.environ.setdefault("DR_BUILD_DIR", a.build)
    work = tempfile.TemporaryDirectory()
    bundle = os.path.join(work.name, "bundle")
    ids = random_shop.write_bundle(bundle, a.items, a.dim, seed=7)
    replay = write_replay(work.name, ids, n_users=200, n_events=50, seed=7)
    conc = [int(c) for c in a.concurrency.split(",")]
    settings = [int(b) for b in a.max_batch.split(",")]
    rows = {(b, c): [] for b in settings for c in conc}
    sizes = {b: [0, 0] for b in settings}
    port = 50970
    for run in range(a.runs):
        for b in settings:
            hist = os.path.join(work.name, f"history-{run}-{b}")
            log = open(os.path.join(a.out, f"server-{b}.log"), "w")
            proc = subprocess.Popen(
                [server_bin, "--listen", f"127.0.0.1:{port}", "--history", hist, "--metrics",
                 f"127.0.0.1:{port + 1}", "--model", bundle, "--workers", str(a.workers),
                 "--max-batch", str(b), "--impression-queue", "0", *a.server_args.split()],
                stderr=log)
            try:
                deadline = time.monotonic() + 120
                while '"model ready"' not in open(log.name).read().replace('"msg":', ''):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        sys.exit("batching: the server did not start: "
                                 + open(log.name).read()[-2000:])
                    time.sleep(0.2)
                for c in conc:
                    out = os.path.join(a.out, f"load-{b}-{c}.json")
                    subprocess.run([load_bin, "--addr", f"127.0.0.1:{port}", "--replay", replay,
                                    "--method", "recommend", "--concurrency", str(c),
                                    "--duration", str(a.duration), "--warmup", "1",
                                    "--json", out], check=True, capture_output=True)
                    with open(out) as f:
                        r = json.load(f)
                    ok = r["status"].get("OK", 0)
                    rows[(b, c)].append({"qps": r["qps"], "p50": r["latency_ms"]["p50"],
                                         "p99": r["latency_ms"]["p99"], "ok": ok,
                                         "calls": r["calls"]})
                    print(f"run {run + 1} max-batch {b:>2} concurrency {c:>2}: "
                          f"{r['qps']:.0f} QPS, p50 {r['latency_ms']['p50']:.2f} ms, "
                          f"p99 {r['latency_ms']['p99']:.2f} ms ({ok}/{r['calls']} OK)",
                          flush=True)
                s, n = batch_sizes(port + 1)
                sizes[b][0] += s
                sizes[b][1] += n
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    table = []
    print(f"\nmedians of {a.runs} runs ({a.workers} workers, Recommend with 50 inline events)")
    print("| concurrency | max-batch | QPS | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for c in conc:
        for b in settings:
            rs = rows[(b, c)]
            med = {k: statistics.median(x[k] for x in rs) for k in ("qps", "p50", "p99")}
            table.append({"concurrency": c, "max_batch": b, **med, "runs": rs})
            print(f"| {c} | {b} | {med['qps']:.0f} | {med['p50']:.2f} | {med['p99']:.2f} |")
    for b in settings:
        s, n = sizes[b]
        if n:
            print(f"max-batch {b}: mean interest batch {s / n:.2f} users ({n} batches)")
    with open(os.path.join(a.out, "batching.json"), "w") as f:
        json.dump({"workers": a.workers, "table": table,
                   "mean_batch": {b: (sizes[b][0] / sizes[b][1] if sizes[b][1] else None)
                                  for b in settings}}, f, indent=1)


if __name__ == "__main__":
    main()
