#!/usr/bin/env python3
"""Pre-train the small BERT text encoder with masked-language modelling (or import a Hugging
Face checkpoint), export it int8 and check it against the C encoder.

    /usr/bin/python3 models/train/pretrain_text.py --out DIR --vocab VOCAB.txt
        [--do-lower-case | --no-lower-case] [--texts FILE | --datasets a,b] [--minutes 3]
        [--config JSON] [--threads N] [--hf-checkpoint HF_DIR [--pooling mean|cls]]
        [--dtype int8|fp32] [--encoder-bin PATH] [--check N] [--no-progress]

Writes DIR/mlm_log.jsonl, DIR/mlm_ckpt.pt (a rerun with the same texts, vocabulary and
config resumes from it), DIR/mlm_summary.json, the model directory DIR/text and
DIR/report.md. --texts reads one text per line; --datasets names shared datasets (default:
the English ones with text, driftrec_train.mlm.ENGLISH_TEXT_DATASETS). --config is an
MlmConfig as a JSON object or the path of a file holding one; --minutes and --threads
override its fields. do_lower_case defaults to the vocabulary folder's
tokenizer_config.json (true without one). With --hf-checkpoint the checkpoint is imported
(convert_hf) instead of trained, with its own vocabulary.

The check: N texts of the corpus go through build/models/driftrec-encode DIR/text (the C
encoder, the model's own precision; and an fp32 export of the same weights through the C fp32 path)
and through PyTorch in fp32 (encode_texts); the report gives the cosines and the fp32 max
abs error. Exit status 2 on bad input, 1 when
the check fails (C int8 cosine below 0.99, or C fp32 further than 1e-3 from PyTorch).
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see driftrec_train/mlm.py
sys.path.insert(0, str(Path(__file__).resolve().parent))

import driftrec_train.runtime  # noqa: E402,F401  (before numpy/torch: OpenBLAS kernels)

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from driftrec_train import convert_hf, export, mlm, tokenizer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ENCODER_BIN = REPO_ROOT / "build" / "models" / "driftrec-encode"
INT8_MIN_COSINE = 0.99
FP32_MAX_ABS = 1e-3


def load_config(arg) -> mlm.MlmConfig:
    if not arg:
        return mlm.MlmConfig()
    text = arg if arg.lstrip().startswith("{") else Path(arg).read_text()
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise ValueError("--config: expected a JSON object")
    return mlm.MlmConfig.from_dict(obj)


def c_encode(binary: Path, model_dir: Path, texts, max_len: int, precision: str) -> np.ndarray:
    lines = "".join(t + "\n" for t in texts)
    proc = subprocess.run([str(binary), str(model_dir), "--precision", precision,
                           "--max-len", str(max_len)], input=lines.encode("utf-8"),
                          capture_output=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{binary.name}: exit {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    return np.asarray(rows, dtype=np.float32)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(na * nb, 1e-30)


def check_against_c(binary: Path, model_dir: Path, encoder, texts, vocab, lower: bool,
                    max_len: int, dtype: str) -> dict:
    """C vectors of the exported model against PyTorch fp32 (encode_texts) on texts."""
    ref = mlm.encode_texts(encoder, texts, vocab, lower, max_len)
    out = {"texts": len(texts), "max_len": max_len, "binary": binary.name}
    c_model = c_encode(binary, model_dir, texts, max_len, dtype)
    cos = cosines(c_model, ref)
    out[f"c_{dtype}_cosine_min"] = float(cos.min())
    out[f"c_{dtype}_cosine_mean"] = float(cos.mean())
    if dtype == "fp32":
        c_fp32 = c_model
    else:  # the C fp32 path needs an fp32 file: the same weights, exported unquantised
        with tempfile.TemporaryDirectory() as tmp:
            fp32_dir = export.export_bert(encoder, Path(tmp) / "fp32", dtype="fp32",
                                          vocab=vocab, do_lower_case=lower)
            c_fp32 = c_encode(binary, fp32_dir, texts, max_len, "fp32")
    out["c_fp32_max_abs_error"] = float(np.abs(c_fp32 - ref).max())
    # the int8 weights in PyTorch (dequantised, fp32 activations): the weights' share
    py_int8 = mlm.encode_texts(export.load_bert(model_dir), texts, vocab, lower, max_len)
    out["py_dequantised_cosine_min"] = float(cosines(py_int8, ref).min())
    ok = out["c_fp32_max_abs_error"] <= FP32_MAX_ABS
    if dtype == "int8":
        ok = ok and out["c_int8_cosine_min"] >= INT8_MIN_COSINE
    out["ok"] = bool(ok)
    return out


def sample_texts(texts, n: int, seed: int = 0) -> list[str]:
    pool = [" ".join(t.split()) for t in texts]
    pool = [t for t in pool if t]
    if len(pool) <= n:
        return pool
    rng = np.random.default_rng(seed)
    return [pool[i] for i in sorted(rng.choice(len(pool), n, replace=False))]


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def write_report(path: Path, *, args, source: str, corpus_note: list[str],
                 summary: dict | None, imported: dict | None, check: dict | None,
                 model_dir: Path, export_s: float) -> None:
    lines = ["# Text encoder pre-training report", ""]
    lines.append(f"Command: `pretrain_text.py {' '.join(args)}`")
    lines.append("")
    lines.append("## Corpus")
    lines.append("")
    lines.append(f"Source: {source}")
    lines.extend(f"* {line}" for line in corpus_note)
    if summary:
        c = summary["corpus"]
        lines += ["", "| | texts | sequences | word pieces |", "|---|---:|---:|---:|",
                  f"| all | {c['texts']} ({c['distinct_texts']} distinct) | "
                  f"{c['train_sequences'] + c['val_sequences']} | "
                  f"{c['train_word_pieces'] + c['val_word_pieces']} |",
                  f"| train | {c['train_texts']} | {c['train_sequences']} | "
                  f"{c['train_word_pieces']} |",
                  f"| validation (held out) | {c['val_texts']} | {c['val_sequences']} | "
                  f"{c['val_word_pieces']} |",
                  "", f"Vocabulary: {c['vocab_size']} tokens, do_lower_case "
                  f"{str(c['do_lower_case']).lower()}."]
    if summary:
        cfg = summary["config"]
        lines += ["", "## Training", "",
                  "Config: `" + json.dumps(cfg, separators=(",", ":")) + "`", "",
                  f"* steps: {summary['steps']} of {summary['max_steps']} "
                  f"(stopped: {summary['stopped']}; {summary['steps_this_run']} in this run)",
                  f"* time: {summary['run_seconds']} s this run, {summary['train_seconds']} s "
                  f"of training steps in all; {summary['threads']} torch threads",
                  f"* speed: {fmt(summary['tokens_per_s_this_run'], '.0f')} tokens/s this run, "
                  f"{fmt(summary['tokens_per_s'], '.0f')} over all runs (tokens of the "
                  "batches, [CLS]/[SEP] included, padding not)",
                  f"* tokens seen: {summary['tokens_seen']}",
                  f"* training loss (masked tokens, first / last {cfg['log_every']} steps): "
                  f"{fmt(summary['first_train_loss'])} / {fmt(summary['last_train_loss'])}; "
                  f"masked-token accuracy last: {fmt(summary['last_train_acc'])}"]
        val = summary["val"]
        if val:
            lines += ["", "Validation (held-out texts, fixed masks):", "",
                      "| step | MLM loss | masked accuracy | unigram baseline loss |",
                      "|---:|---:|---:|---:|"]
            for rec in val:
                lines.append(f"| {rec['step']} | {fmt(rec['val_loss'])} | "
                             f"{fmt(rec['val_acc'])} | {fmt(rec['unigram_val_loss'])} |")
    if imported:
        lines += ["", "## Imported checkpoint", ""]
        lines += [f"* {k}: {v}" for k, v in imported.items()]
    lines += ["", "## Model", "", f"`{model_dir.name}/` ({export_s:.1f} s to export): "
              "bert-encoder, mean pooling, no projection."]
    if check:
        lines += ["", "## Check against the C encoder", ""]
        if "skipped" in check:
            lines.append(f"Skipped: {check['skipped']}")
        else:
            lines.append(f"{check['texts']} corpus texts, max_len {check['max_len']}, "
                         f"{check['binary']} against PyTorch fp32 (encode_texts):")
            lines.append("")
            for k, v in check.items():
                if k not in ("texts", "max_len", "binary"):
                    lines.append(f"* {k}: {v:.6g}" if isinstance(v, float) else f"* {k}: {v}")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--vocab", type=Path, help="vocab.txt (or its folder)")
    low = ap.add_mutually_exclusive_group()
    low.add_argument("--do-lower-case", dest="lower", action="store_true", default=None)
    low.add_argument("--no-lower-case", dest="lower", action="store_false")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--texts", type=Path, help="one text per line")
    src.add_argument("--datasets", help="comma-separated shared dataset names")
    ap.add_argument("--minutes", type=float, help="wall-clock cap of the training run")
    ap.add_argument("--threads", type=int, help="torch threads (0: all)")
    ap.add_argument("--config", help="MlmConfig as JSON, or a JSON file")
    ap.add_argument("--hf-checkpoint", type=Path, help="import this checkpoint instead")
    ap.add_argument("--pooling", choices=("mean", "cls"), default="mean",
                    help="pooling of an imported checkpoint (trained models: mean)")
    ap.add_argument("--dtype", choices=("int8", "fp32"), default="int8")
    ap.add_argument("--encoder-bin", type=Path, default=DEFAULT_ENCODER_BIN)
    ap.add_argument("--check", type=int, default=32, help="texts for the C check (0: none)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.hf_checkpoint is None and args.vocab is None:
        ap.error("--vocab is required unless --hf-checkpoint is given")

    try:
        cfg = load_config(args.config)
        if args.minutes is not None:
            cfg.minutes = args.minutes
        if args.threads is not None:
            cfg.threads = args.threads
        cfg.check()
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    corpus_note: list[str] = []

    def note(msg: str) -> None:
        print(msg, file=sys.stderr)
        corpus_note.append(msg)

    try:
        if args.texts:
            texts = mlm.read_text_file(args.texts)
            source = f"`{args.texts.name}` ({len(texts)} lines)"
        else:
            names = args.datasets.split(",") if args.datasets else list(mlm.ENGLISH_TEXT_DATASETS)
            texts = mlm.corpus_texts([n.strip() for n in names if n.strip()], log=note)
            source = "shared datasets " + ", ".join(names) + " (copies removed)"
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    summary = imported = None
    model_dir = out / "text"
    if args.hf_checkpoint:
        try:
            encoder, lower = convert_hf.load_hf(args.hf_checkpoint, pooling=args.pooling)
        except (convert_hf.ConvertError, OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if args.lower is not None:
            lower = args.lower
        vocab = args.hf_checkpoint / "vocab.txt"
        name, version = args.hf_checkpoint.name, "hf"
        imported = {"checkpoint": args.hf_checkpoint.name, "config": encoder.config.to_dict(),
                    "do_lower_case": lower}
        max_len = min(cfg.max_len, encoder.config.max_position_embeddings)
    else:
        vocab = args.vocab / "vocab.txt" if args.vocab.is_dir() else args.vocab
        lower = args.lower
        if lower is None:
            lower = tokenizer.config_do_lower_case(vocab.parent)
        if not texts:
            print("error: no texts", file=sys.stderr)
            return 2
        try:
            encoder = mlm.pretrain(texts, vocab, lower, cfg, out,
                                   progress=not args.no_progress,
                                   log=lambda m: print(m, file=sys.stderr))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        summary = json.loads((out / mlm.SUMMARY_NAME).read_text())
        name, version = "text-mlm", f"mlm-seed{cfg.seed}-step{summary['steps']}"
        max_len = cfg.max_len

    t0 = time.monotonic()
    export.export_bert(encoder, model_dir, dtype=args.dtype, name=name, version=version,
                       vocab=vocab, do_lower_case=lower)
    export_s = time.monotonic() - t0
    print(f"wrote {model_dir}", file=sys.stderr)

    check = None
    if args.check > 0:
        if not args.encoder_bin.exists():
            check = {"skipped": f"{args.encoder_bin.name} not built (cmake --build build)"}
        else:
            sample = sample_texts(texts, args.check)
            check = check_against_c(args.encoder_bin, model_dir, encoder, sample, vocab,
                                    lower, max_len, args.dtype)
        print("check: " + json.dumps(check), file=sys.stderr)

    write_report(out / "report.md", args=argv, source=source, corpus_note=corpus_note,
                 summary=summary, imported=imported, check=check, model_dir=model_dir,
                 export_s=export_s)
    print(f"wrote {out / 'report.md'}", file=sys.stderr)
    if check and check.get("ok") is False:
        print("error: the C encoder does not match PyTorch (see the report)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
