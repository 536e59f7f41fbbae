"""safetensors read/write from the format's specification (no safetensors package needed).

A file is ``u64 little-endian N`` + ``N`` bytes of JSON header + the data area. The header
maps each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into
the data area) and may hold ``"__metadata__"`` (string to string). Tensors sorted by offset
tile the data area exactly. The writer pads the header with spaces to a multiple of 8 bytes,
as the reference writer does, and never pads the data.

Arrays are numpy arrays; torch tensors are accepted by :func:`write` and converted. BF16 has
no numpy dtype: :func:`read` returns it as float32 (exact), :func:`write` takes it through
``bf16=`` (names whose float32 arrays are to be stored as BF16, rounded to nearest even).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8),
    "I16": np.dtype("<i2"), "U16": np.dtype("<u2"), "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"), "U32": np.dtype("<u4"), "F32": np.dtype("<f4"),
    "I64": np.dtype("<i8"), "U64": np.dtype("<u8"), "F64": np.dtype("<f8"),
}
_NAMES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """A file that breaks the format; the message names the file and the problem."""


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        t = value.detach().cpu().contiguous()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    return np.ascontiguousarray(value)


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> BF16 bit patterns (uint16), round to nearest even; NaN stays NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = np.isnan(x)
    out = rounded.astype(np.uint16)
    out[nan] = 0x7FC0
    return out


def encode(tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None,
           bf16: Iterable[str] = ()) -> bytes:
    """The bytes of a safetensors file holding ``tensors`` (name -> array), in name order."""
    bf16 = set(bf16)
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        arr = _to_numpy(tensors[name])
        if name in bf16:
            raw = bf16_bits(arr.astype(np.float32)).tobytes()
            dtype = "BF16"
        else:
            le = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
            arr = arr.astype(le, copy=False)
            if arr.dtype not in _NAMES:
                raise TypeError(f"{name}: dtype {arr.dtype} has no safetensors name")
            dtype = _NAMES[arr.dtype]
            raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(chunks)


def write(path: str | Path, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None,
          bf16: Iterable[str] = ()) -> None:
    Path(path).write_bytes(encode(tensors, metadata, bf16))


def decode(buf: bytes, label: str = "safetensors") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parses and validates a whole file; returns (tensors, metadata). BF16 comes back as F32."""
    if len(buf) < 8:
        raise SafetensorsError(f"{label}: {len(buf)} bytes, too short for the header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise SafetensorsError(f"{label}: header length {n} runs past the end of the file")
    if n > MAX_HEADER:
        raise SafetensorsError(f"{label}: header length {n} is over the limit")
    raw = buf[8:8 + n]
    if not raw.startswith(b"{"):
        raise SafetensorsError(f"{label}: header does not start with '{{'")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{label}: header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{label}: header is not a JSON object")
    data = memoryview(buf)[8 + n:]
    metadata = header.pop("__metadata__", None) or {}
    entries = []
    for name, e in header.items():
        try:
            dtype, shape, (begin, end) = e["dtype"], e["shape"], e["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{label}: {name}: bad header entry") from None
        if dtype != "BF16" and dtype not in DTYPES:
            raise SafetensorsError(f"{label}: {name}: unsupported dtype {dtype!r}")
        size = 2 if dtype == "BF16" else DTYPES[dtype].itemsize
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if end < begin or end - begin != count * size:
            raise SafetensorsError(f"{label}: {name}: data_offsets [{begin}, {end}] do not hold "
                                   f"{dtype} {shape}")
        entries.append((begin, end, name, dtype, shape))
    entries.sort()
    at = 0
    for begin, end, name, _, _ in entries:
        if begin != at:
            raise SafetensorsError(f"{label}: {name}: data_offsets begin at {begin}, expected {at}"
                                   " (gap or overlap)")
        at = end
    if at != len(data):
        raise SafetensorsError(f"{label}: tensors cover {at} bytes of a {len(data)}-byte data area")
    out = {}
    for begin, end, name, dtype, shape in entries:
        chunk = bytes(data[begin:end])
        if dtype == "BF16":
            bits = np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32).reshape(shape)
        else:
            arr = np.frombuffer(chunk, dtype=DTYPES[dtype]).reshape(shape).copy()
        out[name] = arr
    return out, metadata


def read(path: str | Path) -> dict[str, np.ndarray]:
    return decode(Path(path).read_bytes(), str(path))[0]
