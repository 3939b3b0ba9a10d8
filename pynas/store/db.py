"""The measurement store: one SQLite file, by default in the user's cache (default_path()).

Schema version 2, marked by PRAGMA application_id = APPLICATION_ID ('PNAS') and PRAGMA
user_version = SCHEMA_VERSION, so pynas recognises its own files and refuses anything else:

    devices       device_id (fingerprint.DeviceFingerprint.device_id) and the fingerprint's fields
    op_keys       key (IR canonical key, or an architecture string for kind 'network'), kind,
                  features (JSON object)
    measurements  measurement_id (UUID), device_id, backend, backend_version, threads, key,
                  median_ms, mad_ms, p10_ms, p90_ms, runs, measured_at, harness (JSON object),
                  session, pynas_version, kernel, cpu_mhz
    claims        (version 2) device_id, backend, backend_version, threads, key: an item a process
                  is measuring (host, pid, its start time, claimed_at), see Store.claim

Opening checks the file before anything writes to it: a file that is not SQLite, is damaged, belongs
to another application or has a newer schema version raises StoreError and stays unchanged. A path
that does not exist (or an empty file) becomes a new store. A store of an older version is migrated
when opened for writing (`_MIGRATIONS`, under the write lock, re-checked there, in one transaction:
all or nothing); opened only to read (create=False) it is read as it is and left unchanged.

A row edited or damaged by hand (malformed JSON in a column, a value no record can have) is a
StoreError naming the file, the measurement (its id and rowid) and the column, never a traceback.

Durability and concurrency: write-ahead logging (WAL), synchronous=FULL, and every record() is its
own BEGIN IMMEDIATE ... COMMIT, so a process killed at any moment loses at most the measurement it
was recording, and several processes can write one store: a writer waits for the lock (SQLite's
busy timeout, then retries) up to `busy_timeout` seconds.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from pynas.store import fields
from pynas.store.errors import StoreError, shown
from pynas.store.fingerprint import DeviceFingerprint
from pynas.store.records import Context, Measurement, OpKey, Stats

APPLICATION_ID = 0x504E4153  # 'PNAS' in ASCII
SCHEMA_VERSION = 2
SQLITE_MAGIC = b"SQLite format 3\x00"
TABLES = ("devices", "op_keys", "measurements", "claims")
_TABLES_OF_VERSION = {1: TABLES[:3], 2: TABLES}
CLAIM_TIMEOUT_SECONDS = 6 * 3600  # a claim this old is stale even if its process lives (a hung run)

# Version 1's schema; a new store gets it, then every migration in order.
_SCHEMA = (
    """CREATE TABLE devices (
        device_id     TEXT PRIMARY KEY,
        cpu_model     TEXT NOT NULL,
        machine       TEXT NOT NULL,
        os            TEXT NOT NULL,
        isa_flags     TEXT NOT NULL,  -- JSON list of names, sorted
        logical_cores INTEGER NOT NULL,
        l1d_bytes     INTEGER,
        l2_bytes      INTEGER,
        l3_bytes      INTEGER,
        max_mhz       REAL)""",
    """CREATE TABLE op_keys (
        key      TEXT PRIMARY KEY,
        kind     TEXT NOT NULL,
        features TEXT NOT NULL)  -- JSON object""",
    """CREATE TABLE measurements (
        measurement_id  TEXT PRIMARY KEY,  -- UUID: a measurement imported twice is stored once
        device_id       TEXT NOT NULL REFERENCES devices (device_id),
        backend         TEXT NOT NULL,
        backend_version TEXT NOT NULL,
        threads         INTEGER NOT NULL,
        key             TEXT NOT NULL REFERENCES op_keys (key),
        median_ms       REAL NOT NULL,
        mad_ms          REAL NOT NULL,
        p10_ms          REAL NOT NULL,
        p90_ms          REAL NOT NULL,
        runs            INTEGER NOT NULL,
        measured_at     TEXT NOT NULL,  -- UTC 'YYYY-MM-DDTHH:MM:SS.ffffffZ': text order is time order
        harness         TEXT NOT NULL,  -- JSON object
        session         TEXT NOT NULL,
        pynas_version   TEXT NOT NULL,
        kernel          TEXT NOT NULL,
        cpu_mhz         REAL)""",
    # Store.missing() asks for the keys measured in one (device, backend, version, threads) series.
    "CREATE INDEX measurements_by_series ON measurements (device_id, backend, backend_version, threads, key)",
)
# version -> the statements taking a store from the version before to it.
_MIGRATIONS = {
    2: ("""CREATE TABLE claims (
        device_id       TEXT NOT NULL,
        backend         TEXT NOT NULL,
        backend_version TEXT NOT NULL,
        threads         INTEGER NOT NULL,
        key             TEXT NOT NULL,
        host            TEXT NOT NULL,  -- socket.gethostname() of the process holding the claim
        pid             INTEGER NOT NULL,
        started         TEXT NOT NULL,  -- the process's start time ('' where unknown): a reused pid is another process
        claimed_at      REAL NOT NULL,  -- Unix time
        PRIMARY KEY (device_id, backend, backend_version, threads, key))""",),
}
_DEVICE_COLUMNS = ("cpu_model", "machine", "os", "isa_flags", "logical_cores", "l1d_bytes", "l2_bytes", "l3_bytes",
                   "max_mhz")
_MEASUREMENT_COLUMNS = ("measurement_id", "device_id", "backend", "backend_version", "threads", "key", "median_ms",
                        "mad_ms", "p10_ms", "p90_ms", "runs", "measured_at", "harness", "session", "pynas_version",
                        "kernel", "cpu_mhz")
_FILTERS = ("device_id", "backend", "backend_version", "threads", "key", "kind", "session")


def default_path() -> Path:
    """$PYNAS_DB if set, else $XDG_CACHE_HOME/pynas/measurements.sqlite, else
    ~/.cache/pynas/measurements.sqlite. A relative XDG_CACHE_HOME is ignored, as the XDG Base
    Directory specification requires."""
    if os.environ.get("PYNAS_DB"):
        return Path(os.environ["PYNAS_DB"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "pynas" / "measurements.sqlite"


@dataclass(frozen=True)
class MergeResult:
    added: int
    duplicates: int  # already in the store (same measurement_id, same content)


@dataclass(frozen=True)
class SummaryRow:
    device_id: str
    cpu_model: str
    backend: str
    backend_version: str
    threads: int
    kind: str
    count: int
    first: str
    last: str


@dataclass(frozen=True)
class Summary:
    path: Path
    measurements: int
    devices: int
    keys: int
    sessions: int
    first: str | None  # measured_at of the oldest measurement; None in an empty store
    last: str | None
    rows: tuple[SummaryRow, ...]  # per device, backend and version, threads, kind


class Store:
    """An open measurement store. Use one per thread (sqlite3 connections are not shared)."""

    def __init__(self, path: str | os.PathLike | None = None, *, busy_timeout: float = 60.0, create: bool = True):
        """Open the store at `path` (default: `default_path()`). With `create` False (commands that
        only read), a path without a store, an empty file included, is a StoreError and nothing is
        written."""
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.busy_timeout = fields.number("busy_timeout", busy_timeout, positive=True)
        self.schema_version = 0  # the file's: 0 for a new store until it is made
        if not create and not _has_content(self.path):
            what = "a folder" if self.path.is_dir() else "an empty file" if self.path.exists() else "nothing"
            raise StoreError(f"{self.path}: expected a measurement store, got {what} there (--db PATH, or $PYNAS_DB)")
        if _has_content(self.path):
            _check_header(self.path)
            self.schema_version = _check_schema(self.path, *_inspect_file(self.path, self.busy_timeout))
            if not create and self.schema_version == 0:
                raise StoreError(f"{self.path}: expected a measurement store, got an empty SQLite database there "
                                 "(--db PATH, or $PYNAS_DB); pynas left the file unchanged")
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"{self.path}: cannot create its folder ({error})") from error
        try:
            self._conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: cannot open ({error})") from error
        try:
            self._configure()
            # A current store opens without the write lock, so readers never wait for writers; a
            # new one is made, an older one migrated (only when opened for writing), under the lock.
            if self.schema_version == 0 or (create and self.schema_version < SCHEMA_VERSION):
                with self._write("create the schema" if self.schema_version == 0 else "migrate the schema"):
                    # Checked again under the write lock: another process may have done it meanwhile.
                    version = _check_schema(self.path, *_inspect(self._conn))
                    if version == 0:
                        for statement in _SCHEMA:
                            self._conn.execute(statement)
                        self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                        version = 1
                    for step in range(version + 1, SCHEMA_VERSION + 1):
                        for statement in _MIGRATIONS[step]:
                            self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self.schema_version = SCHEMA_VERSION
        except BaseException:
            self._conn.close()
            raise

    # -- life cycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- writing ---------------------------------------------------------------------------------
    def record(self, context: Context, op: OpKey, stats: Stats, *, harness: dict[str, Any] | None = None,
               measured_at: str | None = None) -> Measurement:
        """Store one new measurement (fresh UUID, taken now unless `measured_at` says when) and
        commit it before returning. The op key's features are merged into the stored ones: a new
        feature name is added, a known one with another value raises StoreError."""
        measurement = Measurement.new(context, op, stats, harness, measured_at)
        with self._write("record a measurement"):
            self._insert(measurement)
        return measurement

    def merge(self, measurements: Iterable[Measurement]) -> MergeResult:
        """Add measurements from elsewhere in one transaction (all or none): one whose UUID is
        already stored with the same content is a duplicate and skipped; with other content it
        raises StoreError. An exception from the iterable rolls everything back too."""
        added = duplicates = 0
        with self._write("merge measurements"):
            for measurement in measurements:
                if self._insert(measurement):
                    added += 1
                else:
                    duplicates += 1
        return MergeResult(added, duplicates)

    # -- claims: several processes profiling into one store ---------------------------------------
    def claim(self, context: Context, key: str, *, skip_measured: bool = False, session: str | None = None,
              timeout: float = CLAIM_TIMEOUT_SECONDS) -> bool:
        """Take `key` of the context's series (device, backend, backend_version, threads) for this
        process, atomically (one write transaction), so that other processes profiling into this
        store leave it alone: True if it is now this process's (or already was), False if another
        live process holds it. A claim is stale, and taken over, when its process is gone (a pid
        on this host that is dead or now another process) or it is older than `timeout` seconds.
        With `skip_measured`, also False when the series already has a measurement of the key (in
        `session` if given; else one not taken in a slow spell): another process measured it since
        this one planned."""
        key = fields.text("key", key, spaces=False)
        series = context.series
        me = _this_process()
        with self._write("claim an item"):
            self._need_claims()
            if skip_measured:
                query = ("SELECT 1 FROM measurements WHERE device_id = ? AND backend = ? AND backend_version = ?"
                         " AND threads = ? AND key = ?")
                parameters = (*series, key)
                if session is not None:
                    query += " AND session = ?"
                    parameters += (fields.text("session", session),)
                else:
                    query += " AND COALESCE(json_extract(harness, '$.slow_spell'), 0) = 0"
                if self._conn.execute(query + " LIMIT 1", parameters).fetchone():
                    return False
            holder = self._conn.execute(
                "SELECT host, pid, started, claimed_at FROM claims WHERE device_id = ? AND backend = ?"
                " AND backend_version = ? AND threads = ? AND key = ?", (*series, key)).fetchone()
            if holder is not None and tuple(holder[:3]) != me and not _stale(*holder, timeout=timeout):
                return False
            self._conn.execute("INSERT OR REPLACE INTO claims (device_id, backend, backend_version, threads, key, host,"
                               " pid, started, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               (*series, key, *me, time.time()))
        return True

    def release(self, context: Context, key: str | None = None) -> int:
        """Give up this process's claim of `key` in the context's series (None: all its claims
        there); returns how many were released."""
        query = ("DELETE FROM claims WHERE device_id = ? AND backend = ? AND backend_version = ? AND threads = ?"
                 " AND host = ? AND pid = ? AND started = ?")
        parameters = (*context.series, *_this_process())
        if key is not None:
            query += " AND key = ?"
            parameters += (fields.text("key", key, spaces=False),)
        with self._write("release claims"):
            self._need_claims()
            return self._conn.execute(query, parameters).rowcount

    def claims(self, context: Context) -> dict[str, tuple[str, int]]:
        """key -> (host, pid) of the claims held in the context's series, stale ones included."""
        self._need_claims()
        with self._sqlite_errors("read claims"):
            return {row[0]: (row[1], row[2]) for row in self._conn.execute(
                "SELECT key, host, pid FROM claims WHERE device_id = ? AND backend = ? AND backend_version = ?"
                " AND threads = ?", context.series)}

    def _need_claims(self) -> None:
        if self.schema_version < 2:
            raise StoreError(f"{self.path}: a store of schema version {self.schema_version} (opened only to read) "
                             f"has no claims: open it for writing to migrate it to version {SCHEMA_VERSION}")

    # -- reading ---------------------------------------------------------------------------------
    def missing(self, context: Context, keys: Iterable[str], *, session: str | None = None) -> list[str]:
        """The keys not yet measured in the context's series (device, backend, backend_version,
        threads), or in that series by the named `session`, in the given order without repeats:
        what an interrupted run (or pass) still has to do."""
        wanted = [fields.text(f"keys[{i}]", key, spaces=False) for i, key in enumerate(keys)]
        query = ("SELECT DISTINCT key FROM measurements WHERE device_id = ? AND backend = ? AND backend_version = ?"
                 " AND threads = ?")
        parameters = context.series
        if session is not None:
            query += " AND session = ?"
            parameters = (*parameters, fields.text("session", session))
        with self._sqlite_errors("find measured keys"):
            done = {row[0] for row in self._conn.execute(query, parameters)}
        return list(dict.fromkeys(key for key in wanted if key not in done))

    def slow_only(self, context: Context) -> set[str]:
        """The keys of the context's series whose every measurement was taken in a slow spell
        (harness `slow_spell`, see pynas.profiling.session): measured, but worth measuring again."""
        with self._sqlite_errors("find keys measured only in slow spells"):
            return {row[0] for row in self._conn.execute(
                "SELECT key FROM measurements WHERE device_id = ? AND backend = ? AND backend_version = ?"
                " AND threads = ? GROUP BY key"
                " HAVING MIN(COALESCE(json_extract(harness, '$.slow_spell'), 0)) = 1", context.series)}

    def reference_times(self, context: Context) -> list[float]:
        """The drift reference's times (harness `reference_ms`, see pynas.profiling.session)
        recorded with the context's series' measurements: the machine's states over earlier runs."""
        with self._sqlite_errors("read the reference times"):
            return [row[0] for row in self._conn.execute(
                "SELECT json_extract(harness, '$.reference_ms') AS ms FROM measurements WHERE device_id = ?"
                " AND backend = ? AND backend_version = ? AND threads = ? AND ms IS NOT NULL", context.series)]

    def measurements(self, **filters: Any) -> Iterator[Measurement]:
        """Stored measurements, oldest first, where every given filter matches exactly: device_id,
        backend, backend_version, threads, key, kind, session. Reads one consistent snapshot;
        finish iterating before writing with this Store."""
        unknown = sorted(set(filters) - set(_FILTERS))
        if unknown:
            raise StoreError(f"measurements(): unknown filter {unknown[0]!r}; expected one of {', '.join(_FILTERS)}")
        where = " AND ".join(f"{'k' if name == 'kind' else 'm'}.{name} = ?" for name in filters) or "1"
        columns = ", ".join([f"m.{c}" for c in _MEASUREMENT_COLUMNS] + [f"d.{c}" for c in _DEVICE_COLUMNS]
                            + ["k.kind", "k.features", "m.rowid"])
        query = (f"SELECT {columns} FROM measurements m JOIN devices d USING (device_id) JOIN op_keys k USING (key)"
                 f" WHERE {where} ORDER BY m.measured_at, m.measurement_id")
        return self._rows(query, tuple(filters.values()))

    def _rows(self, query: str, parameters: tuple) -> Iterator[Measurement]:
        # A generator of its own, so measurements() checks its filters when called, not when read.
        with self._sqlite_errors("read measurements"):
            cursor = self._conn.execute(query, parameters)
            while rows := cursor.fetchmany(256):
                for row in rows:
                    yield _measurement_from_row(self.path, row)

    def devices(self) -> dict[str, DeviceFingerprint]:
        """Every stored device by its id."""
        with self._sqlite_errors("read devices"):
            rows = self._conn.execute(f"SELECT device_id, {', '.join(_DEVICE_COLUMNS)} FROM devices").fetchall()
        return {row[0]: _device_from_row(row[1:], f"{self.path}: device {row[0]!r}") for row in rows}

    def summary(self) -> Summary:
        """Counts per device, backend and version, threads and kind, and the time span; a
        StoreError naming the first row whose JSON columns are damaged (`check_json`)."""
        self.check_json()
        with self._sqlite_errors("summarise"):
            rows = self._conn.execute(
                "SELECT m.device_id, d.cpu_model, m.backend, m.backend_version, m.threads, k.kind, count(*),"
                " min(m.measured_at), max(m.measured_at)"
                " FROM measurements m JOIN devices d USING (device_id) JOIN op_keys k USING (key)"
                " GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 3, 4, 5, 6").fetchall()
            count, sessions, first, last = self._conn.execute(
                "SELECT count(*), count(DISTINCT session), min(measured_at), max(measured_at) FROM measurements"
            ).fetchone()
            devices = self._conn.execute("SELECT count(*) FROM devices").fetchone()[0]
            keys = self._conn.execute("SELECT count(*) FROM op_keys").fetchone()[0]
        return Summary(self.path, count, devices, keys, sessions, first, last, tuple(SummaryRow(*row) for row in rows))

    def check_json(self) -> None:
        """StoreError naming the file, the row and the column of the first stored JSON value that
        is malformed or not of its type (measurements.harness and op_keys.features objects,
        devices.isa_flags an array): a row edited or damaged by hand."""
        checks = (("measurements", "harness", "object", "'measurement ' || quote(measurement_id)"),
                  ("op_keys", "features", "object", "'op key ' || quote(key)"),
                  ("devices", "isa_flags", "array", "'device ' || quote(device_id)"))
        for table, column, kind, name in checks:
            with self._sqlite_errors(f"check {table}.{column}"):
                row = self._conn.execute(
                    f"SELECT rowid, {name}, CASE WHEN json_valid({column}) THEN 'not a JSON {kind}' ELSE"
                    f" 'malformed JSON' END, substr(CAST({column} AS TEXT), 1, 40) FROM {table}"
                    f" WHERE CASE WHEN json_valid({column}) THEN json_type({column}) <> '{kind}' ELSE 1 END"
                    f" LIMIT 1").fetchone()
            if row is not None:
                rowid, what, problem, start = row
                raise StoreError(f"{self.path}: {what} ({table} row {rowid}): column {column}: expected a JSON "
                                 f"{kind}, got {problem} ({start!r}...): the row was edited or damaged")

    # -- internals -------------------------------------------------------------------------------
    def _configure(self) -> None:
        with self._sqlite_errors("configure"):
            mode = self._retry_busy("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{self.path}: journal_mode expected 'wal', got {mode!r}: write-ahead logging "
                                 "needs a local file system with shared memory")
            # FULL: a committed measurement survives a power cut too, not only a killed process.
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")

    @contextmanager
    def _sqlite_errors(self, action: str):
        """SQLite's errors (a damaged page found late, a full disk) as StoreError naming the file."""
        try:
            yield
        except sqlite3.Error as error:
            if "JSON" in str(error) and not action.startswith("check "):  # json_extract met a damaged row: say which
                self.check_json()
            raise StoreError(f"{self.path}: cannot {action}: {error}") from error

    @contextmanager
    def _write(self, action: str):
        """One BEGIN IMMEDIATE ... COMMIT transaction; any exception rolls it back."""
        with self._sqlite_errors(action):
            # IMMEDIATE takes the write lock up front, so a transaction never fails half-way
            # because another writer got in first.
            self._retry_busy("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _retry_busy(self, statement: str) -> sqlite3.Cursor:
        """Run a statement that takes a lock. SQLite's busy handler waits for the lock, but SQLite
        answers SQLITE_BUSY at once where waiting could deadlock (two connections switching a new
        file to WAL, a connection recovering the WAL), so retry until busy_timeout has passed."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.001
        while True:
            try:
                return self._conn.execute(statement)
            except sqlite3.OperationalError as error:
                if not _is_busy(error):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreError(f"{self.path}: another process has held the write lock for more than "
                                     f"{self.busy_timeout:g} s") from error
            time.sleep(delay)
            delay = min(2 * delay, 0.1)

    def _insert(self, m: Measurement) -> bool:
        """Insert inside an open transaction; False if the measurement is already stored."""
        conn, device = self._conn, m.context.device
        device_id = device.device_id
        row = conn.execute(f"SELECT {', '.join(_DEVICE_COLUMNS)} FROM devices WHERE device_id = ?",
                           (device_id,)).fetchone()
        if row is None:
            conn.execute(f"INSERT INTO devices (device_id, {', '.join(_DEVICE_COLUMNS)}) VALUES (?{', ?' * 9})",
                         (device_id, *_device_row(device)))
        elif _device_from_row(row, f"{self.path}: device {device_id!r}") != device:
            raise StoreError(f"{self.path}: device {device_id} is stored with other facts "
                             f"({_device_from_row(row)} vs {device}): an edited store or a hash collision")
        self._insert_op(m.op)
        new = _measurement_row(m)
        stored = conn.execute(f"SELECT {', '.join(_MEASUREMENT_COLUMNS)} FROM measurements WHERE measurement_id = ?",
                              (m.measurement_id,)).fetchone()
        if stored is not None:
            for column, old_value, new_value in zip(_MEASUREMENT_COLUMNS, stored, new):
                if old_value != new_value:
                    raise StoreError(f"{self.path}: measurement {m.measurement_id} is stored with {column} "
                                     f"{old_value!r}, got {new_value!r}: one id for two measurements")
            return False
        conn.execute(f"INSERT INTO measurements ({', '.join(_MEASUREMENT_COLUMNS)}) "
                     f"VALUES (?{', ?' * (len(_MEASUREMENT_COLUMNS) - 1)})", new)
        return True

    def _insert_op(self, op: OpKey) -> None:
        row = self._conn.execute("SELECT kind, features FROM op_keys WHERE key = ?", (op.key,)).fetchone()
        if row is None:
            self._conn.execute("INSERT INTO op_keys (key, kind, features) VALUES (?, ?, ?)",
                               (op.key, op.kind, fields.canonical_json(op.features)))
            return
        kind, features = row[0], _json_column(f"{self.path}: op key {op.key!r}", "features", row[1], dict)
        if kind != op.kind:
            raise StoreError(f"{self.path}: op key {op.key!r} is stored with kind {kind!r}, got {op.kind!r}")
        for name, value in op.features.items():
            if name in features and features[name] != value:
                raise StoreError(f"{self.path}: op key {op.key!r}: feature {name!r} is stored as "
                                 f"{features[name]!r}, got {value!r}")
        # A later pynas may describe ops with more features: add them, never drop stored ones.
        if not op.features.keys() <= features.keys():
            self._conn.execute("UPDATE op_keys SET features = ? WHERE key = ?",
                               (fields.canonical_json({**features, **op.features}), op.key))


def _device_row(device: DeviceFingerprint) -> tuple:
    data = device.to_dict()
    data["isa_flags"] = json.dumps(data["isa_flags"])
    return tuple(data[c] for c in _DEVICE_COLUMNS)


def _device_from_row(row, where: str = "device") -> DeviceFingerprint:
    data = dict(zip(_DEVICE_COLUMNS, row))
    data["isa_flags"] = _json_column(where, "isa_flags", data["isa_flags"], list)
    try:
        return DeviceFingerprint(**data)
    except StoreError as error:
        raise StoreError(f"{where}: column {getattr(error, 'field', '?')}: {error}") from None


def _json_column(where: str, column: str, text, kind: type):
    """A stored JSON column's value; StoreError naming where (file and row) and the column."""
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError) as error:
        raise StoreError(f"{where}: column {column}: expected a JSON {'object' if kind is dict else 'array'}, got "
                         f"malformed JSON ({type(error).__name__}: {str(error)[:80]}): the row was edited or damaged") \
            from None
    if not isinstance(value, kind):
        raise StoreError(f"{where}: column {column}: expected a JSON {'object' if kind is dict else 'array'}, got "
                         f"{shown(text, 60)}: the row was edited or damaged")
    return value


def _measurement_row(m: Measurement) -> tuple:
    c, s = m.context, m.stats
    return (m.measurement_id, c.device.device_id, c.backend, c.backend_version, c.threads, m.op.key, s.median_ms,
            s.mad_ms, s.p10_ms, s.p90_ms, s.runs, m.measured_at, fields.canonical_json(m.harness), c.session,
            c.pynas_version, c.kernel, c.cpu_mhz)


def _measurement_from_row(path: Path, row) -> Measurement:
    """A measurement from a row of Store.measurements()' query (its rowid last); a damaged row is a
    StoreError naming the file, the measurement, its rowid and the column."""
    n = len(_MEASUREMENT_COLUMNS)
    m = dict(zip(_MEASUREMENT_COLUMNS, row[:n]))
    kind, features, rowid = row[n + len(_DEVICE_COLUMNS):]
    where = f"{path}: measurement {shown(m['measurement_id'], 60)} (measurements row {rowid})"
    device = _device_from_row(row[n:n + len(_DEVICE_COLUMNS)], f"{where}: device {m['device_id']!r}")
    features = _json_column(f"{where}: op key {shown(m['key'], 60)}", "op_keys.features", features, dict)
    harness = _json_column(where, "harness", m["harness"], dict)
    try:
        context = Context(device, m["backend"], m["backend_version"], m["threads"], m["session"], m["pynas_version"],
                          m["kernel"], m["cpu_mhz"])
        stats = Stats(m["median_ms"], m["mad_ms"], m["p10_ms"], m["p90_ms"], m["runs"])
        return Measurement(m["measurement_id"], m["measured_at"], context, OpKey(m["key"], kind, features), stats,
                           harness)
    except StoreError as error:  # FieldError: a value no record can have
        raise StoreError(f"{where}: column {getattr(error, 'field', '?')}: {error}: the row was edited or "
                         f"damaged") from None


# -- checks before opening -----------------------------------------------------------------------
def _has_content(path: Path) -> bool:
    """False for a missing or empty file (both become a new store: an empty file holds nothing to
    lose, and tempfile.mkstemp() makes one)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    except OSError as error:
        raise StoreError(f"{path}: cannot read ({error.strerror})") from error
    if path.is_dir():
        raise StoreError(f"{path}: expected a pynas measurement store file, got a directory")
    return info.st_size > 0


def _check_header(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise StoreError(f"{path}: cannot read ({error.strerror})") from error
    if head != SQLITE_MAGIC:
        raise StoreError(f"{path}: not an SQLite database: header expected {SQLITE_MAGIC!r}, got {head!r}; "
                         "pynas left the file unchanged")


@contextmanager
def _read_only(path: Path, timeout: float):
    """A connection SQLite itself keeps from writing the file (mode=ro), to inspect a file that may
    not be ours. Without a -wal file beside it the file alone holds the whole database, and
    immutable=1 reads it without creating -wal and -shm files next to someone else's database. (A
    writer starting meanwhile writes to a new -wal, not to the file; Store re-checks under its lock.)"""
    wal = path.with_name(path.name + "-wal")
    uri = "file:" + urllib.request.pathname2url(str(path.resolve())) + "?mode=ro"
    if not wal.exists():
        uri += "&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout)
    except sqlite3.Error as error:
        raise StoreError(f"{path}: cannot open ({error})") from error
    try:
        yield conn
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path}: damaged or unreadable SQLite file ({error}): expected a pynas measurement store; "
                         "pynas left the file unchanged") from error
    finally:
        conn.close()


def _file_state(path: Path) -> tuple:
    """What changes when another process writes the file (or starts its write-ahead log)."""
    try:
        info = path.stat()
    except OSError:
        return ()
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, path.with_name(path.name + "-wal").exists()


def _inspect_file(path: Path, timeout: float, attempts: int = 50) -> tuple[int, int, list[str], int]:
    """`_inspect` of the file through a read-only connection, read consistently: a process making
    the store at this very moment (switching it to write-ahead logging, checkpointing) can change
    the file under an immutable reader, which would then see a torn state (another process's
    tables without their application_id), so a read during which the file changed is repeated."""
    for attempt in range(attempts):
        before = _file_state(path)
        try:
            with _read_only(path, timeout) as conn:
                found, error = _inspect(conn), None
        except StoreError as failure:
            found, error = None, failure
        if _file_state(path) == before or attempt == attempts - 1:
            if error is not None:
                raise error
            return found
        time.sleep(0.01)
    raise AssertionError("unreachable")


def _inspect(conn: sqlite3.Connection) -> tuple[int, int, list[str], int]:
    """application_id, user_version, table names and the number of schema objects."""
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    objects = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
    return application_id, version, sorted(name for kind, name in objects if kind == "table"), len(objects)


def _check_schema(path: Path, application_id: int, version: int, tables: list[str], objects: int) -> int:
    """The store's schema version: 0 for an empty database (to be made a store), 1..SCHEMA_VERSION
    for a store (older ones are migrated); anything else (another application's database, a newer
    or unknown version, a missing table) raises StoreError saying what was expected and found."""
    if application_id == 0 and version == 0 and objects == 0:
        return 0
    if application_id != APPLICATION_ID:
        found = f"tables: {', '.join(tables)}" if tables else "no tables"
        raise StoreError(f"{path}: not a pynas measurement store: PRAGMA application_id expected {APPLICATION_ID} "
                         f"(0x{APPLICATION_ID:08x}, 'PNAS'), got {application_id} ({found}); "
                         "pynas left the file unchanged")
    if version not in _TABLES_OF_VERSION:
        why = "written by a newer pynas, upgrade pynas to use it" if version > SCHEMA_VERSION else "unknown version"
        raise StoreError(f"{path}: measurement store schema (PRAGMA user_version) expected 1..{SCHEMA_VERSION}, "
                         f"got {version}: {why}; pynas left the file unchanged")
    expected = _TABLES_OF_VERSION[version]
    missing = [table for table in expected if table not in tables]
    if missing:
        raise StoreError(f"{path}: damaged measurement store: expected tables {', '.join(expected)}, "
                         f"missing {', '.join(missing)}")
    return version


def _process_start(pid: int) -> str:
    """When process `pid` started, as the OS says it (Linux: clock ticks after boot, field 22 of
    /proc/PID/stat); '' where unknown. With the pid it names one process: pids are reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def _this_process() -> tuple[str, int, str]:
    return socket.gethostname(), os.getpid(), _process_start(os.getpid())


def _stale(host: str, pid: int, started: str, claimed_at: float, *, timeout: float) -> bool:
    """Whether a claim no longer holds: older than `timeout`, or made on this host by a process
    that is gone (its pid dead, or reused by a process that started at another time)."""
    if time.time() - claimed_at > timeout:
        return True
    if host != socket.gethostname():
        return False  # another machine's process: only the timeout tells
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        pass
    return bool(started) and _process_start(pid) not in ("", started)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    name = getattr(error, "sqlite_errorname", "")  # Python >= 3.11; the message on 3.10
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(error) or "busy" in str(error)
