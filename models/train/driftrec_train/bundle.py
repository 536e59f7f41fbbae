"""Writes and reads model bundles: what training exports and the server maps (docs/bundle.md).

A bundle is one directory: ``manifest.json``, the interest model (``interest/``, a model
directory written by :func:`export.export_interest`), the item ids, vectors, HNSW index and
optional categories under ``items/``, and optionally the text encoder (``text/``) with the
item tower's text projection (``items/text_proj.f32``). The C reader is ``models/bundle.h``;
it checks everything written here.

:func:`write_bundle` builds the whole bundle in a temporary sibling directory and renames it
into place, so a reader sees either no bundle or a complete one. The index is built by the C
tool ``driftrec-index build`` (found as ``$DR_BUILD_DIR/models/ann/driftrec-index``, else
``<repo>/build/models/ann/driftrec-index``), the same code that the server searches with.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from . import export
from . import interest as interest_mod
from .events import EVENT_TYPES

FORMAT = "driftrec-bundle"
FORMAT_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parents[3]

IDS = "items/ids.txt"
VECTORS = "items/vectors.f32"
CATEGORIES = "items/categories.u32"
INDEX = "items/index.ann"
TEXT_PROJ = "items/text_proj.f32"


class BundleError(ValueError):
    """A bundle that cannot be written or read as given; the message names the file."""


def find_index_tool() -> Path:
    """driftrec-index: ``$DR_BUILD_DIR/models/ann/driftrec-index``, else the default build."""
    candidates = []
    if os.environ.get("DR_BUILD_DIR"):
        candidates.append(Path(os.environ["DR_BUILD_DIR"]) / "models" / "ann" / "driftrec-index")
    candidates.append(REPO_ROOT / "build" / "models" / "ann" / "driftrec-index")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise BundleError("driftrec-index not found (looked for "
                      + ", ".join(str(c) for c in candidates)
                      + "); build it with `make build` or set DR_BUILD_DIR to the build directory")


def _check_ids(item_ids: Sequence[str]) -> list[str]:
    ids = [str(i) for i in item_ids]
    seen: dict[str, int] = {}
    for row, i in enumerate(ids):
        if not i or any(c in i for c in "\t\r\n\0"):
            raise BundleError(f"item id of row {row} is empty or holds a tab, CR, LF or NUL: {i!r}")
        if i in seen:
            raise BundleError(f"duplicate item id {i!r} (rows {seen[i]} and {row})")
        seen[i] = row
    return ids


def _version(vectors: np.ndarray, now: _dt.datetime) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(vectors, "<f4").tobytes()).hexdigest()[:8]
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + digest


def _preprocessing(preprocessing: dict, c: interest_mod.InterestConfig) -> dict:
    """The caller's constants, with those the interest model fixes filled in and checked."""
    pre = dict(preprocessing)
    for key, value in (("max_events", c.max_events), ("half_life_s", c.half_life_s)):
        if key in pre and float(pre[key]) != float(value):
            raise BundleError(f"preprocessing.{key} = {pre[key]!r}, the interest model's is "
                              f"{value!r}")
        pre.setdefault(key, value)
    pre.setdefault("gap_buckets", {"n": c.n_gap_buckets,
                                   "rule": "0 first event, else min(n-1, 1 + bit_length(minutes))"})
    types = list(pre.setdefault("event_types", list(EVENT_TYPES)))
    if len(types) != c.n_event_types:
        raise BundleError(f"preprocessing.event_types has {len(types)} names, the interest model "
                          f"embeds {c.n_event_types} event types")
    return pre


def _text_output_dim(text_model_dir: str | Path) -> int:
    """The text encoder's output size, from its manifest: projection_dim, else hidden_size."""
    path = Path(text_model_dir) / "manifest.json"
    try:
        config = json.loads(path.read_text())["config"]
        return int(config.get("projection_dim") or 0) or int(config["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BundleError(f"{path}: cannot read the text encoder's output size: {e}") from e


def _check_text_projection(text_projection, text_model_dir, item_dim: int) -> np.ndarray:
    """[item_dim, text_dim] little-endian float32, text_dim the text encoder's output size."""
    if text_model_dir is None:
        raise BundleError("text_projection without text_model_dir: the projection maps that "
                          "text encoder's vectors to item space")
    if hasattr(text_projection, "detach"):  # a torch tensor or parameter
        text_projection = text_projection.detach().cpu().numpy()
    w = np.asarray(text_projection)
    text_dim = _text_output_dim(text_model_dir)
    if w.shape != (item_dim, text_dim):
        raise BundleError(f"text_projection has shape {w.shape}, expected [item_dim, text_dim] = "
                          f"[{item_dim}, {text_dim}] (torch Linear weight layout; text_dim is "
                          "the text encoder's output size)")
    w = np.ascontiguousarray(w, dtype="<f4")
    if not np.all(np.isfinite(w)):
        raise BundleError("text_projection has non-finite values")
    return w


def write_bundle(out_dir: str | Path, *, name: str,
                 interest_model: interest_mod.InterestModel,
                 item_ids: Sequence[str], item_vectors: np.ndarray,
                 preprocessing: dict, training: dict,
                 categories: Optional[np.ndarray] = None,
                 category_names: Optional[list[str]] = None,
                 text_model_dir: Optional[str | Path] = None,
                 ef_search: int = 64, index_threads: int = 0,
                 interest_dtype: str = "int8", index_seed: int = 1,
                 text_projection: Optional[np.ndarray] = None) -> Path:
    """Writes a bundle at ``out_dir`` (which must not exist) and returns its path.

    ``item_vectors`` is [n, D] float32 with D the interest model's item_dim; row i is
    ``item_ids[i]``. ``interest_dtype`` is the interest model's stored precision ("int8", the
    default and what the server runs, or "fp32"). ``categories`` is [n] unsigned integers,
    each below ``len(category_names)`` when names are given. ``index_threads`` (0: all CPUs)
    only changes build time, never the index file.

    ``text_projection`` is the item tower's W_text, [item_dim, text_dim] (torch's Linear
    weight layout, no bias; a tensor is taken too), with text_dim the output size of the text
    encoder in ``text_model_dir`` (required with it): the item tower maps text as
    W_text . (t / |t|). It is stored as ``items/text_proj.f32`` and lets the server map a
    Recommend's query text to item space (docs/api.md).
    """
    out = Path(out_dir)
    if out.exists():
        raise BundleError(f"{out}: already exists (a bundle is never overwritten in place)")
    c = interest_model.config
    ids = _check_ids(item_ids)
    vectors = np.asarray(item_vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(ids) or vectors.shape[0] == 0:
        raise BundleError(f"item_vectors has shape {vectors.shape}, expected [{len(ids)}, D] with "
                          "one row per item id")
    if vectors.shape[1] != c.item_dim:
        raise BundleError(f"item_vectors has dim {vectors.shape[1]}, the interest model's "
                          f"item_dim is {c.item_dim}")
    vectors = np.ascontiguousarray(vectors, dtype="<f4")
    if not np.all(np.isfinite(vectors)):
        raise BundleError("item_vectors has non-finite values")
    cats = None
    n_categories = 0
    if categories is not None:
        cats = np.asarray(categories)
        if cats.shape != (len(ids),) or cats.dtype.kind not in "iu" or cats.min() < 0:
            raise BundleError(f"categories must be [{len(ids)}] non-negative integers")
        n_categories = len(category_names) if category_names is not None else int(cats.max()) + 1
        if cats.max() >= n_categories:
            raise BundleError(f"category {int(cats.max())} but only {n_categories} category_names")
        cats = cats.astype("<u4")
    elif category_names is not None:
        raise BundleError("category_names without categories")
    if interest_dtype not in ("int8", "fp32"):
        raise BundleError("interest_dtype must be 'int8' or 'fp32'")
    proj = (None if text_projection is None
            else _check_text_projection(text_projection, text_model_dir, c.item_dim))
    pre = _preprocessing(preprocessing, c)
    tool = find_index_tool()

    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    version = _version(vectors, now)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the bundle from a server
        export.export_interest(interest_model, tmp / "interest", dtype=interest_dtype,
                               name=f"{name}-interest", version=version)
        (tmp / "items").mkdir()
        (tmp / IDS).write_text("".join(i + "\n" for i in ids), encoding="utf-8")
        vectors.tofile(tmp / VECTORS)
        cmd = [str(tool), "build", "--input", str(tmp / VECTORS), "--dim", str(c.item_dim),
               "--out", str(tmp / INDEX), "--metric", "ip", "--threads", str(index_threads),
               "--seed", str(index_seed)]
        if cats is not None:
            cats.tofile(tmp / CATEGORIES)
            cmd += ["--categories", str(tmp / CATEGORIES), "--n-categories", str(n_categories)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            raise BundleError(f"{tool} build failed (exit {run.returncode}): "
                              f"{run.stderr.strip()[-2000:]}")
        if text_model_dir is not None:
            shutil.copytree(text_model_dir, tmp / "text")
        if proj is not None:
            proj.tofile(tmp / TEXT_PROJ)
        files = ([IDS, VECTORS, INDEX] + ([CATEGORIES] if cats is not None else [])
                 + ([TEXT_PROJ] if proj is not None else []))
        items = {"ids": IDS, "vectors": VECTORS}
        if cats is not None:
            items["categories"] = CATEGORIES
            if category_names is not None:
                items["category_names"] = [str(n) for n in category_names]
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "version": version,
            "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "item_dim": int(c.item_dim),
            "n_items": len(ids),
            "scoring": "dot",
            "interest": "interest",
            **({"text_encoder": "text"} if text_model_dir is not None else {}),
            **({"text_projection": {"file": TEXT_PROJ, "text_dim": int(proj.shape[1]),
                                    "normalize_input": True}} if proj is not None else {}),
            "items": items,
            "index": {"file": INDEX, "metric": "ip", "ef_search": int(ef_search)},
            "sha256": {f: export.sha256_file(tmp / f) for f in files},
            "event_types": list(pre["event_types"]),
            "preprocessing": pre,
            "training": training,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        os.rename(tmp, out)  # a reader sees no bundle or all of it
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _inside(bundle: Path, rel: str) -> Path:
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"{bundle}/manifest.json: path {rel!r} leaves the bundle or is not "
                          "a plain relative path")
    path = bundle / rel
    real, root = path.resolve(), bundle.resolve()
    if root not in real.parents:
        raise BundleError(f"{bundle}/manifest.json: path {rel!r} is a link that leaves the bundle")
    return path


def read_bundle(bundle_dir: str | Path) -> tuple[dict, list[str], np.ndarray]:
    """(manifest, item ids, [n, D] float32 vectors) of a bundle, every sha256 checked (the
    text projection's too, and its size: :func:`read_text_projection` returns it)."""
    d = Path(bundle_dir)
    manifest = json.loads((d / "manifest.json").read_text())
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{d}/manifest.json: not a {FORMAT} version {FORMAT_VERSION} manifest")
    for rel, want in manifest["sha256"].items():
        path = _inside(d, rel)
        if export.sha256_file(path) != want:
            raise BundleError(f"{path}: sha256 does not match the manifest")
    n, dim = int(manifest["n_items"]), int(manifest["item_dim"])
    ids_path = _inside(d, manifest["items"]["ids"])
    ids = ids_path.read_text(encoding="utf-8").split("\n")
    if ids[-1] != "" or len(ids) - 1 != n:
        raise BundleError(f"{ids_path}: {len(ids) - 1} lines, the manifest says {n} items")
    vec_path = _inside(d, manifest["items"]["vectors"])
    vectors = np.fromfile(vec_path, dtype="<f4")
    if vectors.size != n * dim:
        raise BundleError(f"{vec_path}: {vectors.size * 4} bytes, expected {n * dim * 4}")
    if "text_projection" in manifest:
        read_text_projection(d, manifest)
    return manifest, ids[:-1], vectors.reshape(n, dim).astype(np.float32)


def read_text_projection(bundle_dir: str | Path,
                         manifest: Optional[dict] = None) -> Optional[np.ndarray]:
    """The bundle's text projection W_text as [item_dim, text_dim] float32, or None when it
    has none. Its sha256 is checked by :func:`read_bundle`, not here."""
    d = Path(bundle_dir)
    if manifest is None:
        manifest = json.loads((d / "manifest.json").read_text())
    tp = manifest.get("text_projection")
    if tp is None:
        return None
    if "text_encoder" not in manifest:
        raise BundleError(f"{d}/manifest.json: text_projection without a text_encoder")
    dim, text_dim = int(manifest["item_dim"]), int(tp["text_dim"])
    path = _inside(d, tp["file"])
    w = np.fromfile(path, dtype="<f4")
    if w.size != dim * text_dim:
        raise BundleError(f"{path}: {w.size * 4} bytes, expected {dim * text_dim * 4} "
                          f"(item_dim {dim} x text_dim {text_dim} x 4)")
    return w.reshape(dim, text_dim).astype(np.float32)
