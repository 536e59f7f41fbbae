"""The event and item format shared by every loader, the cleaner, the evaluator and `make model`.

One event a line in ``events.jsonl``, one item a line in ``items.jsonl``; docs/data.md is the
normative description (field meanings, units, and what happens to a bad value).

Parsing is split in two on purpose:

* :func:`parse_event` / :func:`parse_item` check *syntax and types*. A line that is not a JSON
  object, or a field of the wrong type, raises :class:`DataError` naming the file and line:
  such input is broken, and guessing would hide the bug upstream.
* :mod:`driftrec_train.clean` checks *values* (missing ids or time, out-of-range numbers,
  duplicates) and drops or nulls them *with a count*, because real logs always have a few and
  one bad row must not stop a training run.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

EVENT_TYPES: tuple[str, ...] = ("impression", "view", "click", "cart", "purchase", "review")
"""Allowed ``event_type`` values, from weakest to strongest signal."""

EVENT_FIELDS: tuple[str, ...] = (
    "user_id", "item_id", "ts", "event_type", "dwell_s", "amount", "rating", "text",
)
OPTIONAL_EVENT_FIELDS: tuple[str, ...] = ("event_id", "request_id", "variant", "position")
ITEM_FIELDS: tuple[str, ...] = ("item_id", "title", "category", "brand", "price")


class DataError(ValueError):
    """Malformed input. The message always starts with ``file:line:`` so it can be fixed by hand."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = message
        super().__init__(f"{self.path}:{line}: {message}")


@dataclass
class Event:
    """One user action on one item.

    ``user_id``, ``item_id`` and ``ts`` are Optional only so that a loader can hand rows with
    missing keys to the cleaner, which drops and counts them; a cleaned event has all three.
    ``row`` is the 0-based position in the source file. It is not written to events.jsonl (the
    line order there carries it) but it is the documented tie-breaker when two events of a
    user share a timestamp.
    """

    user_id: Optional[str]
    item_id: Optional[str]
    ts: Optional[int]
    event_type: str = "review"
    dwell_s: Optional[float] = None
    amount: Optional[float] = None
    rating: Optional[float] = None
    text: str = ""
    event_id: Optional[str] = None
    request_id: Optional[str] = None
    variant: Optional[str] = None
    position: Optional[int] = None
    row: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The events.jsonl object: all core fields always present, optional ones only when set."""
        out: dict[str, Any] = {name: getattr(self, name) for name in EVENT_FIELDS}
        for name in OPTIONAL_EVENT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass
class Item:
    """Catalogue entry. Text fields are plain strings ("" when unknown); price is in shop currency."""

    item_id: str
    title: str = ""
    category: str = ""
    brand: str = ""
    price: Optional[float] = None

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ITEM_FIELDS}

    def text(self) -> str:
        """The text the bag-of-words baseline and text models see: title, category, brand."""
        return " ".join(part for part in (self.title, self.category, self.brand) if part)


# --------------------------------------------------------------------------- field checks

def _id(obj: dict[str, Any], name: str, path: str | Path, line: int) -> Optional[str]:
    """Ids are strings; integers are accepted and converted (many public files use them)."""
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(path, line, f"{name} must be a string, got a boolean")
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise DataError(path, line, f"{name} must be a string, got {type(value).__name__}")
    value = value.strip()
    return value or None


def _int(obj: dict[str, Any], name: str, path: str | Path, line: int) -> Optional[int]:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(path, line, f"{name} must be an integer, got a boolean")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise DataError(path, line, f"{name} must be an integer, got {value!r}")
        return int(value)
    if not isinstance(value, int):
        raise DataError(path, line, f"{name} must be an integer, got {type(value).__name__}")
    return value


def _float(obj: dict[str, Any], name: str, path: str | Path, line: int) -> Optional[float]:
    """Numbers only; NaN and infinities are kept here and turned into null (with a count) by clean."""
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(path, line, f"{name} must be a number or null, got {type(value).__name__}")
    return float(value)


def _str(obj: dict[str, Any], name: str, path: str | Path, line: int) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(path, line, f"{name} must be a string, got {type(value).__name__}")
    return value


def _opt_str(obj: dict[str, Any], name: str, path: str | Path, line: int) -> Optional[str]:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(path, line, f"{name} must be a string, got {type(value).__name__}")
    return value


def parse_event(obj: Any, path: str | Path = "<events>", line: int = 1, row: int = 0) -> Event:
    """Type-check one decoded events.jsonl object; raise :class:`DataError` naming file and line."""
    if not isinstance(obj, dict):
        raise DataError(path, line, f"expected a JSON object, got {type(obj).__name__}")
    event_type = obj.get("event_type")
    if event_type not in EVENT_TYPES:
        raise DataError(path, line, f"event_type must be one of {', '.join(EVENT_TYPES)}; got {event_type!r}")
    return Event(
        user_id=_id(obj, "user_id", path, line),
        item_id=_id(obj, "item_id", path, line),
        ts=_int(obj, "ts", path, line),
        event_type=event_type,
        dwell_s=_float(obj, "dwell_s", path, line),
        amount=_float(obj, "amount", path, line),
        rating=_float(obj, "rating", path, line),
        text=_str(obj, "text", path, line),
        event_id=_opt_str(obj, "event_id", path, line),
        request_id=_opt_str(obj, "request_id", path, line),
        variant=_opt_str(obj, "variant", path, line),
        position=_int(obj, "position", path, line),
        row=row,
    )


def parse_item(obj: Any, path: str | Path = "<items>", line: int = 1) -> Item:
    """Type-check one decoded items.jsonl object; raise :class:`DataError` naming file and line."""
    if not isinstance(obj, dict):
        raise DataError(path, line, f"expected a JSON object, got {type(obj).__name__}")
    item_id = _id(obj, "item_id", path, line)
    if item_id is None:
        raise DataError(path, line, "item_id is missing or empty")
    return Item(
        item_id=item_id,
        title=_str(obj, "title", path, line),
        category=_str(obj, "category", path, line),
        brand=_str(obj, "brand", path, line),
        price=_float(obj, "price", path, line),
    )


# --------------------------------------------------------------------------- file I/O

def text_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, decoded line) of a text file, gunzipped if ``*.gz``.

    Lines are decoded one at a time so that undecodable bytes, or a truncated gzip, become a
    :class:`DataError` naming the right line rather than a codec traceback.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        line_no = 0
        while True:
            try:
                raw = handle.readline()
            except (EOFError, OSError) as exc:
                raise DataError(path, line_no + 1, f"cannot read line: {exc}") from exc
            if not raw:
                return
            line_no += 1
            try:
                yield line_no, raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataError(path, line_no, f"not valid {encoding} at byte {exc.start}") from exc


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, decoded_object)`` for each non-blank line; DataError on bad JSON."""
    for line_no, raw in text_lines(path):
        if not raw.strip():
            continue
        try:
            yield line_no, json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(path, line_no, f"invalid JSON: {exc.msg} (column {exc.colno})") from exc


def read_events(path: str | Path) -> list[Event]:
    """Read events.jsonl(.gz). Rows keep their file order in ``Event.row``."""
    events = []
    for row, (line_no, obj) in enumerate(iter_json_lines(path)):
        events.append(parse_event(obj, path, line_no, row))
    return events


def read_items(path: str | Path) -> list[Item]:
    """Read items.jsonl(.gz). A repeated item_id is an error: the catalogue must be a function."""
    items: list[Item] = []
    seen: dict[str, int] = {}
    for line_no, obj in iter_json_lines(path):
        item = parse_item(obj, path, line_no)
        if item.item_id in seen:
            raise DataError(path, line_no, f"item_id {item.item_id!r} repeats line {seen[item.item_id]}")
        seen[item.item_id] = line_no
        items.append(item)
    return items


def _write_lines(path: str | Path, objects: Iterable[dict[str, Any]]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = (lambda p: io.TextIOWrapper(gzip.open(p, "wb"), encoding="utf-8")) if path.suffix == ".gz" \
        else (lambda p: open(p, "w", encoding="utf-8"))
    count = 0
    with opener(path) as handle:
        for obj in objects:
            handle.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
            handle.write("\n")
            count += 1
    return count


def write_events(path: str | Path, events: Iterable[Event]) -> int:
    """Write events.jsonl(.gz) in the given order (the order is the tie-breaker); returns the count."""
    return _write_lines(path, (event.to_json() for event in events))


def write_items(path: str | Path, items: Iterable[Item]) -> int:
    """Write items.jsonl(.gz); returns the count."""
    return _write_lines(path, (item.to_json() for item in items))
