"""A search's log: every sample and the strategy's state in one SQLite file, durable at each step.

Why SQLite in WAL mode with `synchronous=NORMAL`: each step's rows commit in one transaction, so a
search killed at any point (kill -9 included) leaves a log that is a prefix of the run; NORMAL skips
the fsync of every commit (a power cut may lose the last steps; a killed process loses nothing).

Tables:

* ``meta``: the run's configuration (JSON): format and pynas version, space, latency model, reward,
  strategy and its options, evaluator and its fingerprint, budget, seed, batch size.
* ``samples``: one row per asked architecture, in ask order: its step and place in the step, tokens
  (JSON list), architecture string, predicted latency (ms), status ``pending`` (asked, not yet
  evaluated), ``done`` or ``failed``, accuracy (percent, NULL unless done), the evaluator's raw score
  where it has one (a zero-cost proxy's: its accuracy is the score's percentile), error, attempts, reward,
  whether it was answered from the cache of earlier evaluations (no budget spent), the
  evaluation's cost in seconds, and wall times.
* ``state``: the strategy's state after the last step it was told (JSON values + an npz of arrays,
  never pickle); one row, replaced at each step in the same transaction that marks the step told.

The meta table may also hold ``retargets``: the refinement rounds the end-of-search verification
started (`pynas.search.refine`), oldest first, each the search target it moved to, the bias that
moved it and the evaluations it adds. The configuration itself is never rewritten: T stays the
user's target, what the run was asked for.
"""
from __future__ import annotations

import io
import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pynas.search.strategies.base import State

FORMAT = "pynas-search-log"
FORMAT_VERSION = 2  # 2: samples.score (an evaluator's raw score, e.g. a zero-cost proxy's)
LOG_NAME = "search.sqlite"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE samples (
  id INTEGER PRIMARY KEY,
  step INTEGER NOT NULL,
  place INTEGER NOT NULL,
  tokens TEXT NOT NULL,
  arch TEXT NOT NULL,
  latency_ms REAL NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
  accuracy REAL,
  score REAL,
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  reward REAL,
  cached INTEGER NOT NULL DEFAULT 0,
  seconds REAL NOT NULL DEFAULT 0,
  asked_at REAL NOT NULL,
  evaluated_at REAL,
  UNIQUE (step, place)
);
CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 0), step INTEGER NOT NULL, overhead_s REAL NOT NULL,
                    "values" TEXT NOT NULL, arrays BLOB NOT NULL);
"""


class LogError(ValueError):
    """A log that cannot be used: another format or version, corrupt, or not a search log."""


@dataclass(frozen=True)
class Sample:
    id: int
    step: int
    place: int
    tokens: tuple[int, ...]
    arch: str
    latency_ms: float
    status: str
    accuracy: float | None
    error: str | None
    attempts: int
    reward: float | None
    cached: bool
    seconds: float
    score: float | None = None  # the evaluator's raw score, where it has one (zero-cost proxies)


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT below
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


class SearchLog:
    """Open with `SearchLog.create(folder, config)` (a new run) or `SearchLog.open(folder)`."""

    def __init__(self, path: Path, connection: sqlite3.Connection, config: dict, retargets: list | None = None):
        self.path, self._db, self.config = path, connection, config
        self.retargets: list[dict] = list(retargets or [])

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, config: dict, version: str) -> "SearchLog":
        path = Path(folder) / LOG_NAME
        if Path(folder).exists() and not Path(folder).is_dir():
            raise LogError(f"--out {folder}: expected a folder for the run's log and results, got a file")
        if path.exists():
            raise LogError(f"{path}: a search log is already there: expected a new folder (resume it with "
                           f"`pynas search --resume {folder}`)")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and renamed: a log either is complete or is not there.
        staging = path.with_name(f".{LOG_NAME}.{os.getpid()}")
        staging.unlink(missing_ok=True)
        db = sqlite3.connect(staging, isolation_level=None)
        db.executescript(_SCHEMA)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "pynas_version": version,
                "config": json.dumps(config, sort_keys=True)}
        db.execute("BEGIN")
        db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
        db.execute("COMMIT")
        db.close()
        os.replace(staging, path)
        db = _connect(path)
        return cls(path, db, config)

    @classmethod
    def open(cls, folder: Path, version: str) -> "SearchLog":
        path = Path(folder) / LOG_NAME
        if not path.is_file():
            raise LogError(f"--resume {folder}: expected a search folder with {LOG_NAME}, got "
                           f"{'no such folder' if not Path(folder).exists() else 'no log in it'}")
        try:
            with open(path, "rb") as f:
                head = f.read(16)
            if head != b"SQLite format 3\x00":
                raise LogError(f"{path}: expected an SQLite search log, got a file that is not SQLite")
            db = _connect(path)
            rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
            meta = {k: json.loads(v) for k, v in rows.items()}
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except (sqlite3.DatabaseError, json.JSONDecodeError) as error:
            raise LogError(f"{path}: expected a pynas search log, got a corrupt or foreign database ({error})") from None
        if meta.get("format") != FORMAT or not {"samples", "state"} <= tables:
            raise LogError(f"{path}: format: expected {FORMAT!r}, got {meta.get('format')!r}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise LogError(f"{path}: format_version: expected {FORMAT_VERSION}, got {meta.get('format_version')!r}")
        if meta.get("pynas_version") != version:
            raise LogError(f"{path}: pynas_version: expected {version} (this pynas; a run resumes only with the "
                           f"version that started it), got {meta.get('pynas_version')!r}")
        try:
            config = json.loads(meta["config"])
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise LogError(f"{path}: config: expected the run's configuration as JSON ({error})") from None
        if not isinstance(config, dict):
            raise LogError(f"{path}: config: expected a JSON object, got {type(config).__name__}")
        return cls(path, db, config, _checked_retargets(path, meta.get("retargets", [])))

    def close(self) -> None:
        self._db.close()

    # -- refinement ---------------------------------------------------------------------------
    def add_retarget(self, target_ms: float, bias: float, evaluations: int, asks: int) -> dict:
        """Record a refinement round (one transaction): the search goes on at `target_ms` (the
        reward's T) for `evaluations` more evaluations and at most `asks` more asks, whatever its
        budget in evaluations or seconds was."""
        evaluated, asked = self.evaluated(), self.asked()
        entry = {"target_ms": float(target_ms), "bias": float(bias), "evaluations": int(evaluations),
                 "from_evaluated": evaluated, "until_evaluated": evaluated + int(evaluations),
                 "until_asked": asked + int(asks)}
        _check_retarget(self.path, entry, len(self.retargets))
        retargets = [*self.retargets, entry]
        self._db.execute("BEGIN")
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('retargets', ?)", (json.dumps(json.dumps(retargets)),))
        self._db.execute("COMMIT")
        self.retargets = retargets
        return entry

    def __enter__(self) -> "SearchLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- samples ------------------------------------------------------------------------------
    def samples(self, where: str = "", params: tuple = ()) -> list[Sample]:
        try:
            rows = self._db.execute(
                "SELECT id, step, place, tokens, arch, latency_ms, status, accuracy, error, attempts, reward, cached, "
                f"seconds, score FROM samples {where} ORDER BY id", params).fetchall()
            return [Sample(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                           bool(r[11]), r[12], r[13]) for r in rows]
        except (sqlite3.DatabaseError, json.JSONDecodeError, TypeError) as error:
            raise LogError(f"{self.path}: samples: expected rows of a pynas search log ({error})") from None

    def step_samples(self, step: int) -> list[Sample]:
        return self.samples("WHERE step = ?", (step,))

    def add_asked(self, step: int, tokens: np.ndarray, archs: list[str], latency_ms: np.ndarray) -> list[Sample]:
        """Logs a step's asked rows as pending (one transaction); returns them."""
        now = time.time()
        rows = [(step, i, json.dumps([int(t) for t in row]), arch, float(lat), now)
                for i, (row, arch, lat) in enumerate(zip(tokens, archs, latency_ms))]
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO samples (step, place, tokens, arch, latency_ms, status, asked_at) "
                             "VALUES (?, ?, ?, ?, ?, 'pending', ?)", rows)
        self._db.execute("COMMIT")
        return self.step_samples(step)

    def record(self, outcomes: list[tuple]) -> None:
        """(sample id, status, accuracy, error, attempts, reward, cached, seconds, score) rows, one transaction."""
        now = time.time()
        self._db.execute("BEGIN")
        self._db.executemany("UPDATE samples SET status = ?, accuracy = ?, error = ?, attempts = ?, reward = ?, "
                             "cached = ?, seconds = ?, score = ?, evaluated_at = ? WHERE id = ?",
                             [(s, a, e, n, r, int(c), sec, finite_or_none(score), now, i)
                              for i, s, a, e, n, r, c, sec, score in outcomes])
        self._db.execute("COMMIT")

    def evaluated(self) -> int:
        """Distinct evaluations spent (rows evaluated, not answered from the cache)."""
        return self._db.execute("SELECT COUNT(*) FROM samples WHERE status != 'pending' AND cached = 0").fetchone()[0]

    def evaluated_seconds(self) -> float:
        """What the distinct evaluations cost, in seconds, as their evaluator reported it."""
        return float(self._db.execute("SELECT COALESCE(SUM(seconds), 0) FROM samples WHERE status != 'pending' "
                                      "AND cached = 0").fetchone()[0])

    def asked(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    # -- strategy state -----------------------------------------------------------------------
    def save_state(self, step: int, state: State, overhead_s: float) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **state.arrays)
        values = json.dumps(state.values, allow_nan=False)
        self._db.execute("BEGIN")
        self._db.execute('INSERT OR REPLACE INTO state (id, step, overhead_s, "values", arrays) VALUES (0, ?, ?, ?, ?)',
                         (step, overhead_s, values, buffer.getvalue()))
        self._db.execute("COMMIT")

    def load_state(self) -> tuple[int, State, float] | None:
        """(the last step told, the strategy's state after it, controller seconds so far), or None."""
        try:
            row = self._db.execute('SELECT step, overhead_s, "values", arrays FROM state WHERE id = 0').fetchone()
            if row is None:
                return None
            with np.load(io.BytesIO(row[3]), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            return row[0], State(json.loads(row[2]), arrays), row[1]
        except (sqlite3.DatabaseError, ValueError, OSError) as error:
            raise LogError(f"{self.path}: state: expected the strategy's saved state ({error})") from None


RETARGET_FIELDS = {"target_ms": float, "bias": float, "evaluations": int, "from_evaluated": int,
                   "until_evaluated": int, "until_asked": int}


def _check_retarget(path: Path, entry, index: int) -> dict:
    if not isinstance(entry, dict):
        raise LogError(f"{path}: retargets[{index}]: expected an object, got {type(entry).__name__}")
    for field, kind in RETARGET_FIELDS.items():
        value = entry.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or \
                not math.isfinite(value) or value < 0 or (field in ("target_ms", "bias") and value <= 0):
            raise LogError(f"{path}: retargets[{index}].{field}: expected a {'number > 0' if kind is float else 'count >= 0'}"
                           f", got {value!r}")
    return entry


def _checked_retargets(path: Path, text) -> list[dict]:
    try:
        retargets = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as error:
        raise LogError(f"{path}: retargets: expected a JSON list ({error})") from None
    if not isinstance(retargets, list):
        raise LogError(f"{path}: retargets: expected a JSON list, got {type(retargets).__name__}")
    return [_check_retarget(path, e, i) for i, e in enumerate(retargets)]


def finite_or_none(value) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
