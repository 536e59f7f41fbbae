#!/usr/bin/python3
"""Draws one or more driftrec-load JSON results (--json) as a PNG.

Top: latency percentiles (p50, p99) per window of the measured time, by intended start, with
the calls that failed (any status but OK) marked.  Bottom: the latency CDF of all calls and of
each method, from the result's histogram buckets (log latency axis).  Several results share
the axes, labelled by file name (or --label), e.g. before and after a change:

    /usr/bin/python3 bench/load/plot_load.py before.json after.json -o compare.png

Needs matplotlib (python3-matplotlib); driftrec-load --plot PNG runs this on its own result.
"""
import argparse
import json
import os
import sys


def load(path):
    with open(path) as f:
        r = json.load(f)
    for key in ("timeline", "latency_histogram"):
        if key not in r:
            raise ValueError(f"{path}: no \"{key}\": not a driftrec-load result of this version")
    return r


def cdf(hist):
    """(latency ms, fraction of calls at or below it) from a latency_histogram."""
    total = float(sum(hist["count"]))
    xs, ys, seen = [], [], 0
    for le, n in zip(hist["le_ms"], hist["count"]):
        seen += n
        xs.append(le)
        ys.append(seen / total)
    return xs, ys


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="driftrec-load JSON results")
    ap.add_argument("-o", "--output", required=True, help="the PNG to write")
    ap.add_argument("--label", action="append", default=[],
                    help="a label per result, in order (default: the file names)")
    ap.add_argument("--title", default="driftrec-load")
    args = ap.parse_args(argv)
    if args.label and len(args.label) != len(args.results):
        ap.error("give one --label per result, or none")
    try:
        results = [load(p) for p in args.results]
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        print(f"plot_load: {e}", file=sys.stderr)
        return 2

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = args.label or [os.path.splitext(os.path.basename(p))[0] for p in args.results]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8))
    for i, (r, label) in enumerate(zip(results, labels)):
        color = f"C{i % 10}"
        t = r["timeline"]
        mid = [x + t["window_s"] / 2 for x in t["t_s"]]
        top.plot(mid, t["p50_ms"], color=color, linestyle="-", label=f"{label} p50")
        top.plot(mid, t["p99_ms"], color=color, linestyle="--", label=f"{label} p99")
        failed = [(x, y) for x, y, e in zip(mid, t["p99_ms"], t["errors"]) if e]
        if failed:
            top.scatter(*zip(*failed), color=color, marker="x", label=f"{label}: errors")
        if sum(r["latency_histogram"]["count"]):
            xs, ys = cdf(r["latency_histogram"])
            bottom.step(xs, ys, where="post", color=color, linewidth=2, label=f"{label} all")
        for j, (name, m) in enumerate(sorted(r.get("methods", {}).items())):
            h = m.get("latency_histogram")
            if h and sum(h["count"]) and len(r["methods"]) > 1:
                xs, ys = cdf(h)
                bottom.step(xs, ys, where="post", color=color, linewidth=1,
                            linestyle=[":", "-.", "--"][j % 3], label=f"{label} {name}")
        mode = r.get("mode", "")
        rate = f"{r.get('target_rate', 0):g}/s" if mode == "open" else f"c={r.get('concurrency')}"
        top.set_title(f"{args.title}: {r.get('method', '')} {mode} loop {rate}, "
                      f"{r.get('qps', 0):.0f} calls/s")
    top.set_xlabel("seconds into the measured time (by intended start)")
    top.set_ylabel("latency (ms)")
    top.set_ylim(bottom=0)
    top.grid(True, alpha=0.3)
    top.legend(fontsize="small")
    bottom.set_xscale("log")
    bottom.set_xlabel("latency (ms)")
    bottom.set_ylabel("fraction of calls")
    bottom.set_ylim(0, 1.01)
    bottom.grid(True, which="both", alpha=0.3)
    bottom.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
