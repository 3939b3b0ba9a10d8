"""Portable measurement files: export a store's measurements, import them into another store.

Measurements taken on a phone or a board travel to a desktop store this way; importing a file
twice, or two files holding the same measurement, stores it once (the measurement_id decides).
The format is plain enough for a small C++ program to write: the static on-device profiler
`pynas-profile` writes it (cpp/profiling/record.cc).

Format version 1: JSON Lines, UTF-8, one JSON object per line, lines ending in '\\n'; gzip-compressed
when the file name ends in '.gz'. No blank lines. JSON numbers only (no NaN or Infinity); integers
written without fraction or exponent; an object never repeats a name.

Line 1, the header (fields besides these two are optional; any other field is an error):

    {"format": "pynas-measurements", "version": 1, "writer": "pynas-profile 0.1.0",
     "created_at": "2026-01-02T03:04:05Z"}

    format      "pynas-measurements"
    version     1
    writer      optional string: the program that wrote the file
    created_at  optional string: UTC time, as measured_at

Every further line is one self-contained measurement with exactly these fields (null only where
said; the importer rejects a missing or unknown field, naming the file, line and field):

    measurement_id   string   UUID in lowercase 8-4-4-4-12 hex form; a fresh random (version 4)
                              UUID per measurement, e.g. from 16 bytes of /dev/urandom
    measured_at      string   UTC time 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z' (in C:
                              strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(&t)))
    session          string   non-empty origin tag of the run, e.g. "pixel7 2026-01-02"
    device           object   the device (see pynas.store.fingerprint; the importer derives its id):
        cpu_model      string             may be ""
        machine        string             uname -m: "aarch64", "x86_64"
        os             string             uname -s: "Linux"
        isa_flags      array of strings   the names pynas._core.cpu_features() reports true
                                          (e.g. ["dotprod", "fp16", "neon"]), no repeats, any order
        logical_cores  integer >= 1
        l1d_bytes      integer >= 1 or null
        l2_bytes       integer >= 1 or null
        l3_bytes       integer >= 1 or null
        max_mhz        number > 0 or null
    kernel           string   uname -r
    cpu_mhz          number > 0 or null   cpu0's clock when the run started
    backend          string without whitespace   e.g. "native"
    backend_version  string without whitespace
    threads          integer in [1, 4096]
    pynas_version    string without whitespace
    key              string without whitespace   IR canonical key, or an architecture string
    kind             string   "network", a segment kind (stem, mbconv, dsconv, convblock, head) or
                              an op kind (conv, dwconv, pwconv, ...): pynas.store.records.KINDS
    features         object   shapes, kernel, stride, MACs, bytes, ... (JSON values)
    stats            object   latencies in ms, each at most 1e6 (1000 s)
        median_ms      number >= 0
        mad_ms         number >= 0   median absolute deviation
        p10_ms         number >= 0
        p90_ms         number >= p10_ms
        runs           integer >= 1
    harness          object   how it was timed (JSON values), {} if nothing to say

Strings hold no control characters (U+0000-U+001F, U+007F-U+009F); features and harness nest at
most 32 levels deep; integers are at most 2^53.

An import is one transaction: a bad line anywhere imports nothing.
"""
from __future__ import annotations

import gzip
import json
import os
import zlib
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from pynas.store import fields
from pynas.store.db import Store
from pynas.store.errors import FieldError, StoreError, shown
from pynas.store.records import Measurement

FORMAT = "pynas-measurements"
VERSION = 1
HEADER_FIELDS = ("format", "version", "writer", "created_at")


@dataclass(frozen=True)
class ImportResult:
    path: Path
    records: int
    added: int
    duplicates: int  # already in the store


def export_jsonl(store: Store, path: str | os.PathLike, *, overwrite: bool = False, **filters: Any) -> int:
    """Write the store's measurements matching `filters` (see Store.measurements) to a portable
    file; returns how many. Written to a temporary file first and renamed, so `path` never holds a
    partial export. An existing file is an error unless `overwrite`."""
    import pynas

    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreError(f"{path}: already exists; expected a new file name (overwrite=True, or --force, replaces it)")
    measurements = store.measurements(**filters)  # checks the filters before a file is made
    header = {"format": FORMAT, "version": VERSION, "writer": f"pynas {pynas.__version__}",
              "created_at": fields.format_timestamp(datetime.now(timezone.utc))}
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    count = 0
    try:
        with open(partial, "wb") as raw:
            compress = path.suffix == ".gz"
            # Closing the GzipFile writes its trailer and leaves `raw` open for the fsync.
            with gzip.GzipFile(filename=path.stem, mode="wb", fileobj=raw) if compress else nullcontext(raw) as out:
                out.write(_line(header))
                for measurement in measurements:
                    out.write(_line(measurement.to_record()))
                    count += 1
            # On disk before the rename, so a crash cannot leave `path` naming an empty file.
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    except OSError as error:
        raise StoreError(f"{path}: cannot write ({error})") from error
    finally:
        if partial.exists():
            partial.unlink()
    return count


def import_jsonl(store: Store, path: str | os.PathLike) -> ImportResult:
    """Add a portable file's measurements to the store in one transaction: all or, on any error,
    none. Errors name the file, the line and the field."""
    reader = _Reader(Path(path))
    records = reader.records()
    try:
        result = store.merge(records)
    except StoreError as error:
        if reader.failed or reader.line == 0:
            raise
        # The store refused a record (same id, other content; conflicting features): say which line.
        raise StoreError(f"{reader.path}:{reader.line}: {error}") from error
    finally:
        records.close()  # closes the file when the store stopped reading early
    return ImportResult(reader.path, result.added + result.duplicates, result.added, result.duplicates)


def _line(value: dict) -> bytes:
    return (json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class _Reader:
    """Parses a portable file line by line, knowing where it is for error messages."""

    def __init__(self, path: Path):
        self.path = path
        self.line = 0
        self.failed = False  # the last error came from the file itself, and already names the line

    def records(self) -> Iterator[Measurement]:
        try:
            stream = gzip.open(self.path, "rb") if self.path.suffix == ".gz" else open(self.path, "rb")
        except OSError as error:
            raise self._error(f"cannot read ({error.strerror or error})") from error
        with stream:
            lines = self._lines(stream)
            first = next(lines, None)
            if first is None:
                raise self._error(f'expected a header line {{"format": "{FORMAT}", "version": {VERSION}}}, '
                                  "got an empty file")
            self._check_header(self._json(first))
            for text in lines:
                value = self._json(text)
                if not isinstance(value, dict):
                    raise self._error(f"expected a measurement record (a JSON object), got {shown(value)}")
                try:
                    measurement = Measurement.from_record(value)
                except FieldError as error:
                    raise self._error(str(error)) from None
                yield measurement

    def _lines(self, stream) -> Iterator[str]:
        while True:
            try:
                raw = stream.readline()
            except (OSError, EOFError, zlib.error) as error:  # gzip: bad or truncated data
                self.line += 1
                raise self._error(f"not readable as gzip ({error})") from error
            if not raw:
                return
            self.line += 1
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise self._error(f"expected UTF-8 text ({error})") from None

    def _json(self, text: str) -> Any:
        if not text.strip():
            raise self._error("expected a JSON object, got a blank line")
        try:
            return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_names)
        except ValueError as error:  # json.JSONDecodeError, or one of the hooks
            raise self._error(f"not valid JSON ({error})") from None
        except RecursionError:  # e.g. [[[[...]]]] 100,000 deep: no record nests like that
            raise self._error(f"expected a JSON object, got JSON nested too deeply to read "
                              f"(records nest at most {fields.MAX_JSON_DEPTH} levels)") from None

    def _check_header(self, header: Any) -> None:
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            got = header.get("format") if isinstance(header, dict) else header
            raise self._error(f"not a pynas measurements file: header field 'format' expected {FORMAT!r}, got "
                              f"{shown(got)}")
        if header.get("version") != VERSION:
            newer = isinstance(header.get("version"), int) and header["version"] > VERSION
            raise self._error(f"header field 'version' expected {VERSION}, got {shown(header.get('version'))}"
                              + (": written by a newer pynas, upgrade pynas to import it" if newer else ""))
        try:
            for name in header:
                if name not in HEADER_FIELDS:
                    raise FieldError(name, "no such header field (known: " + ", ".join(HEADER_FIELDS) + ")",
                                     header[name])
            if "writer" in header:
                fields.text("writer", header["writer"])
            if "created_at" in header:
                fields.timestamp("created_at", header["created_at"])
        except FieldError as error:
            raise self._error(str(error)) from None

    def _error(self, message: str) -> StoreError:
        self.failed = True
        return StoreError(f"{self.path}:{self.line}: {message}" if self.line else f"{self.path}: {message}")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _unique_names(pairs: list[tuple[str, Any]]) -> dict:
    value = dict(pairs)
    if len(value) != len(pairs):  # json.loads would silently keep the last of the repeated names
        seen: set[str] = set()
        repeated = next(name for name, _ in pairs if name in seen or seen.add(name))
        raise ValueError(f"name {repeated!r} repeated in one object")
    return value
