"""The PyTorch peer of `make bench-models`: the same random models, fp32, one thread.

    /usr/bin/python3 bench/models/torch_bench.py DATA_DIR OUT_JSON [--reps N] [--min-s S]

Rebuilds the models from gen_models' seed (their outputs are checked against
DATA_DIR/expected.safetensors first) and times, under torch.inference_mode():

  bert-mini  pytorch-fp32       TextEncoder on B sequences of 64 tokens
             pytorch-dyn-int8   the same after torch.ao.quantization.quantize_dynamic on every
                                nn.Linear (fbgemm, 8-bit weights): orientation only
  interest   pytorch-fp32       the whole model for B users of 64 events as one batch:
                                features -> nn.LSTM (2 x 256) -> long-term mean -> gate.  The
                                per-event Python feature preparation (gap buckets, numeric
                                normalisation) is done once, outside the timing, so PyTorch is
                                timed on tensor work only

Each measurement is one call: process CPU time (all threads; torch.set_num_threads(1) and
OPENBLAS_NUM_THREADS=1 keep it to one) and wall time; after warm-up, at least N calls and S
seconds; medians.  Outputs go next to OUT_JSON as raw float32.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_models  # noqa: E402
from driftrec_train import safetensors_io  # noqa: E402  (gen_models put it on sys.path)


def timeit(fn, reps: int, min_s: float) -> tuple[float, float, int]:
    for _ in range(3):
        fn()
    cpu, wall = [], []
    start = time.perf_counter()
    while len(cpu) < reps or time.perf_counter() - start < min_s:
        c0, w0 = time.process_time_ns(), time.perf_counter_ns()
        fn()
        w1, c1 = time.perf_counter_ns(), time.process_time_ns()
        cpu.append((c1 - c0) / 1e6)
        wall.append((w1 - w0) / 1e6)
        if len(cpu) >= 10 * reps:
            break
    return statistics.median(cpu), statistics.median(wall), len(cpu)


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(c.min())


def interest_batched(model, x: dict[str, torch.Tensor]) -> torch.Tensor:
    """InterestModel.forward for users of equal length, as one batch ([B, T, ...] inputs)."""
    f = model.features
    e = x["item"] + x["text"] + f.event_type(x["type"]) + f.gap_bucket(x["gap"]) \
        + f.numeric(x["num"])
    out, _ = model.lstm(e)
    h = out[:, -1]
    ts = x["ts"]
    w = torch.exp2(-(ts[:, -1:] - ts) / model.config.half_life_s)  # float64, as the model
    long = ((w[..., None] * x["item"].double()).sum(1) / w.sum(1, keepdim=True)).float()
    return model.fuse_vectors(h, long)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("out_json")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--min-s", type=float, default=1.0)
    ap.add_argument("--bert-batches", default="1,16")
    ap.add_argument("--interest-batches", default="1,8")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    data, out_json = Path(args.data), Path(args.out_json)
    out_dir = out_json.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = safetensors_io.read(data / "inputs.safetensors")
    expected = safetensors_io.read(data / "expected.safetensors")
    rows = []

    def record(model, batch, impl, fn, out):
        cpu, wall, n = timeit(fn, args.reps, args.min_s)
        name = f"{impl}-{model}-b{batch}.f32"
        np.ascontiguousarray(out, np.float32).tofile(out_dir / name)
        rows.append(dict(model=model, batch=batch, impl=impl, cpu_ms=cpu, wall_ms=wall, n=n,
                         output=name))
        print(".", end="", file=sys.stderr, flush=True)

    bert = gen_models.bert_model(gen_models.SEED)
    ids_all = torch.from_numpy(inputs["bert_ids"].astype(np.int64))
    with torch.inference_mode():
        full = bert(ids_all, torch.full((ids_all.shape[0],), ids_all.shape[1]))
    if cosine_min(full.numpy(), expected["bert"]) < 0.999999:
        print("torch_bench: the rebuilt BERT does not match expected.safetensors "
              "(regenerate: gen_models.py --force)", file=sys.stderr)
        return 1
    bert_q = torch.ao.quantization.quantize_dynamic(bert, {torch.nn.Linear}, dtype=torch.qint8)
    for impl, m in (("pytorch-fp32", bert), ("pytorch-dyn-int8", bert_q)):
        for b in map(int, args.bert_batches.split(",")):
            ids = ids_all[:b].contiguous()
            lens = torch.full((b,), ids.shape[1])
            with torch.inference_mode():
                out = m(ids, lens).numpy()
                record("bert-mini", b, impl, lambda m=m, ids=ids, lens=lens: m(ids, lens), out)

    im = gen_models.interest_model(gen_models.SEED)
    lens = inputs["lengths"]
    t = int(lens[0])
    if not (lens == t).all():
        print("torch_bench: the interest users must all have the same length", file=sys.stderr)
        return 1
    # The users gen_models wrote (same generator, same seed), as InterestModel's inputs.
    rng = np.random.default_rng(gen_models.SEED + 3)
    uev = gen_models.golden.random_users(im.config, [t] * len(lens), rng)
    users = [im.event_inputs(u) for u in uev]
    with torch.inference_mode():
        ref = im(uev).numpy()
    if cosine_min(ref, expected["interest"]) < 0.999999:
        print("torch_bench: the rebuilt interest model does not match expected.safetensors",
              file=sys.stderr)
        return 1
    for b in map(int, args.interest_batches.split(",")):
        x = {k: torch.stack([u[k] for u in users[:b]]) for k in users[0]}
        with torch.inference_mode():
            out = interest_batched(im, x).numpy()
            record("interest", b, "pytorch-fp32", lambda x=x: interest_batched(im, x), out)
    print(file=sys.stderr)
    blas = "unknown"
    try:
        blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    except OSError:
        pass
    out_json.write_text(json.dumps({"torch": torch.__version__, "blas": os.path.basename(
        os.path.dirname(blas)), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
