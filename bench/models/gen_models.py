"""The models and inputs `make bench-models` times, all from one seed.

Writes into OUT (default build/bench/models):

  bert-mini-fp32/, bert-mini-int8/   driftrec model files (export.py) of one random BERT-mini:
                                     vocabulary 30522, 4 layers, hidden 256, 4 heads, FFN 1024,
                                     mean pooling, projection to 128
  bert-mini-fp32.onnx                the same weights through torch.onnx.export
  bert-mini-int8-w8.onnx             dynamic quantisation of every linear layer, 8-bit weights
  bert-mini-int8-w7.onnx             the same with 7-bit weights (driftrec's codes and scales)
  interest-fp32/, interest-int8/     one random interest model: item_dim 128, LSTM 2 x 256
  inputs.safetensors                 16 token sequences of 64 ids ("bert_ids", I32 [16, 64]) and
                                     8 users of 64 events each (golden.flatten_users' tensors)
  expected.safetensors               PyTorch fp32 outputs: "bert" [16, 128], "interest" [8, 128]

The int8 ONNX graphs use the pattern ONNX Runtime's own dynamic quantiser writes and fuses:
x -> DynamicQuantizeLinear (u8, per tensor) -> MatMulInteger with int8 weights (symmetric, one
scale per output channel) -> Cast -> Mul by x_scale * w_scale -> the layer's bias Add.

A stamp (seed + the sources' modification times) skips regeneration when nothing changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "models" / "train"))

from driftrec_train import bert as bert_mod  # noqa: E402
from driftrec_train import export, golden, safetensors_io  # noqa: E402
from driftrec_train import interest as interest_mod  # noqa: E402

SEED = 20240901
BERT_CONFIG = dict(vocab_size=30522, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                   intermediate_size=1024, max_position_embeddings=512, pooling="mean",
                   projection_dim=128)
SEQ_LEN, BERT_BATCH = 64, 16
N_EVENTS, INTEREST_BATCH = 64, 8


def bert_model(seed: int) -> bert_mod.TextEncoder:
    g = torch.Generator().manual_seed(seed)
    model = bert_mod.TextEncoder(bert_mod.BertConfig(**BERT_CONFIG)).eval()
    bert_mod.random_init(model, g)
    return model


def interest_model(seed: int) -> interest_mod.InterestModel:
    g = torch.Generator().manual_seed(seed + 1)
    cfg = interest_mod.InterestConfig(item_dim=128, hidden_size=256, num_layers=2,
                                      half_life_s=2 * 86400.0, max_events=N_EVENTS)
    model = interest_mod.InterestModel(cfg).eval()
    interest_mod.random_init(model, g)
    return model


def bert_ids(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 2)
    ids = torch.randint(5, BERT_CONFIG["vocab_size"], (BERT_BATCH, SEQ_LEN), generator=g)
    ids[:, 0] = 2   # [CLS]
    ids[:, -1] = 3  # [SEP]
    return ids


def export_onnx(model: bert_mod.TextEncoder, path: Path) -> None:
    ids = bert_ids(SEED)[:2]
    lens = torch.full((2,), SEQ_LEN, dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(model, (ids, lens), str(path), input_names=["input_ids", "lengths"],
                          output_names=["vector"], opset_version=14, do_constant_folding=True,
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "lengths": {0: "batch"},
                                        "vector": {0: "batch"}})


def quantize_onnx(src: Path, dst: Path, qmax: int) -> int:
    """Rewrites every MatMul/Gemm with a constant 2-D weight into the dynamic-quantisation
    pattern; weights symmetric per output channel with codes in [-qmax, qmax].  Returns the
    number of layers rewritten."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src))
    graph = m.graph
    inits = {t.name: t for t in graph.initializer}
    nodes, n_quant = [], 0
    for node in graph.node:
        w_name = node.input[1] if len(node.input) > 1 else None
        is_mm = node.op_type == "MatMul" and w_name in inits
        is_gemm = node.op_type == "Gemm" and w_name in inits
        if not (is_mm or is_gemm):
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        w = numpy_helper.to_array(inits[w_name]).astype(np.float32)
        if w.ndim != 2 or (is_gemm and (attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0
                                        or attrs.get("beta", 1.0) != 1.0)):
            nodes.append(node)
            continue
        if is_gemm and attrs.get("transB", 0):
            w = w.T  # to [in][out], as MatMul wants it
        # driftrec's quantiser (export.quantize_weight) works on [out][in] rows.
        q, scale = export.quantize_weight(np.ascontiguousarray(w.T), qmax)
        p = f"{node.name or w_name}_q{qmax}"
        graph.initializer.extend([
            numpy_helper.from_array(np.ascontiguousarray(q.T), p + "_w"),
            numpy_helper.from_array(scale.astype(np.float32), p + "_wscale"),
        ])
        x = node.input[0]
        out = node.output[0]
        nodes += [
            helper.make_node("DynamicQuantizeLinear", [x], [p + "_xq", p + "_xs", p + "_xzp"],
                             name=p + "_dql"),
            helper.make_node("MatMulInteger", [p + "_xq", p + "_w", p + "_xzp"], [p + "_acc"],
                             name=p + "_mmi"),
            helper.make_node("Cast", [p + "_acc"], [p + "_accf"], to=TensorProto.FLOAT,
                             name=p + "_cast"),
            helper.make_node("Mul", [p + "_xs", p + "_wscale"], [p + "_s"], name=p + "_scale"),
        ]
        if is_gemm and len(node.input) > 2 and node.input[2]:
            nodes += [helper.make_node("Mul", [p + "_accf", p + "_s"], [p + "_y"],
                                       name=p + "_mul"),
                      helper.make_node("Add", [p + "_y", node.input[2]], [out], name=p + "_bias")]
        else:
            nodes.append(helper.make_node("Mul", [p + "_accf", p + "_s"], [out], name=p + "_mul"))
        n_quant += 1
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return n_quant


def generate(out: Path) -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    bert = bert_model(SEED)
    vocab = out / "bert-vocab.txt"
    golden.write_vocab(vocab, BERT_CONFIG["vocab_size"])
    for dtype in ("fp32", "int8"):
        export.export_bert(bert, out / f"bert-mini-{dtype}", dtype=dtype, name="bert-mini-bench",
                           version=f"bench-{SEED}", vocab=vocab)
    ids = bert_ids(SEED)
    lens = torch.full((BERT_BATCH,), SEQ_LEN, dtype=torch.int64)

    interest = interest_model(SEED)
    for dtype in ("fp32", "int8"):
        export.export_interest(interest, out / f"interest-{dtype}", dtype=dtype,
                               name="interest-bench", version=f"bench-{SEED}")
    rng = np.random.default_rng(SEED + 3)
    users = golden.random_users(interest.config, [N_EVENTS] * INTEREST_BATCH, rng)
    with torch.no_grad():
        expected_bert = bert(ids, lens).numpy().astype(np.float32)
        expected_interest = interest(users).numpy().astype(np.float32)
    tensors = {"bert_ids": ids.numpy().astype(np.int32)}
    tensors.update(golden.flatten_users(users, interest.config.item_dim))
    safetensors_io.write(out / "inputs.safetensors", tensors)
    safetensors_io.write(out / "expected.safetensors",
                         {"bert": expected_bert, "interest": expected_interest})

    onnx_fp32 = out / "bert-mini-fp32.onnx"
    export_onnx(bert, onnx_fp32)
    try:
        import onnx  # noqa: F401
    except ImportError:
        print("gen_models: python3-onnx missing: no int8 ONNX models "
              "(make bench-deps installs it)", file=sys.stderr)
        return
    for bits, qmax in ((8, 127), (7, 63)):
        n = quantize_onnx(onnx_fp32, out / f"bert-mini-int8-w{bits}.onnx", qmax)
        print(f"gen_models: bert-mini-int8-w{bits}.onnx: {n} linear layers quantised")


def stamp_text() -> str:
    here = Path(__file__).resolve()
    src = [here] + [Path(export.__file__).parent / f for f in
                    ("bert.py", "interest.py", "export.py", "golden.py", "safetensors_io.py")]
    try:
        import onnx
        onnx_v = onnx.__version__
    except ImportError:
        onnx_v = "none"
    return f"{SEED} torch {torch.__version__} onnx {onnx_v} " + " ".join(
        str(p.stat().st_mtime_ns) for p in src)


def ensure(out: Path) -> bool:
    """Generates into out unless its stamp matches; True if it generated."""
    stamp = out / "models.stamp"
    text = stamp_text()
    if stamp.exists() and stamp.read_text() == text:
        return False
    generate(out)
    stamp.write_text(text)
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/bench/models")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    if args.force:
        generate(out)
        (out / "models.stamp").write_text(stamp_text())
    elif not ensure(out):
        print(f"gen_models: {out} up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
