"""The run report: report.md and plots/*.png from a run's metrics.json record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PRIMARY = ("HR@10", "NDCG@10", "MRR")


def _fmt(s: dict[str, float]) -> str:
    return f"{s['mean']:.4f} ±{s['ci95']:.4f}"


def plots(run_dir: Path, m: dict[str, Any]) -> list[str]:
    """Training curves and the model comparison; returns the written file names."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    written = []
    epochs = m["train"]["epochs"]
    if epochs:
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
        x = [e["epoch"] for e in epochs]
        ax[0].plot(x, [e["train_loss"] for e in epochs], marker="o")
        ax[0].set(title="training loss", xlabel="epoch")
        ax[1].plot(x, [e["val_ndcg10"] for e in epochs], marker="o", label="NDCG@10")
        ax[1].plot(x, [e["val_hr10"] for e in epochs], marker="o", label="HR@10")
        ax[1].axvline(m["train"]["best_epoch"], color="grey", ls="--", lw=0.8)
        ax[1].set(title="validation", xlabel="epoch")
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(out / "training.png", dpi=100)
        plt.close(fig)
        written.append("plots/training.png")
    models = m["models"]
    names = list(models)
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names)), 3.2))
    means = [models[n]["NDCG@10"]["mean"] for n in names]
    errs = [models[n]["NDCG@10"]["ci95"] for n in names]
    ax.bar(names, means, yerr=errs, capsize=3, color=["C3" if n == "driftrec" else "C0" for n in names])
    ax.set(title=f"{m['name']}: test NDCG@10 (95% interval)")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(out / "models.png", dpi=100)
    plt.close(fig)
    written.append("plots/models.png")
    return written


def write(run_dir: Path, m: dict[str, Any]) -> Path:
    images = plots(run_dir, m)
    t = m["train"]
    lines = [f"# {m['name']}", "",
             f"Data: {m['dataset']}: {m['users']} users, {m['items']} items, {m['events']} events "
             f"(time in {m['time_unit']}); {m['evaluated_users']} users evaluated on their last event "
             f"(full ranking over all items{', cold-item split ' + str(m['cold_items']) if m['cold_items'] else ''}).",
             f"Ablation: {m['ablation']}. Training: {t['seconds']:.0f} s, best epoch {t['best_epoch']} of "
             f"{len(t['epochs'])}, stopped by {t['stopped']}. Whole run: {m['total_seconds']:.0f} s.", "",
             "## Test metrics (mean ± 95% interval half-width)", "",
             "| model | " + " | ".join(PRIMARY) + " | ΔNDCG@10 driftrec − model (paired) |",
             "|---|" + "---|" * (len(PRIMARY) + 1)]
    for name, s in m["models"].items():
        d = m["paired_vs_baselines"].get(name, {}).get("NDCG@10")
        lines.append(f"| {name} | " + " | ".join(_fmt(s[k]) for k in PRIMARY) +
                     f" | {_fmt(d) if d else '-'} |")
    if m.get("best_baseline"):
        d = m["paired_vs_best_baseline"]["NDCG@10"]
        best = m["models"][m["best_baseline"]]["NDCG@10"]["mean"]
        ratio = m["models"]["driftrec"]["NDCG@10"]["mean"] / best if best > 0 else float("nan")
        lo = d["mean"] - d["ci95"]
        lines += ["", f"Best baseline: {m['best_baseline']}. driftrec / best = {ratio:.3f}x NDCG@10; paired "
                  f"difference {_fmt(d)} (interval {'excludes' if lo > 0 else 'does not exclude'} a loss)."]
    if "c_library" in m:
        lines += ["", "## The exported int8 model through the C library", "",
                  "| path | " + " | ".join(PRIMARY) + " | Δ NDCG@10 vs PyTorch fp32 (paired) | seconds |",
                  "|---|" + "---|" * (len(PRIMARY) + 2)]
        for mode, v in m["c_library"].items():
            lines.append(f"| C {mode} | " + " | ".join(_fmt(v["metrics"][k]) for k in PRIMARY) +
                         f" | {_fmt(v['paired_vs_fp32']['NDCG@10'])} | {v['seconds']} |")
        lines.append("")
        lines.append("MRR of the ANN path counts targets outside the returned top 20 as rank 10^9.")
    if "interest_shift" in m:
        s = m["interest_shift"]
        lines += ["", "## After an interest shift (demo shop ground truth)", "",
                  f"{s['users']} users whose interest moved before their last event. Next-category "
                  f"accuracy (the most frequent category of the top-10 recommendations is the next item's category), against static pooling (plain mean of the same item vectors):", "",
                  "| model | accuracy | ratio to static pooling |", "|---|---|---|"]
        static = s["models"]["pool-mean"]["mean"]
        for name, v in s["models"].items():
            ratio = f"{v['mean'] / static:.2f}x" if static > 0 else "n/a (static pooling 0)"
            lines.append(f"| {name} | {_fmt(v)} | {ratio} |")
    if t["epochs"]:
        lines += ["", "## Epochs", "", "| epoch | loss | val NDCG@10 | val HR@10 | seconds |", "|---|---|---|---|---|"]
        for e in t["epochs"]:
            lines.append(f"| {e['epoch']} | {e['train_loss']:.4f} | {e['val_ndcg10']:.4f} | {e['val_hr10']:.4f} | "
                         f"{e['seconds']} |")
    if images:
        lines += [""] + [f"![{Path(i).stem}]({i})" for i in images]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
