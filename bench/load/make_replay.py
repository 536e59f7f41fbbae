#!/usr/bin/python3
"""make_replay.py: a replay file for driftrec-load from real histories.

Reads an events.jsonl in the format of docs/data.md (the demo shop's
models/train/out/demo-data/events.jsonl, or a shared dataset converted by the training
package's loaders) and writes one JSON line per request:

  {"user_id": "...", "events": [{"item_id", "ts", "type", "dwell_s"?, "amount"?, "rating"?}],
   "query": "...", "candidates": ["...", ...]}

events: the user's last --events events (default 50) before a cut point in the user's
history, oldest first, "type" the proto's EventType number; query: a few words of the title
of one of those items (from --items, the items.jsonl beside events.jsonl; empty without
one); candidates: --candidates item ids for Rank (the window's items first, then random
ones from the whole file).  Users with fewer than --min-events events are skipped; a user
gives up to --cuts requests, at different points of the history.  Deterministic (--seed).
"""
import argparse
import json
import random
import sys
from pathlib import Path

TYPES = {"impression": 1, "view": 2, "click": 3, "cart": 4, "purchase": 5, "review": 6}


def read_events(path):
    users = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            e = json.loads(line)
            t = TYPES.get(str(e.get("event_type", "")).lower())
            if t is None or not e.get("user_id") or not e.get("item_id"):
                continue
            out = {"item_id": str(e["item_id"]), "ts": int(e["ts"]), "type": t}
            for k in ("dwell_s", "amount"):
                if e.get(k) is not None and float(e[k]) >= 0:
                    out[k] = float(e[k])
            if e.get("rating") is not None and 1 <= int(e["rating"]) <= 5:
                out["rating"] = int(e["rating"])
            users.setdefault(str(e["user_id"]), []).append(out)
    for evs in users.values():
        evs.sort(key=lambda x: x["ts"])  # stable: arrival order breaks ties
    return users


def read_titles(path):
    titles = {}
    if path and Path(path).exists():
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    it = json.loads(line)
                    titles[str(it["item_id"])] = str(it.get("title", ""))
    return titles


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("events", help="events.jsonl (docs/data.md)")
    ap.add_argument("out", help="the replay file to write (JSON lines)")
    ap.add_argument("--items", help="items.jsonl for query text (default: beside events)")
    ap.add_argument("--events", dest="n_events", type=int, default=50, help="events per request (default 50)")
    ap.add_argument("--min-events", type=int, default=10,
                    help="skip users with fewer events (default 10)")
    ap.add_argument("--cuts", type=int, default=3, help="requests per user (default 3)")
    ap.add_argument("--candidates", type=int, default=100,
                    help="candidate ids per Rank request (default 100)")
    ap.add_argument("--max-requests", type=int, default=5000, help="at most this many lines")
    ap.add_argument("--query-words", type=int, default=4, help="words of a title per query")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)

    rng = random.Random(a.seed)
    users = read_events(a.events)
    items_path = a.items or str(Path(a.events).with_name("items.jsonl"))
    titles = read_titles(items_path)
    all_items = sorted({e["item_id"] for evs in users.values() for e in evs})
    if not all_items:
        sys.exit(f"make_replay: no usable events in {a.events}")
    lines = []
    for user in sorted(users):
        evs = users[user]
        if len(evs) < a.min_events:
            continue
        ends = sorted({len(evs)} | {rng.randint(a.min_events, len(evs)) for _ in range(a.cuts - 1)})
        for end in ends:
            window = evs[max(0, end - a.n_events):end]
            words = titles.get(rng.choice(window)["item_id"], "").split()
            query = " ".join(words[:a.query_words])
            cands = list(dict.fromkeys(e["item_id"] for e in window))[:a.candidates // 2]
            while len(cands) < min(a.candidates, len(all_items)):
                c = rng.choice(all_items)
                if c not in cands:
                    cands.append(c)
            lines.append({"user_id": user, "events": window, "query": query,
                          "candidates": cands})
    rng.shuffle(lines)
    lines = lines[:a.max_requests]
    if not lines:
        sys.exit(f"make_replay: no user has {a.min_events} events in {a.events}")
    with open(a.out, "w", encoding="utf-8") as f:
        for rec in lines:
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"make_replay: {len(lines)} requests from {len(users)} users -> {a.out}")


if __name__ == "__main__":
    main()
