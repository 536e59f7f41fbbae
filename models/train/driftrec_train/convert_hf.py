"""Imports a standard Hugging Face BERT checkpoint into a driftrec model directory.

    /usr/bin/python3 -m driftrec_train.convert_hf HF_DIR OUT_DIR [--dtype int8|fp32]
        [--pooling cls|mean] [--name NAME] [--version V]

HF_DIR holds config.json, vocab.txt (and optionally tokenizer_config.json for
do_lower_case; default true, as BERT's) and the weights as model.safetensors or
pytorch_model.bin. What real checkpoints contain, and what is done with it:

* names with or without the ``bert.`` prefix (BertModel vs BertFor* checkpoints);
* the old LayerNorm names ``gamma`` / ``beta`` (TF-converted checkpoints) for ``weight`` /
  ``bias``;
* F32, F16 and BF16 tensors (all become F32; int8 export quantises from those);
* the ``embeddings.position_ids`` buffer (dropped: positions are 0..len-1);
* tied weights missing from the file: safetensors files written by ``save_pretrained`` keep
  one name per shared tensor, so the word embeddings may only be present as
  ``cls.predictions.decoder.weight``;
* heads (``cls.*``) and the pooler are not used: pooling is [CLS]'s hidden state or the mean.

``.bin`` files are read with ``torch.load(weights_only=True)``, which refuses pickled code.
Only BERT's exact GELU and absolute positions are accepted; anything else is refused by name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from . import bert as bert_mod
from . import export, safetensors_io


class ConvertError(ValueError):
    pass


def read_checkpoint(hf_dir: Path) -> dict[str, np.ndarray]:
    """Tensors of model.safetensors or pytorch_model.bin as float32 numpy arrays."""
    st = hf_dir / "model.safetensors"
    pt = hf_dir / "pytorch_model.bin"
    if st.exists():
        raw = safetensors_io.read(st)
    elif pt.exists():
        state = torch.load(pt, map_location="cpu", weights_only=True)
        raw = {k: v.detach().float().numpy() for k, v in state.items()}
    else:
        raise ConvertError(f"{hf_dir}: no model.safetensors or pytorch_model.bin")
    return {k: np.asarray(v) for k, v in raw.items()}


def normalise_names(raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HF names -> this package's names (``bert.`` prefix, weight/bias LayerNorms)."""
    out: dict[str, np.ndarray] = {}
    for name, value in raw.items():
        n = name
        if n.endswith("position_ids"):
            continue
        if n.startswith("cls.") or n.startswith("pooler.") or n.startswith("bert.pooler."):
            continue
        if n.endswith(".gamma"):
            n = n[: -len(".gamma")] + ".weight"
        elif n.endswith(".beta"):
            n = n[: -len(".beta")] + ".bias"
        if not n.startswith("bert."):
            n = "bert." + n
        if n in out:
            raise ConvertError(f"{name}: named twice after normalisation ({n})")
        out[n] = np.asarray(value, dtype=np.float32)
    word = "bert.embeddings.word_embeddings.weight"
    if word not in out:
        for tied in ("cls.predictions.decoder.weight", "bert.cls.predictions.decoder.weight"):
            if tied in raw:
                out[word] = np.asarray(raw[tied], dtype=np.float32)
                break
    return out


def config_from_hf(hf: dict, pooling: str) -> bert_mod.BertConfig:
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise ConvertError(f"config.json: hidden_act {act!r}: only BERT's exact 'gelu' runs")
    pos = hf.get("position_embedding_type", "absolute")
    if pos != "absolute":
        raise ConvertError(f"config.json: position_embedding_type {pos!r} is not supported")
    try:
        return bert_mod.BertConfig(
            vocab_size=int(hf["vocab_size"]), hidden_size=int(hf["hidden_size"]),
            num_hidden_layers=int(hf["num_hidden_layers"]),
            num_attention_heads=int(hf["num_attention_heads"]),
            intermediate_size=int(hf["intermediate_size"]),
            max_position_embeddings=int(hf.get("max_position_embeddings", 512)),
            type_vocab_size=int(hf.get("type_vocab_size", 2)),
            layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)), pooling=pooling)
    except KeyError as e:
        raise ConvertError(f"config.json: missing {e.args[0]}") from None


def load_hf(hf_dir: str | Path, pooling: str = "cls") -> tuple[bert_mod.TextEncoder, bool]:
    """The checkpoint as a TextEncoder (strict: every parameter present, shapes equal) and
    its do_lower_case."""
    hf_dir = Path(hf_dir)
    cfg = config_from_hf(json.loads((hf_dir / "config.json").read_text()), pooling)
    model = bert_mod.TextEncoder(cfg)
    tensors = normalise_names(read_checkpoint(hf_dir))
    want = model.state_dict()
    missing = [k for k in want if k not in tensors]
    if missing:
        raise ConvertError(f"{hf_dir}: missing tensor {missing[0]}"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    for k, v in want.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ConvertError(f"{k}: shape {'x'.join(map(str, tensors[k].shape))}, "
                               f"expected {'x'.join(map(str, v.shape))}")
    model.load_state_dict({k: torch.from_numpy(tensors[k].copy()) for k in want})
    lower = True
    tc = hf_dir / "tokenizer_config.json"
    if tc.exists():
        lower = bool(json.loads(tc.read_text()).get("do_lower_case", True))
    return model.eval(), lower


def convert(hf_dir: str | Path, out_dir: str | Path, *, dtype: str = "int8",
            pooling: str = "cls", name: str | None = None, version: str = "1") -> Path:
    hf_dir = Path(hf_dir)
    model, lower = load_hf(hf_dir, pooling)
    vocab = hf_dir / "vocab.txt"
    if not vocab.exists():
        raise ConvertError(f"{hf_dir}: no vocab.txt")
    n_vocab = sum(1 for _ in vocab.open("rb"))
    if n_vocab < model.config.vocab_size:
        raise ConvertError(f"vocab.txt: {n_vocab} tokens, the embeddings have "
                           f"{model.config.vocab_size}")
    return export.export_bert(model, out_dir, dtype=dtype, name=name or hf_dir.name,
                              version=version, vocab=vocab, do_lower_case=lower)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Hugging Face BERT -> driftrec model directory")
    ap.add_argument("hf_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--dtype", choices=("int8", "fp32"), default="int8")
    ap.add_argument("--pooling", choices=("cls", "mean"), default="cls")
    ap.add_argument("--name")
    ap.add_argument("--version", default="1")
    args = ap.parse_args(argv)
    try:
        out = convert(args.hf_dir, args.out_dir, dtype=args.dtype, pooling=args.pooling,
                      name=args.name, version=args.version)
    except (ConvertError, safetensors_io.SafetensorsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
