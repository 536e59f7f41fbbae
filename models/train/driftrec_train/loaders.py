"""Loaders from public recommendation files into the driftrec event format (docs/data.md).

Every loader returns a :class:`LoadResult`: events in file order (``Event.row`` = position),
an item catalogue where the source has one, and counts of what was read. Rows with a missing
user, item or time are *kept* with ``None`` in that field so that :func:`clean.clean_events`
drops them with a count; rows that cannot be parsed at all raise :class:`DataError` naming the
file and line. Nothing is dropped here without a count.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .events import DataError, Event, Item, iter_json_lines, read_events, read_items, text_lines


@dataclass
class LoadResult:
    """Output of a loader. ``counts`` always has ``rows_read``; other keys are loader specific."""

    events: list[Event]
    items: dict[str, Item] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    source: str = ""


# --------------------------------------------------------------------------- Amazon reviews

_REVIEW_TIME = re.compile(r"^\s*(\d{1,2})\s+(\d{1,2}),\s*(\d{4})\s*$")


def _amazon_review_time(value: Any) -> Optional[int]:
    """Parse the 'MM D, YYYY' ``reviewTime`` fallback as midnight UTC (the day resolution Amazon gives)."""
    if not isinstance(value, str):
        return None
    match = _REVIEW_TIME.match(value)
    if not match:
        return None
    month, day, year = (int(g) for g in match.groups())
    try:
        return int(_dt.datetime(year, month, day, tzinfo=_dt.timezone.utc).timestamp())
    except ValueError:
        return None


def load_amazon_reviews(path: str | Path) -> LoadResult:
    """Amazon review JSON lines (2014 or 2018 dumps, optionally gzipped) as ``review`` events.

    user_id = reviewerID, item_id = asin, ts = unixReviewTime (else reviewTime at 00:00 UTC),
    rating = overall, text = summary and reviewText joined by a blank line. The file's duplicate
    reviews of style variants are kept here and removed (with a count) by the cleaner.
    """
    result = LoadResult(events=[], source=str(path))
    counts = result.counts
    for row, (line_no, obj) in enumerate(iter_json_lines(path)):
        counts["rows_read"] += 1
        if not isinstance(obj, dict):
            raise DataError(path, line_no, f"expected a JSON object, got {type(obj).__name__}")
        user = obj.get("reviewerID")
        item = obj.get("asin")
        for name, value in (("reviewerID", user), ("asin", item)):
            if value is not None and not isinstance(value, str):
                raise DataError(path, line_no, f"{name} must be a string, got {type(value).__name__}")
        ts_raw = obj.get("unixReviewTime")
        if ts_raw is None:
            ts = _amazon_review_time(obj.get("reviewTime"))
            if ts is not None:
                counts["ts_from_reviewTime"] += 1
        elif isinstance(ts_raw, int) and not isinstance(ts_raw, bool):
            ts = ts_raw
        else:
            raise DataError(path, line_no, f"unixReviewTime must be an integer, got {ts_raw!r}")
        rating = obj.get("overall")
        if rating is not None and (isinstance(rating, bool) or not isinstance(rating, (int, float))):
            raise DataError(path, line_no, f"overall must be a number, got {rating!r}")
        summary = obj.get("summary") or ""
        body = obj.get("reviewText") or ""
        if not isinstance(summary, str) or not isinstance(body, str):
            raise DataError(path, line_no, "summary and reviewText must be strings")
        if not body:
            counts["missing_reviewText"] += 1
        text = "\n\n".join(part for part in (summary, body) if part)
        result.events.append(Event(
            user_id=user or None, item_id=item or None, ts=ts, event_type="review",
            rating=None if rating is None else float(rating), text=text, row=row,
        ))
    return result


def load_amazon_meta(path: str | Path) -> dict[str, Item]:
    """Amazon product metadata JSON lines (``asin``, ``title``, ``category`` list, ``brand``, ``price``).

    The 2018 dumps write price as a string such as "$12.99"; anything that does not parse as a
    non-negative number becomes null (prices are optional).
    """
    items: dict[str, Item] = {}
    for line_no, obj in iter_json_lines(path):
        if not isinstance(obj, dict):
            raise DataError(path, line_no, f"expected a JSON object, got {type(obj).__name__}")
        asin = obj.get("asin")
        if not isinstance(asin, str) or not asin:
            raise DataError(path, line_no, "asin is missing or not a string")
        category = obj.get("category") or obj.get("categories") or ""
        if isinstance(category, list):
            flat = [c for c in category if isinstance(c, str)]
            if category and isinstance(category[0], list):  # 2014 format: list of paths
                flat = [c for c in category[0] if isinstance(c, str)]
            category = " > ".join(flat)
        price_raw = obj.get("price")
        price: Optional[float] = None
        if isinstance(price_raw, (int, float)) and not isinstance(price_raw, bool):
            price = float(price_raw)
        elif isinstance(price_raw, str):
            try:
                price = float(price_raw.replace("$", "").replace(",", "").strip())
            except ValueError:
                price = None
        if price is not None and not price >= 0:
            price = None
        items[asin] = Item(item_id=asin, title=str(obj.get("title") or ""), category=str(category),
                           brand=str(obj.get("brand") or ""), price=price)
    return items


# --------------------------------------------------------------------------- MovieLens

ML_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
             "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
             "Romance", "Sci-Fi", "Thriller", "War", "Western")


def _int_field(text: str, what: str, path: str | Path, line_no: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(path, line_no, f"{what} must be an integer, got {text!r}") from None


def load_movielens_ratings(path: str | Path) -> LoadResult:
    """ml-100k ``u.data``: ``user \\t item \\t rating \\t unix_ts`` rows, as ``review`` events with a rating.

    An empty column is a missing value (counted by the cleaner); a wrong column count or a
    non-integer is malformed input.
    """
    result = LoadResult(events=[], source=str(path))
    row = 0
    for line_no, raw in text_lines(path):
        if not raw.strip():
            continue
        parts = raw.rstrip("\r\n").split("\t")
        if len(parts) != 4:
            raise DataError(path, line_no, f"expected 4 tab-separated fields, got {len(parts)}")
        user, item, rating, ts = (p.strip() for p in parts)
        result.counts["rows_read"] += 1
        result.events.append(Event(
            user_id=user or None, item_id=item or None,
            ts=_int_field(ts, "timestamp", path, line_no) if ts else None,
            event_type="review",
            rating=float(_int_field(rating, "rating", path, line_no)) if rating else None,
            row=row,
        ))
        row += 1
    return result


def load_movielens_items(path: str | Path) -> dict[str, Item]:
    """ml-100k ``u.item`` (Latin-1): title with year, and the genre flags joined as the category."""
    items: dict[str, Item] = {}
    for line_no, raw in text_lines(path, encoding="latin-1"):
        if not raw.strip():
            continue
        parts = raw.rstrip("\r\n").split("|")
        if len(parts) != 5 + len(ML_GENRES):
            raise DataError(path, line_no, f"expected {5 + len(ML_GENRES)} '|'-separated fields, got {len(parts)}")
        item_id = parts[0].strip()
        _int_field(item_id, "movie id", path, line_no)
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            raise DataError(path, line_no, "genre flags must be 0 or 1")
        genres = [g for g, f in zip(ML_GENRES, flags) if f == "1"]
        items[item_id] = Item(item_id=item_id, title=parts[1].strip(), category="|".join(genres))
    return items


def load_movielens(directory: str | Path) -> LoadResult:
    """ml-100k folder: ratings from ``u.data`` plus the catalogue from ``u.item``."""
    directory = Path(directory)
    result = load_movielens_ratings(directory / "u.data")
    result.items = load_movielens_items(directory / "u.item")
    return result


# --------------------------------------------------------------------------- sequence files

def load_user_item_pairs(path: str | Path) -> LoadResult:
    """``user item`` per line (SASRec/BERT4Rec files), each user's rows in chronological order.

    These files carry order but no time, so ``ts`` is the event's 0-based step within its
    user's sequence; the file row remains the tie-breaker. Event type is ``review`` (the
    files were built from Amazon reviews).
    """
    result = LoadResult(events=[], source=str(path))
    steps: Counter = Counter()
    row = 0
    for line_no, raw in text_lines(path):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(path, line_no, f"expected 'user item', got {len(parts)} fields")
        user, item = parts
        result.counts["rows_read"] += 1
        result.events.append(Event(user_id=user, item_id=item, ts=steps[user], event_type="review", row=row))
        steps[user] += 1
        row += 1
    return result


def load_user_sequences(path: str | Path) -> LoadResult:
    """``user i1 i2 ...`` per line (S3-Rec/ICLRec files), items in chronological order.

    As for pair files, ``ts`` is the step within the sequence. A line with a user and no item
    is counted as ``empty_sequences``; a user on two lines continues its sequence.
    """
    result = LoadResult(events=[], source=str(path))
    steps: Counter = Counter()
    row = 0
    for line_no, raw in text_lines(path):
        parts = raw.split()
        if not parts:
            continue
        result.counts["rows_read"] += 1
        user, items = parts[0], parts[1:]
        if not items:
            result.counts["empty_sequences"] += 1
            continue
        for item in items:
            result.events.append(Event(user_id=user, item_id=item, ts=steps[user], event_type="review", row=row))
            steps[user] += 1
            row += 1
    result.counts["events"] = len(result.events)
    return result


def _read_tsv_with_header(path: Path) -> list[tuple[int, list[str]]]:
    rows = []
    for line_no, raw in text_lines(path):
        if line_no == 1 or not raw.strip():
            continue  # RecBole atomic files start with a typed header
        rows.append((line_no, raw.rstrip("\r\n").split("\t")))
    return rows


def load_recbole_sequences(prefix: str | Path) -> LoadResult:
    """RecBole/UniSRec atomic split (``<prefix>.test.inter`` + ``.item2index`` + ``.user2index``).

    Each test row is (user, full history, last item), so it alone holds the whole sequence.
    Ids are mapped back to the original reviewer ids and ASINs so that item text joins on them.
    """
    prefix = Path(prefix)
    def index_map(path: Path) -> dict[str, str]:
        mapping = {}
        for line_no, raw in text_lines(path):
            if not raw.strip():
                continue
            parts = raw.rstrip("\r\n").split("\t")
            if len(parts) != 2:
                raise DataError(path, line_no, f"expected 'id \\t index', got {len(parts)} fields")
            mapping[parts[1]] = parts[0]
        return mapping
    items = index_map(prefix.with_name(prefix.name + ".item2index"))
    users = index_map(prefix.with_name(prefix.name + ".user2index"))
    test_path = prefix.with_name(prefix.name + ".test.inter")
    result = LoadResult(events=[], source=str(test_path))
    row = 0
    for line_no, parts in _read_tsv_with_header(test_path):
        if len(parts) != 3:
            raise DataError(test_path, line_no, f"expected 3 tab-separated fields, got {len(parts)}")
        result.counts["rows_read"] += 1
        sequence = parts[1].split() + [parts[2]]
        user = users.get(parts[0])
        if user is None:
            raise DataError(test_path, line_no, f"user index {parts[0]!r} is not in user2index")
        for step, index in enumerate(sequence):
            item = items.get(index)
            if item is None:
                raise DataError(test_path, line_no, f"item index {index!r} is not in item2index")
            result.events.append(Event(user_id=user, item_id=item, ts=step, event_type="review", row=row))
            row += 1
    return result


def load_item_text(path: str | Path) -> dict[str, Item]:
    """RecBole ``.text`` file: ``item_id \\t "title. category path. brand."`` after a header line.

    The three parts are split at the last two ". " separators (titles may contain ". " but
    category paths and brands almost never do); a text with fewer parts is kept as the title.
    """
    items: dict[str, Item] = {}
    path = Path(path)
    for line_no, parts in _read_tsv_with_header(path):
        if len(parts) != 2:
            raise DataError(path, line_no, f"expected 'item_id \\t text', got {len(parts)} fields")
        item_id, text = parts[0].strip(), parts[1].strip()
        if not item_id:
            raise DataError(path, line_no, "item_id is empty")
        pieces = text.rstrip(".").rstrip().split(". ")
        if len(pieces) >= 3:
            title, category, brand = ". ".join(pieces[:-2]), pieces[-2], pieces[-1]
        else:
            title, category, brand = text, "", ""
        items[item_id] = Item(item_id=item_id, title=title.strip(), category=category.strip(), brand=brand.strip())
    return items


def load_events_jsonl(path: str | Path, items_path: Optional[str | Path] = None) -> LoadResult:
    """The driftrec format itself (events.jsonl and optionally items.jsonl)."""
    result = LoadResult(events=read_events(path), source=str(path))
    result.counts["rows_read"] = len(result.events)
    if items_path is not None:
        result.items = {item.item_id: item for item in read_items(items_path)}
    return result
