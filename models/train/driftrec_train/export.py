"""Writes driftrec model files: manifest.json + model.safetensors (+ vocab.txt).

The format is specified in models/model_file.h. ``dtype="int8"`` stores every linear layer's
weight in the pinned scheme (docs/int8-scheme.md, ``s8act-per-row/s7w-per-col/v1``): int8 in
[-63, 63] per output channel, ``scale = max|w| / 63`` and ``q = round_half_even(w / scale)``
in float32 — the same operations as the C quantiser ``dr_quantize_weights_s8``, so a model
quantised here and one quantised by the C loader hold the same bytes. The scales are stored
as ``<name>_scale`` (F32 [out]).

Calibration: the scheme has no static activation scales (each activation row gets its own
scale at run time), so there is nothing to calibrate beyond the weights' own max-abs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import torch

from . import bert as bert_mod
from . import interest as interest_mod
from . import safetensors_io

INT8_SCHEME = "s8act-per-row/s7w-per-col/v1"
WEIGHT_QMAX = 63


def quantize_weight(w: np.ndarray, qmax: int = WEIGHT_QMAX) -> tuple[np.ndarray, np.ndarray]:
    """Per output row (a torch Linear weight is [out][in]): int8 codes and float32 scales."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    scale = (np.abs(w).max(axis=1) / np.float32(qmax)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    q = np.rint(w / safe[:, None])
    q = np.where(scale[:, None] > 0, q, 0)
    return np.clip(q, -qmax, qmax).astype(np.int8), scale


def dequantize_weight(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * scale[:, None]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_model(out_dir: str | Path, *, architecture: str, config: dict,
                tensors: Mapping[str, np.ndarray], linear_weights: list[str], dtype: str,
                name: str, version: str, vocab: Optional[str | Path] = None,
                do_lower_case: bool = True, metadata: Optional[dict] = None) -> Path:
    """Writes one model directory and returns it. tensors are float32 numpy arrays."""
    if dtype not in ("fp32", "int8"):
        raise ValueError("dtype must be 'fp32' or 'int8'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = {}
    for k, v in tensors.items():
        v = np.asarray(v)
        store[k] = v.astype(np.float32) if v.dtype.kind == "f" else v
    if dtype == "int8":
        for k in linear_weights:
            q, s = quantize_weight(store[k])
            store[k] = q
            store[k + "_scale"] = s
    weights = out / "model.safetensors"
    safetensors_io.write(weights, store, metadata={"format": "driftrec", "dtype": dtype})
    manifest = {
        "format": "driftrec-model",
        "format_version": 1,
        "name": name,
        "version": version,
        "architecture": architecture,
        "config": config,
        "weights": {"file": weights.name, "sha256": sha256_file(weights), "dtype": dtype},
    }
    if dtype == "int8":
        manifest["int8"] = {
            "scheme": INT8_SCHEME, "weight_qmax": WEIGHT_QMAX, "scale_suffix": "_scale",
            "quantized": sorted(linear_weights),
            "calibration": "none: activation scales are per row at run time; weight scales "
                           "are max|w|/63 per output channel",
        }
    if vocab is not None:
        dst = out / "vocab.txt"
        if Path(vocab).resolve() != dst.resolve():
            shutil.copyfile(vocab, dst)
        manifest["vocab"] = {"file": "vocab.txt", "sha256": sha256_file(dst),
                             "do_lower_case": bool(do_lower_case)}
    if metadata:
        manifest["metadata"] = metadata
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def _state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}


def export_bert(model: bert_mod.TextEncoder, out_dir: str | Path, *, dtype: str = "int8",
                name: str = "bert", version: str = "1", vocab=None,
                do_lower_case: bool = True) -> Path:
    c = model.config
    tensors = {k: v for k, v in _state(model).items() if not k.endswith("position_ids")}
    return write_model(out_dir, architecture="bert-encoder", config=c.to_dict(), tensors=tensors,
                       linear_weights=bert_mod.linear_weight_names(c), dtype=dtype, name=name,
                       version=version, vocab=vocab, do_lower_case=do_lower_case)


def export_interest(model: interest_mod.InterestModel, out_dir: str | Path, *,
                    dtype: str = "int8", name: str = "interest", version: str = "1") -> Path:
    c = model.config
    return write_model(out_dir, architecture="interest-lstm", config=c.to_dict(),
                       tensors=_state(model), linear_weights=interest_mod.linear_weight_names(c),
                       dtype=dtype, name=name, version=version)


def read_model(model_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(manifest, float32 tensors) of a model directory, checksums checked; int8 weights come
    back dequantised (codes x scales) under their own names, without the scale tensors."""
    d = Path(model_dir)
    manifest = json.loads((d / "manifest.json").read_text())
    w = manifest["weights"]
    path = d / w["file"]
    if sha256_file(path) != w["sha256"]:
        raise ValueError(f"{path}: sha256 does not match the manifest")
    tensors = safetensors_io.read(path)
    if w["dtype"] == "int8":
        for k in list(tensors):
            if k + "_scale" in tensors:
                tensors[k] = dequantize_weight(tensors[k], tensors.pop(k + "_scale"))
    return manifest, {k: v.astype(np.float32) for k, v in tensors.items()}


def load_bert(model_dir: str | Path) -> bert_mod.TextEncoder:
    manifest, tensors = read_model(model_dir)
    model = bert_mod.TextEncoder(bert_mod.BertConfig.from_dict(manifest["config"]))
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
    return model.eval()
