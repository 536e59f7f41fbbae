#!/usr/bin/python3
"""driftrec-encode and driftrec-user end to end against the PyTorch reference.

    cli_check.py GOLDEN_DIR DRIFTREC_ENCODE DRIFTREC_USER

* driftrec-user on the golden users' events, written as JSON lines in the docs/data.md
  format with inline item_vec/text_vec, equals PyTorch's vectors within 1e-4 (fp32 model).
* driftrec-encode on text equals the Python tokenizer twin + the PyTorch encoder within 1e-4.
Exit 77 when the golden files are missing.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "models" / "train"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from driftrec_train import export, safetensors_io, tokenizer  # noqa: E402
from driftrec_train.events import EVENT_TYPES  # noqa: E402


def main() -> int:
    golden, encode_bin, user_bin = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    gfile = golden / "interest_golden.safetensors"
    if not gfile.exists() or not (golden / "bert-mini-fp32").exists():
        print(f"SKIP: golden files not in {golden}")
        return 77
    torch.set_num_threads(1)
    failures = 0

    g = safetensors_io.read(gfile)
    blocks, at = [], 0
    for u, n in enumerate(g["lengths"].tolist()):
        lines = []
        blocks.append(lines)
        for e in range(at, at + n):
            ev = {"user_id": f"u{u}", "item_id": f"i{e}", "ts": int(g["ts"][e]),
                  "event_type": EVENT_TYPES[int(g["event_type"][e])],
                  "item_vec": g["item_vec"][e].tolist()}
            if g["has_text"][e]:
                ev["text_vec"] = g["text_vec"][e].tolist()
            for k in ("dwell_s", "amount", "rating"):
                v = float(g[k][e])
                ev[k] = None if math.isnan(v) else v
            lines.append(json.dumps(ev))
        at += n
    # Users interleaved (one event each in turn): the tool groups them; equal ts keep line order.
    lines = [b[i] for i in range(max(map(len, blocks))) for b in blocks if i < len(b)]
    out = subprocess.run([user_bin, str(golden / "interest-fp32"), "--all"],
                         input="\n".join(lines) + "\n", capture_output=True, text=True)
    if out.returncode != 0:
        print(f"FAIL driftrec-user: {out.stderr}")
        return 1
    got = {r["user_id"]: r for r in map(json.loads, out.stdout.splitlines())}
    worst = 0.0
    for u, n in enumerate(g["lengths"].tolist()):
        if n == 0:
            continue  # a user without events has no line
        r = got[f"u{u}"]
        worst = max(worst, float(np.abs(np.asarray(r["vector"]) - g["expected"][u]).max()))
        if r["n_events"] != n:
            print(f"FAIL u{u}: n_events {r['n_events']}, expected {n}")
            failures += 1
    print(f"driftrec-user vs PyTorch: max abs error {worst:.3g}")
    if worst > 1e-4:
        print("FAIL driftrec-user: error over 1e-4")
        failures += 1

    texts = ["Great hiking boots, fits well!", "red phone case", "WATERPROOF boots\u00e9 cheap",
             "the " * 200]
    model_dir = golden / "bert-mini-fp32"
    out = subprocess.run([encode_bin, str(model_dir), "--max-len", "64"],
                         input="\n".join(texts) + "\n", capture_output=True, text=True)
    if out.returncode != 0:
        print(f"FAIL driftrec-encode: {out.stderr}")
        return 1
    vecs = np.asarray([json.loads(x) for x in out.stdout.splitlines()])
    tok = tokenizer.Tokenizer.from_file(model_dir / "vocab.txt", do_lower_case=True)
    model = export.load_bert(model_dir)
    worst = 0.0
    with torch.no_grad():
        for i, t in enumerate(texts):
            ids = tok.encode(t, max_len=64)
            want = model(torch.tensor([ids]), torch.tensor([len(ids)]))[0].numpy()
            worst = max(worst, float(np.abs(vecs[i] - want).max()))
    print(f"driftrec-encode vs PyTorch: max abs error {worst:.3g}")
    if worst > 1e-4:
        print("FAIL driftrec-encode: error over 1e-4")
        failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
