#!/usr/bin/python3
"""Summarise driftrec-train runs as the Markdown tables of docs/training.md.

    /usr/bin/python3 models/train/table.py models/train/out/runs/*/

Per dataset: driftrec against every baseline (test NDCG@10 and HR@10 with 95% intervals, the
paired difference), the exported int8 model through the C library, ablations (runs whose
metrics.json says ablation != none, paired against the full run of the same dataset and
split through per_user_ndcg10.npy) and training times.
"""

import json
import sys
from pathlib import Path

import numpy as np

from driftrec_train.evaluate import mean_ci


def fmt(s):
    return f"{s['mean']:.4f} ±{s['ci95']:.4f}"


def paired(a, b):
    return mean_ci(a - b)


def main(argv):
    runs = []
    for arg in argv:
        p = Path(arg) / "metrics.json"
        if p.exists():
            m = json.loads(p.read_text())
            m["_dir"] = Path(arg)
            runs.append(m)
    if not runs:
        print("no metrics.json under the given directories", file=sys.stderr)
        return 2
    key = lambda m: (str(m["dataset"]), m.get("cold_items", 0))  # noqa: E731
    full = {key(m): m for m in runs if m["ablation"] == "none"}
    out = []
    out += ["## driftrec against the baselines (test, full ranking)", "",
            "| dataset | model | HR@10 | NDCG@10 | Δ NDCG@10 driftrec − model (paired) |", "|---|---|---|---|---|"]
    for m in runs:
        if m["ablation"] != "none" or not m.get("best_baseline"):
            continue
        name = m["name"] + (f" (cold {m['cold_items']})" if m.get("cold_items") else "")
        for model, s in m["models"].items():
            d = m["paired_vs_baselines"].get(model, {}).get("NDCG@10")
            tag = " (best baseline)" if model == m["best_baseline"] else ""
            out.append(f"| {name} | {model}{tag} | {fmt(s['HR@10'])} | {fmt(s['NDCG@10'])} | "
                       f"{fmt(d) if d else '-'} |")
        best = m["models"][m["best_baseline"]]["NDCG@10"]["mean"]
        d = m["paired_vs_best_baseline"]["NDCG@10"]
        out.append(f"| {name} | **driftrec / best** | | **{m['models']['driftrec']['NDCG@10']['mean'] / best:.3f}x** | "
                   f"{'**excludes a loss**' if d['mean'] - d['ci95'] > 0 else 'does not exclude a loss'} |")
    c_rows = [m for m in runs if "c_library" in m]
    if c_rows:
        out += ["", "## The exported int8 model through the C library (same test users)", "",
                "| dataset | PyTorch fp32 NDCG@10 | C exact NDCG@10 | Δ exact − fp32 (paired) | exact s | "
                "C ANN NDCG@10 | Δ ANN − fp32 (paired) | ANN s |", "|---|---|---|---|---|---|---|---|"]
        for m in c_rows:
            e, a = m["c_library"]["exact"], m["c_library"].get("ann")
            out.append(f"| {m['name']} | {fmt(m['models']['driftrec']['NDCG@10'])} | "
                       f"{fmt(e['metrics']['NDCG@10'])} | {fmt(e['paired_vs_fp32']['NDCG@10'])} | {e['seconds']} | "
                       + (f"{fmt(a['metrics']['NDCG@10'])} | {fmt(a['paired_vs_fp32']['NDCG@10'])} | {a['seconds']} |"
                          if a else "- | - | - |"))
    abl = [m for m in runs if m["ablation"] != "none"]
    if abl:
        out += ["", "## Ablations (test NDCG@10; paired against the full model on the same users)", "",
                "| dataset | variant | NDCG@10 | full model | Δ full − variant (paired) |", "|---|---|---|---|---|"]
        for m in sorted(abl, key=lambda m: (key(m), m["ablation"])):
            f = full.get(key(m))
            if f is None:
                continue
            a = np.load(m["_dir"] / "per_user_ndcg10.npy")
            b = np.load(f["_dir"] / "per_user_ndcg10.npy")
            if len(a) != len(b):
                continue
            name = f["name"] + (f" (cold {m['cold_items']})" if m.get("cold_items") else "")
            out.append(f"| {name} | {m['ablation']} | {fmt(m['models']['driftrec']['NDCG@10'])} | "
                       f"{fmt(f['models']['driftrec']['NDCG@10'])} | {fmt(paired(b, a))} |")
    shift = [m for m in runs if "interest_shift" in m]
    for m in shift:
        s = m["interest_shift"]
        dr, st = s["models"]["driftrec"], s["models"]["pool-mean"]
        out += ["", f"## After an interest shift ({m['name']}, {s['users']} users)", "",
                f"Next-category accuracy: driftrec {fmt(dr)}, static pooling {fmt(st)}: "
                f"{dr['mean'] / st['mean'] if st['mean'] > 0 else float('inf'):.2f}x."]
    out += ["", "## Training time", "", "| run | training s (incl. refit) | best epoch | stopped by | whole run s |",
            "|---|---|---|---|---|"]
    for m in runs:
        t = m["train"]
        out.append(f"| {m['_dir'].name} | {t['seconds']} | {t['best_epoch']} | {t['stopped']} | {m['total_seconds']} |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
