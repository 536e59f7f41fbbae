#!/usr/bin/python3
"""ANN benchmark report: a markdown table and a recall-vs-QPS plot from ann_bench's JSON.

usage: report.py ann.json ann.png   (writes ann.md beside the PNG, prints the table)

QPS at a recall target is interpolated linearly between the two grid points (in ef order)
whose recall brackets it; "-" when the grid never reaches it.
"""
import json
import os
import sys


def qps_at(points, target):
    pts = sorted(points, key=lambda p: p["ef"])
    if not pts:
        return None
    if pts[0]["recall"] >= target:
        return pts[0]["qps"]
    for a, b in zip(pts, pts[1:]):
        if a["recall"] < target <= b["recall"]:
            t = (target - a["recall"]) / (b["recall"] - a["recall"])
            return a["qps"] + t * (b["qps"] - a["qps"])
    return None


def fmt(x, spec="{:,.0f}"):
    return "-" if x is None else spec.format(x)


def main():
    data = json.load(open(sys.argv[1]))
    png = sys.argv[2]
    lines = [f"CPU: {data['cpu']} (driftrec kernels: {data['isa']}); builds with "
             f"{data['threads_build']} threads, queries on one thread, median of "
             f"{data['repeats']} passes; M=16, efConstruction=200.", ""]
    for ds in data["datasets"]:
        lines.append(f"### {ds['name']}: {ds['n']:,} x {ds['dim']}, {ds['nq']} queries, "
                     f"norms {ds['norm_min']:.3g}..{ds['norm_max']:.3g}")
        lines.append("")
        lines.append("| index | build s | bytes/vector | vs hnswlib | extra tier bytes/vector "
                     "| QPS @0.95 | vs hnswlib | QPS @0.99 | max recall@10 (ef) |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        ref = next((i for i in ds["indexes"] if i["name"] == "hnswlib"), None)
        ref95 = qps_at(ref["points"], 0.95) if ref else None
        for ix in ds["indexes"]:
            q95, q99 = qps_at(ix["points"], 0.95), qps_at(ix["points"], 0.99)
            best = max(ix["points"], key=lambda p: (p["recall"], -p["ef"]))
            bpv = ix["bytes_per_vector"]
            lines.append(
                f"| {ix['name']} | {ix['build_s']:.1f} | {bpv:.1f} | "
                f"{fmt(bpv / ref['bytes_per_vector'] if ref else None, '{:.3f}x')} | "
                f"{fmt(ix['extra_bytes'] / ds['n'] if ix['extra_bytes'] else None, '{:.0f}')} | "
                f"{fmt(q95)} | {fmt(q95 / ref95 if q95 and ref95 else None, '{:.2f}x')} | "
                f"{fmt(q99)} | {best['recall']:.4f} ({best['ef']}) |")
        if ds.get("flat_batched_qps"):
            lines.append(f"| faiss-flat, all queries in one call (BLAS) | | | | | "
                         f"{ds['flat_batched_qps']:,.0f} (exact) | | | 1.0 |")
        if ds.get("exclusion"):
            lines.append("")
            lines.append("driftrec with 50 seen items excluded per query (recall against the "
                         "exact filtered top-10):")
            lines.append("")
            lines.append("| ef | recall@10 | QPS | answers with < k items | seen items returned |")
            lines.append("|---|---|---|---|---|")
            for p in ds["exclusion"]:
                lines.append(f"| {p['ef']} | {p['recall']:.4f} | {p['qps']:,.0f} | "
                             f"{p['short_answers']} | {p['seen_returned']} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    with open(os.path.splitext(png)[0] + ".md", "w") as f:
        f.write(text + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sets = data["datasets"]
    fig, axes = plt.subplots(1, len(sets), figsize=(7 * len(sets), 5), squeeze=False)
    for ax, ds in zip(axes[0], sets):
        for ix in ds["indexes"]:
            pts = sorted(ix["points"], key=lambda p: p["ef"])
            style = "o-" if ix["name"].startswith("driftrec") else "s--"
            ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], style, ms=3,
                    label=f"{ix['name']} ({ix['bytes_per_vector']:.0f} B/vec)")
        ax.axvline(0.95, color="grey", lw=0.5)
        ax.axvline(0.99, color="grey", lw=0.5)
        ax.set_yscale("log")
        ax.set_xlim(0.8, 1.001)
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (one thread)")
        ax.set_title(f"{ds['name']} ({ds['n']:,} x {ds['dim']})")
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main()
