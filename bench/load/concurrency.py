#!/usr/bin/python3
"""concurrency.py: Recommend's QPS and latency at concurrency 1, 16 and 64, by work rule.

One random-weight bundle of the shipped shapes (20k items, item dim 64, LSTM hidden 128, an
int8 BERT-mini-shaped text encoder: 4 layers, hidden 256, with a text projection) serves
200 users whose 60 events each are stored in the history first.  driftrec-load drives it
closed loop (--duration s measured after --warmup s) with a replay file of those users:

  cached       Recommend(user id): the state cache holds each user's interest state (the
               warm-up visits every user), one LSTM step per new event, none here
  not cached   the same calls on a server started with --state-cache 0: every call reads the
               user's last 50 events from the store and runs the interest model over them
  inline 50    no stored history used: each call carries the user's 50 events inline
               (the peer comparison's rule, bench/peers/bench_server.py)
  query text   "cached" plus a query of 4 title words (<= 32 tokens) through the encoder

A table on stdout; JSON in --out.  Timings on a shared machine are noisy: compare rows of
one run, not runs.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import random_shop

REPO = random_shop.REPO
WORDS = ("trail running shoe waterproof jacket wool sock tent stove lamp phone case cable "
         "charger novel cookbook atlas guide kettle mug blender knife pan lens tripod bag "
         "backpack bottle helmet glove scarf watch band speaker headphone keyboard mouse").split()


def build(work, n_items, seed):
    import driftrec_train.runtime  # noqa: F401  (BLAS set-up before numpy and torch)
    import torch
    from driftrec_train import bert, export, golden
    torch.set_num_threads(1)
    vocab = os.path.join(work, "vocab.txt")
    shared = os.path.join(REPO, "..", "shared", "data", "bert-mini-uncased-vocab", "vocab.txt")
    if os.path.exists(shared):
        with open(shared) as src, open(vocab, "w") as dst:
            dst.write(src.read())
        n_vocab = sum(1 for _ in open(vocab))
    else:
        from pathlib import Path
        n_vocab = 2000
        golden.write_vocab(Path(vocab), n_vocab)
    enc = bert.TextEncoder(bert.BertConfig(
        vocab_size=n_vocab, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=1024, max_position_embeddings=128, pooling="mean"))
    bert.random_init(enc, torch.Generator().manual_seed(seed))
    text_dir = export.export_bert(enc.eval(), os.path.join(work, "text"), dtype="int8",
                                  name="bench-text", vocab=vocab, do_lower_case=True)
    ids = random_shop.write_bundle(os.path.join(work, "bundle"), n_items, 64, seed, hidden=128,
                                   text_model_dir=text_dir, text_dim=256, text_max_len=32)
    return os.path.join(work, "bundle"), ids


def write_data(work, ids, n_users, seed):
    rng = random.Random(seed)
    with open(os.path.join(work, "items.jsonl"), "w") as f:
        for i in ids:
            f.write(json.dumps({"item_id": i, "title": " ".join(rng.sample(WORDS, 6))}) + "\n")
    events = os.path.join(work, "events.jsonl")
    random_shop.write_events(events, ids, n_users, 60, seed)
    replay = os.path.join(work, "replay.jsonl")
    subprocess.run([sys.executable, os.path.join(REPO, "bench", "load", "make_replay.py"), events,
                    replay, "--cuts", "1"], check=True, capture_output=True)
    return events, replay


def start(a, work, port, *extra):
    log = open(os.path.join(work, f"server-{port}.log"), "w")
    proc = subprocess.Popen([a.server_bin, "--listen", f"127.0.0.1:{port}", "--history",
                             os.path.join(work, "history"), "--metrics", "off", "--model",
                             a.bundle, "--impression-queue", "0", *extra], stderr=log)
    deadline = time.monotonic() + 120
    while '"model ready"' not in open(log.name).read().replace('"msg":', ''):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("concurrency: the server did not start: " + open(log.name).read()[-2000:])
        time.sleep(0.2)
    return proc, log


def stop(proc, log):
    proc.terminate()
    proc.wait(timeout=60)
    log.close()


def ingest(a, port, events_path):
    """Every user's 60 events, stored through Ingest (driftrec.v1 over grpcio)."""
    import grpc
    sys.path.insert(0, os.path.join(a.build, "proto_gen", "python"))
    import driftrec_pb2 as pb
    by_user = {}
    with open(events_path) as f:
        for line in f:
            e = json.loads(line)
            ev = pb.Event(user_id=e["user_id"], item_id=e["item_id"], ts=e["ts"],
                          event_type=pb.EventType.Value(e["event_type"].upper()),
                          event_id=f"{e['user_id']}-{e['ts']}-{len(by_user.get(e['user_id'], []))}")
            if e["dwell_s"] is not None:
                ev.dwell_s = e["dwell_s"]
            by_user.setdefault(e["user_id"], []).append(ev)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        fn = ch.unary_unary("/driftrec.v1.Recommender/Ingest",
                            request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=pb.IngestResponse.FromString)
        for evs in by_user.values():
            fn(pb.IngestRequest(events=evs), timeout=30)


def load(a, port, concurrency, method, *extra):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        r = subprocess.run([a.load_bin, "--addr", f"127.0.0.1:{port}", "--replay", a.replay,
                            "--method", method, "--concurrency", str(concurrency),
                            "--duration", str(a.duration), "--warmup", str(a.warmup),
                            "--timeout-ms", "5000", "--json", out.name, *extra],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("concurrency: driftrec-load failed: " + r.stderr[-2000:])
        with open(out.name) as f:
            return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default="build/bench/concurrency")
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--server-flags", default="", help="extra driftrec-server flags, space-separated")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.environ.setdefault("DR_BUILD_DIR", a.build)
    a.load_bin = os.path.join(a.build, "bench", "load", "driftrec-load")
    a.server_bin = os.path.join(a.build, "server", "driftrec-server")
    work_dir = tempfile.TemporaryDirectory()
    work = work_dir.name
    print("concurrency: writing a random bundle with a text encoder", flush=True)
    a.bundle, ids = build(work, a.items, seed=7)
    events, a.replay = write_data(work, ids, n_users=200, seed=7)
    levels = [int(x) for x in a.concurrency.split(",")]
    flags = a.server_flags.split()
    port = 50970
    rows = []
    proc, log = start(a, work, port, *flags)
    try:
        ingest(a, port, events)
        for name, method, extra in (("cached", "recommend", ["--stored-history"]),
                                    ("query text", "recommend_query", ["--stored-history"]),
                                    ("inline 50", "recommend", [])):
            for c in levels:
                r = load(a, port, c, method, *extra)
                rows.append((name, c, r))
                print(f"  {name:11s} c={c:3d}: {r['qps']:8.0f} QPS  p50 "
                      f"{r['latency_ms']['p50']:7.2f} ms  p99 {r['latency_ms']['p99']:7.2f} ms  "
                      f"{r['status']}", flush=True)
    finally:
        stop(proc, log)
    proc, log = start(a, work, port + 1, "--state-cache", "0", *flags)
    try:
        for c in levels:
            r = load(a, port + 1, c, "recommend", "--stored-history")
            rows.append(("not cached", c, r))
            print(f"  {'not cached':11s} c={c:3d}: {r['qps']:8.0f} QPS  p50 "
                  f"{r['latency_ms']['p50']:7.2f} ms  p99 {r['latency_ms']['p99']:7.2f} ms  "
                  f"{r['status']}", flush=True)
    finally:
        stop(proc, log)
    print(f"\nRecommend, k 10, history 50 events, closed loop {a.duration:g} s after "
          f"{a.warmup:g} s warm-up, {os.cpu_count()} CPUs shared with the client")
    print(f"{'rule':12s} {'conc':>5s} {'QPS':>8s} {'p50 ms':>8s} {'p99 ms':>8s}  errors")
    order = {"cached": 0, "not cached": 1, "inline 50": 2, "query text": 3}
    for name, c, r in sorted(rows, key=lambda x: (order[x[0]], x[1])):
        errors = r["calls"] - r["status"].get("OK", 0)
        print(f"{name:12s} {c:5d} {r['qps']:8.0f} {r['latency_ms']['p50']:8.2f} "
              f"{r['latency_ms']['p99']:8.2f}  {errors}")
    with open(os.path.join(a.out, "concurrency.json"), "w") as f:
        json.dump([{"rule": n, "concurrency": c, "qps": r["qps"], "latency_ms": r["latency_ms"],
                    "status": r["status"]} for n, c, r in rows], f, indent=1)
    print(f"JSON: {a.out}/concurrency.json")


if __name__ == "__main__":
    main()
