"""`make bench-models`: driftrec's BERT-mini encoder and interest model against ONNX Runtime and
PyTorch, one thread, same weights, one table.

    /usr/bin/python3 bench/models/run.py [--build build] [--isas avx512vnni,avx2] [--rounds 3]
                                         [--quick]

1. gen_models.py writes the models and inputs into BUILD/bench/models/data (once per seed).
2. Every round runs, pinned to core 0 where taskset exists, one after the other:
   models_bench once per driftrec ISA (DR_ISA_MAX caps the kernels' dispatch),
   ort_bench.js (onnxruntime-node as installed, then with the no_amx shim preloaded so that
   its int8 products use AVX-512 VNNI instead of AMX tiles), torch_bench.py.
   Each harness reports medians of many calls (driftrec: thread CPU time over Google Benchmark
   repetitions; the peers: process CPU time per call); a row's figure is the median over the
   rounds, so that slow spells of this shared machine fall on every implementation alike.
3. Cosine of every output vector against PyTorch fp32 (the minimum over the batch), the
   speed-up of driftrec int8 over each row (row ms / driftrec int8 ms, per driftrec ISA), the
   goals, and BUILD/bench/models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import gen_models  # noqa: E402
from driftrec_train import safetensors_io  # noqa: E402

OPS_PER_CYCLE = {"avx2": 64, "avx512": 128, "avx512vnni": 256}  # int8 peak (docs/kernels.md)
WEAK_OPENBLAS_CORES = {"Prescott", "Katmai", "Core2", "Penryn", "Dunnington", "Nehalem",
                       "Atom", "Barcelona"}


def cpu_flags() -> set[str]:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_env(notes: list[str]) -> dict[str, str]:
    """OpenBLAS 0.3.21 (Debian 12) takes some newer CPUs for a Prescott and runs its SSE3
    kernels, several times slower; name the core it should use, as a user would."""
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    flags = cpu_flags()
    want = ("Cooperlake" if {"avx512f", "avx512_bf16"} <= flags else
            "SkylakeX" if {"avx512f", "avx512bw", "avx512vl"} <= flags else
            "Haswell" if "avx2" in flags else "")
    given = os.environ.get("OPENBLAS_CORETYPE")
    if given:
        notes.append(f"OpenBLAS core: OPENBLAS_CORETYPE={given} (given)")
        if want and given.lower() != want.lower():
            # A core type below the CPU's (Haswell kernels on an AVX-512 host) slows the peer:
            # measured here 3.5x on the interest model at batch 1.
            notes.append(f"WARNING: this CPU runs OpenBLAS's {want} kernels; the given "
                         f"{given} may handicap the PyTorch peer (unset OPENBLAS_CORETYPE "
                         f"to let the driver choose)")
        return env
    probe = subprocess.run([sys.executable, "-c", "import numpy as n; n.ones((4,4)) @ n.ones((4,4))"],
                           env={**os.environ, "OPENBLAS_VERBOSE": "2"}, capture_output=True,
                           text=True)
    core = next((ln.split(":", 1)[1].strip() for ln in (probe.stdout + probe.stderr).splitlines()
                 if ln.startswith("Core:")), "")
    if core in WEAK_OPENBLAS_CORES and want:
        env["OPENBLAS_CORETYPE"] = want
        notes.append(f"OpenBLAS core: detected {core} on this CPU; the PyTorch peer runs with "
                     f"OPENBLAS_CORETYPE={want}")
    else:
        notes.append(f"OpenBLAS core: {core or 'unknown (not OpenBLAS?)'}")
    return env


def pin() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") else []


def run(cmd: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if p.returncode not in (0, 3):
        sys.stderr.write(p.stdout + p.stderr)
        print(f"bench-models: {what} failed (exit {p.returncode})", file=sys.stderr)
    return p


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(c.min())


def bert_linear_ops(cfg: dict, seq: int) -> float:
    """int8 multiply-add ops (2 per MAC) of the linear layers for one sequence."""
    h, i, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    return 2.0 * seq * layers * (4 * h * h + 2 * h * i) + 2.0 * h * cfg["projection_dim"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--isas", default="", help="driftrec ISAs (default: the native one, avx2)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one round, fewer repetitions")
    args = ap.parse_args()
    if args.quick:
        args.rounds = 1
    build = Path(args.build)
    data = build / "bench" / "models" / "data"
    work = build / "bench" / "models" / "out"
    work.mkdir(parents=True, exist_ok=True)
    json_out = build / "bench" / "models.json"
    notes: list[str] = []

    if gen_models.ensure(data):
        print(f"bench-models: wrote models and inputs into {data}")
    expected = safetensors_io.read(data / "expected.safetensors")

    bench_bin = build / "bench" / "models" / "models_bench"
    if not bench_bin.exists():
        print(f"bench-models: {bench_bin} missing (make build; needs libbenchmark-dev)",
              file=sys.stderr)
        return 1
    isas = [s for s in args.isas.split(",") if s]
    if not isas:
        isas = ["native", "avx2"] if "avx2" in cpu_flags() else ["native"]
    no_amx = build / "bench" / "models" / "libdr_bench_no_amx.so"
    node = shutil.which("node")
    ort_js = HERE / "ort_bench.js"
    blas_env = openblas_env(notes)
    q_gb = ["--benchmark_repetitions=5", "--benchmark_min_time=0.05"] if args.quick else []
    q_peer = ["--reps", "10", "--min-s", "0.3"] if args.quick else []

    samples: dict[tuple, list[dict]] = {}
    meta: dict[str, dict] = {}
    skips: list[str] = []
    for rnd in range(args.rounds):
        print(f"bench-models: round {rnd + 1}/{args.rounds}", file=sys.stderr)
        for isa in isas:
            tag = f"driftrec-{isa}"
            env = {} if isa == "native" else {"DR_ISA_MAX": isa}
            out = work / f"{tag}.json"
            p = run(pin() + [str(bench_bin), str(data), str(out)] + q_gb, env, tag)
            if p.returncode != 0:
                return 1
            d = json.loads(out.read_text())
            meta.setdefault("driftrec", {})[d["isa"]] = {k: d[k] for k in ("isa", "gemm_s8_tile",
                                                                           "cpu", "ghz")}
            for r in d["rows"]:
                samples.setdefault((r["model"], r["batch"], r["impl"], r["isa"]), []).append(r)
        if not node:
            if rnd == 0:
                skips.append("SKIP: ONNX Runtime peer: node not found (Node.js >= 18 and npm: "
                             "apt-get install nodejs npm; then make bench-deps)")
        else:
            variants = [("as installed", {}, "")]
            if no_amx.exists():
                variants.append(("no AMX", {"LD_PRELOAD": str(no_amx.resolve()),
                                            "DR_NO_AMX_REPORT": "1"}, "-noamx"))
            for label, env, suffix in variants:
                out = work / f"ort{suffix}.json"
                p = run(pin() + [node, str(ort_js), str(data), str(out)] + q_peer, env,
                        f"ort_bench ({label})")
                if p.returncode == 3:
                    if rnd == 0:
                        skips.append(p.stdout.strip())
                    break
                if p.returncode != 0:
                    continue
                if suffix and "no_amx: refused" in p.stderr:
                    meta["ort_wanted_amx"] = True
                for line in p.stdout.splitlines():
                    if line.startswith("SKIP") and rnd == 0:
                        skips.append(line)
                d = json.loads(out.read_text())
                meta["ort"] = {"runtime": d["runtime"], "node": d["node"]}
                for r in d["rows"]:
                    if suffix and r["impl"] == "ort-fp32":
                        continue  # AMX has no fp32 products: the same kernels either way
                    r = {**r, "impl": r["impl"] + suffix}
                    samples.setdefault((r["model"], r["batch"], r["impl"], "-"), []).append(r)
        out = work / "torch.json"
        p = run(pin() + [sys.executable, str(HERE / "torch_bench.py"), str(data), str(out)] +
                q_peer, blas_env, "torch_bench")
        if p.returncode == 0:
            d = json.loads(out.read_text())
            meta["torch"] = {"torch": d["torch"], "blas": d["blas"]}
            for r in d["rows"]:
                samples.setdefault((r["model"], r["batch"], r["impl"], "-"), []).append(r)

    # One row per (model, batch, impl, isa): medians over rounds, cosine of the last output.
    rows = []
    for (model, batch, impl, isa), rs in samples.items():
        got = np.fromfile(work / rs[-1]["output"], np.float32).reshape(batch, -1)
        ref = expected["bert" if model == "bert-mini" else "interest"][:batch]
        rows.append(dict(model=model, batch=batch, impl=impl, isa=isa,
                         cpu_ms=statistics.median(r["cpu_ms"] for r in rs),
                         wall_ms=statistics.median(r["wall_ms"] for r in rs),
                         cpu_ms_rounds=[r["cpu_ms"] for r in rs],
                         cosine_min=cosine_min(got, ref)))
    order = {"driftrec-int8": 0, "driftrec-fp32": 1, "ort-int8-w7": 2, "ort-int8-w8": 3,
             "ort-int8-w7-noamx": 4, "ort-int8-w8-noamx": 5, "ort-fp32": 6,
             "pytorch-dyn-int8": 7, "pytorch-fp32": 8}
    rows.sort(key=lambda r: (r["model"] != "bert-mini", r["batch"], order.get(r["impl"], 99),
                             r["isa"] != "avx512vnni", r["isa"]))
    d_isas = sorted({r["isa"] for r in rows if r["impl"] == "driftrec-int8"},
                    key=lambda s: -OPS_PER_CYCLE.get(s, 0))
    base = {(r["model"], r["batch"], r["isa"]): r["cpu_ms"] for r in rows
            if r["impl"] == "driftrec-int8"}
    for r in rows:
        r["speedup"] = {i: r["cpu_ms"] / base[(r["model"], r["batch"], i)] for i in d_isas
                        if (r["model"], r["batch"], i) in base}

    seq = int(gen_models.SEQ_LEN)
    ops_seq = bert_linear_ops(gen_models.BERT_CONFIG, seq)
    for r in rows:
        if r["model"] == "bert-mini" and r["impl"] == "driftrec-int8":
            ghz = meta["driftrec"][r["isa"]]["ghz"]
            ops = ops_seq * r["batch"]
            r["pct_peak"] = 100 * ops / (r["cpu_ms"] / 1e3) / (OPS_PER_CYCLE[r["isa"]] * ghz * 1e9)
            r["pct_avx2_peak"] = 100 * ops / (r["cpu_ms"] / 1e3) / (64 * ghz * 1e9)

    # The table.
    ghz = next(iter(meta.get("driftrec", {}).values()), {}).get("ghz", 0)
    cpu = next(iter(meta.get("driftrec", {}).values()), {}).get("cpu", "")
    print(f"\nbench-models: one thread, pinned to core 0; cpu \"{cpu}\", clock {ghz:.2f} GHz "
          f"(measured); {args.rounds} round(s), each figure the median over rounds of each "
          "harness's median CPU time per call")
    for k, v in sorted(meta.get("driftrec", {}).items(), key=lambda kv: -OPS_PER_CYCLE.get(kv[0], 0)):
        print(f"  driftrec {k}: int8 GEMM tile {v['gemm_s8_tile']}")
    if "ort" in meta:
        amx = ("requests AMX tiles at start-up (its int8 products then run on AMX); the -noamx "
               "rows refuse that request, leaving AVX-512 VNNI" if meta.get("ort_wanted_amx")
               else "did not ask for AMX")
        print(f"  {meta['ort']['runtime']} on Node.js {meta['ort']['node']}: {amx}")
    if "torch" in meta:
        print(f"  PyTorch {meta['torch']['torch']}, BLAS {meta['torch']['blas']}")
    for n in notes:
        print(f"  {n}")
    for s in skips:
        print(s)
    sp_cols = [f"x vs {i}" for i in d_isas]
    hdr = (f"{'model':<10} {'batch':>5} {'implementation':<18} {'isa':<10} {'cpu ms':>9} "
           f"{'wall ms':>9} {'cos vs fp32':>11} " + " ".join(f"{c:>14}" for c in sp_cols))
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        sp = " ".join(f"{r['speedup'].get(i, float('nan')):>14.2f}" for i in d_isas)
        extra = f"  {r['pct_peak']:.0f}% of {r['isa']} peak" if "pct_peak" in r else ""
        print(f"{r['model']:<10} {r['batch']:>5} {r['impl']:<18} {r['isa']:<10} "
              f"{r['cpu_ms']:>9.3f} {r['wall_ms']:>9.3f} {r['cosine_min']:>11.6f} {sp}{extra}")
    print("x vs ISA: this row's CPU ms / driftrec int8's (that ISA) on the same model and batch; "
          "above 1: driftrec faster")

    # Goals (the issue's): against ONNX Runtime int8 with 7-bit weights (the variant that is
    # correct on AVX2) and PyTorch fp32 on the LSTM.
    goals = []

    def find(model, batch, impl):
        return next((r for r in rows if (r["model"], r["batch"], r["impl"]) ==
                     (model, batch, impl)), None)

    for i in d_isas:
        for peer in ("ort-int8-w7", "ort-int8-w7-noamx"):
            r1, r16 = find("bert-mini", 1, peer), find("bert-mini", 16, peer)
            if r1:
                s = r1["speedup"][i]
                goals.append(dict(goal=f"bert-mini b1 >= 2x {peer}", isa=i, value=s, met=s >= 2))
            if r16:
                s = r16["speedup"][i]
                d16 = next(r for r in rows if r["impl"] == "driftrec-int8" and r["batch"] == 16
                           and r["model"] == "bert-mini" and r["isa"] == i)
                met = s >= 1.5 or d16["pct_avx2_peak"] >= 80
                goals.append(dict(goal=f"bert-mini b16 >= 1.5x {peer} or >= 80% int8 peak (AVX2)",
                                  isa=i, value=s, pct_avx2_peak=d16["pct_avx2_peak"], met=met))
        r = find("interest", 1, "pytorch-fp32")
        if r:
            s = r["speedup"][i]
            goals.append(dict(goal="interest b1 >= 10x pytorch-fp32", isa=i, value=s, met=s >= 10))
    print("\ngoals:")
    for g in goals:
        extra = (f", {g['pct_avx2_peak']:.0f}% of the AVX2 int8 peak"
                 if "pct_avx2_peak" in g else "")
        print(f"  [{'met' if g['met'] else 'MISSED'}] {g['goal']} ({g['isa']}): "
              f"{g['value']:.2f}x{extra}")
    floor_ms = ops_seq / (64 * ghz * 1e9) * 1e3 if ghz else 0
    print(f"  (the linear layers' int8 work is {ops_seq / 1e6:.0f} M ops per 64-token sequence: "
          f"{floor_ms:.2f} ms at the AVX2 int8 peak of this clock, "
          f"{floor_ms / 4:.2f} ms at the AVX-512 VNNI peak)")

    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps({"meta": meta, "notes": notes, "skips": skips,
                                    "rounds": args.rounds, "rows": rows, "goals": goals},
                                   indent=1))
    print(f"wrote {json_out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
