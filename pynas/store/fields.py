"""Checks of single field values, shared by the store's records and the portable file reader.

Each check returns the value in its one normal form (so a value read back from a file compares
equal to the one written) or raises FieldError naming the field, what was expected and what it got.
"""
from __future__ import annotations

import json
import math
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from pynas.store.errors import FieldError

_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z", re.ASCII)
TIMESTAMP_FORMAT = "UTC 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z'"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 and C1 control characters (NUL, newline, escape, ...)
MAX_INTEGER = 2 ** 53  # every integer a JSON reader can hold exactly (and SQLite's INTEGER too)
MAX_MS = 1e6  # a latency beyond 1000 s is a corrupt number, not a measurement
MAX_JSON_DEPTH = 32  # features and harness are a few levels deep; deeper is no record pynas writes


class _Missing:
    """What a FieldError 'got' when the field is absent (None would read as JSON null)."""

    def __repr__(self) -> str:
        return "nothing (the field is missing)"


MISSING = _Missing()


def text(field: str, value: Any, *, empty: bool = False, spaces: bool = True) -> str:
    """A string without control characters (a NUL, a newline, an escape sequence: nothing a key,
    a name or a tag has, and what would garble a terminal or a one-line error); non-empty unless
    `empty`; without whitespace unless `spaces`."""
    if not isinstance(value, str) or (not empty and value == "") or (not spaces and re.search(r"\s", value)):
        what = "a string" if empty else "a non-empty string"
        raise FieldError(field, what + ("" if spaces else " without whitespace"), value)
    if _CONTROL.search(value):
        raise FieldError(field, "a string without control characters", value)
    return value


def _integer_range(minimum: int, maximum: int, value: Any) -> str:
    # The generic bound (what JSON holds exactly) is named only to a value beyond it.
    if maximum == MAX_INTEGER and not (isinstance(value, int) and value > maximum):
        return f"an integer >= {minimum}"
    return f"an integer in [{minimum}, {maximum}]"


def integer(field: str, value: Any, minimum: int, maximum: int = MAX_INTEGER) -> int:
    # bool is an int subclass: True must not pass as 1 thread.
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise FieldError(field, _integer_range(minimum, maximum, value), value)
    return value


def optional_integer(field: str, value: Any, minimum: int, maximum: int = MAX_INTEGER) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise FieldError(field, _integer_range(minimum, maximum, value) + " or null", value)
    return value


def number(field: str, value: Any, *, positive: bool = False, maximum: float = math.inf) -> float:
    """A finite number >= 0 (> 0 if `positive`) and <= `maximum`, as a float: 3500 and 3500.0 are
    the same value."""
    try:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        ok = False
    if not ok or value < 0 or (positive and value == 0) or value > maximum:
        bound = "" if maximum == math.inf else f" and <= {maximum:g}"
        raise FieldError(field, "a finite number " + ("> 0" if positive else ">= 0") + bound, value)
    return float(value)


def latency(field: str, value: Any) -> float:
    """A latency in ms: a finite number in [0, MAX_MS]."""
    return number(field, value, maximum=MAX_MS)


def optional_number(field: str, value: Any, *, positive: bool = False, maximum: float = math.inf) -> float | None:
    if value is None:
        return None
    try:
        return number(field, value, positive=positive, maximum=maximum)
    except FieldError as error:
        raise FieldError(field, error.expected + " or null", value) from None


def json_object(field: str, value: Any) -> dict:
    """A JSON object (str keys; nested lists, objects, strings, finite numbers, booleans, null; at
    most MAX_JSON_DEPTH levels deep), returned as a fresh copy in JSON's own types (tuples become
    lists), so it reads back equal."""
    if not isinstance(value, Mapping):
        raise FieldError(field, "a JSON object", value)
    try:
        copy = json.loads(json.dumps(value, allow_nan=False, sort_keys=True))
    except (TypeError, ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise FieldError(field, f"a JSON object of JSON values ({reason})", value) from None
    if json_depth(copy) > MAX_JSON_DEPTH:
        raise FieldError(field, f"a JSON object at most {MAX_JSON_DEPTH} levels deep", value)
    return copy


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in a JSON value (a scalar: 0), without recursion."""
    depth, level = 0, [value]
    while True:
        containers = [item for item in level if isinstance(item, (list, dict))]
        if not containers:
            return depth
        depth += 1
        level = [v for item in containers for v in (item.values() if isinstance(item, dict) else item)]


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces. Used for stored JSON columns and for hashing."""
    return json.dumps(value, allow_nan=False, sort_keys=True, separators=(",", ":"))


def name_list(field: str, value: Any) -> tuple[str, ...]:
    """A list of distinct names without whitespace, returned sorted (order carries no meaning)."""
    if not isinstance(value, (list, tuple)):
        raise FieldError(field, "a list of names", value)
    names = tuple(text(f"{field}[{i}]", name, spaces=False) for i, name in enumerate(value))
    if len(set(names)) != len(names):
        raise FieldError(field, "distinct names", value)
    return tuple(sorted(names))


def measurement_id(field: str, value: Any) -> str:
    """A UUID in its canonical text form (lowercase, 8-4-4-4-12 hex digits): one spelling per id,
    since the id is what deduplicates measurements across imports."""
    try:
        if isinstance(value, str) and str(uuid.UUID(value)) == value:
            return value
    except ValueError:
        pass
    raise FieldError(field, "a UUID in lowercase 8-4-4-4-12 hex form", value)


def timestamp(field: str, value: Any) -> str:
    """A UTC time, returned as 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (fixed width, so text order is time
    order in SQL)."""
    match = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise FieldError(field, f"a {TIMESTAMP_FORMAT} timestamp", value)
    parts = [int(p) for p in match.groups()[:6]]
    micros = int((match.group(7) or "0").ljust(6, "0"))
    try:
        moment = datetime(*parts, micros, tzinfo=timezone.utc)
    except ValueError as error:
        raise FieldError(field, f"a valid {TIMESTAMP_FORMAT} timestamp ({error})", value) from None
    return format_timestamp(moment)


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def exact_keys(field: str, data: Any, names: Iterable[str]) -> Mapping:
    """`data` is an object with exactly these keys: a missing one or an unknown one (a typo, or a
    field of a newer format version) is an error, never skipped."""
    names = list(names)
    if not isinstance(data, Mapping):
        raise FieldError(field or "value", "a JSON object with keys " + ", ".join(names), data)
    missing = [n for n in names if n not in data]
    if missing:
        raise FieldError(f"{field}.{missing[0]}" if field else missing[0], "a value", MISSING)
    unknown = sorted(k for k in data if k not in names)
    if unknown:
        where = f"{field}.{unknown[0]}" if field else unknown[0]
        raise FieldError(where, "no such field (known: " + ", ".join(names) + ")", data[unknown[0]])
    return data
