"""The SQLite store: schema and pragmas, record and query, resume, refusing files that are not a
store, two writing processes, and a writer killed with SIGKILL."""
import hashlib
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pynas.store import APPLICATION_ID, SCHEMA_VERSION, Measurement, OpKey, Stats, Store, StoreError, default_path

STATS = Stats(1.5, 0.05, 1.4, 1.8, 100)


def _fingerprint(path: Path):
    """The file's bytes and the folder's listing: 'unchanged' means both."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), sorted(os.listdir(path.parent))


def _count(path, sql="SELECT count(*) FROM measurements"):
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchone()[0]


# -- location and schema -------------------------------------------------------------------------
def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PYNAS_DB", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_path() == tmp_path / "home" / ".cache" / "pynas" / "measurements.sqlite"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "pynas" / "measurements.sqlite"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # invalid per the XDG spec: ignored
    assert default_path() == tmp_path / "home" / ".cache" / "pynas" / "measurements.sqlite"
    monkeypatch.setenv("PYNAS_DB", str(tmp_path / "mine.sqlite"))
    assert default_path() == tmp_path / "mine.sqlite"
    with Store() as store:
        assert store.path == tmp_path / "mine.sqlite" and store.path.exists()


def test_new_store_schema_and_pragmas(tmp_path):
    path = tmp_path / "deep" / "folder" / "m.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID == 0x504E4153
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"devices", "op_keys", "measurements", "claims"}
    Store(path).close()  # reopening an existing store


def test_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "empty.sqlite"
    path.touch()
    with Store(path) as store:
        assert store.summary().measurements == 0


# -- refusing what is not a store -----------------------------------------------------------------
def test_random_bytes_are_refused_and_left_alone(tmp_path):
    path = tmp_path / "random.sqlite"
    path.write_bytes(os.urandom(8192))
    before = _fingerprint(path)
    with pytest.raises(StoreError, match=rf"{path}: not an SQLite database: header expected "
                                         r"b'SQLite format 3\\x00', got b['\"]"):  # repr quotes by content
        Store(path)
    assert _fingerprint(path) == before


def test_damaged_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "damaged.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    before = _fingerprint(path)
    with pytest.raises(StoreError, match=rf"{path}: damaged or unreadable SQLite file \(file is not a database\)"):
        Store(path)
    assert _fingerprint(path) == before


def test_another_applications_database_is_refused(tmp_path):
    path = tmp_path / "photos.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE albums (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO albums (name) VALUES ('holiday')")
    conn.close()
    before = _fingerprint(path)
    with pytest.raises(StoreError, match=rf"{path}: not a pynas measurement store: PRAGMA application_id expected "
                                         r"1347305811 \(0x504e4153, 'PNAS'\), got 0 \(tables: albums\)"):
        Store(path)
    assert _fingerprint(path) == before

    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("PRAGMA application_id = 42")
    conn.close()
    with pytest.raises(StoreError, match=r"application_id expected 1347305811 .*, got 42 \(no tables\)"):
        Store(other)


def _store_then(path, statement: str):
    """A new store at `path`, then `statement` run on it directly (sqlite3: no pynas checks)."""
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(statement)
    conn.close()
    return path


@pytest.mark.parametrize("statement, message", [
    ("PRAGMA user_version = 3", r"measurement store schema \(PRAGMA user_version\) expected 1..2, got 3: written by a "
                                r"newer pynas"),
    ("DROP TABLE op_keys", "damaged measurement store: expected tables devices, op_keys, measurements, claims, missing "
                           "op_keys"),
])
def test_newer_or_damaged_schema_is_refused_and_left_alone(tmp_path, statement, message):
    path = _store_then(tmp_path / "m.sqlite", statement)
    before = _fingerprint(path)
    with pytest.raises(StoreError, match=rf"{path}: {message}"):
        Store(path)
    assert _fingerprint(path) == before


def test_directory_is_refused(tmp_path):
    with pytest.raises(StoreError, match="expected a pynas measurement store file, got a directory"):
        Store(tmp_path)


# -- recording and reading ------------------------------------------------------------------------
def test_record_and_read_back(tmp_path, make_context):
    path = tmp_path / "m.sqlite"
    context = make_context()
    with Store(path) as store:
        first = store.record(context, OpKey("pw_1", "pwconv", {"macs": 10}), STATS, harness={"warmup": 5})
        second = store.record(make_context(threads=4), OpKey("dw_1", "dwconv", {"k": 3}), STATS)
    with Store(path) as store:  # committed, so a new connection sees them
        assert list(store.measurements()) == [first, second]
        assert list(store.measurements(threads=4)) == [second]
        assert list(store.measurements(kind="pwconv", backend="native")) == [first]
        assert list(store.measurements(device_id=context.device.device_id, key="nope")) == []
        assert store.devices() == {context.device.device_id: context.device}
        with pytest.raises(StoreError, match="unknown filter 'thread'; expected one of device_id, backend"):
            store.measurements(thread=1)


def test_missing_resumes_a_run(tmp_path, make_context):
    context = make_context()
    keys = [f"op_{i}" for i in range(6)]
    with Store(tmp_path / "m.sqlite") as store:
        assert store.missing(context, keys + ["op_0"]) == keys  # order kept, repeats dropped
        for key in keys[:4]:
            store.record(context, OpKey(key, "pwconv"), STATS)
        assert store.missing(context, keys) == ["op_4", "op_5"]
        # Other series have measured nothing yet; the run facts (session, kernel, ...) do not count.
        others = (make_context(threads=2), make_context(backend="onnxruntime"), make_context(backend_version="0.2"))
        for other in others:
            assert store.missing(other, keys) == keys
        assert store.missing(make_context(session="another run", kernel="6.2", cpu_mhz=None), keys) == ["op_4", "op_5"]
        with pytest.raises(StoreError, match=r"field 'keys\[1\]': expected a non-empty string without whitespace"):
            store.missing(context, ["op_0", "op 1"])


def test_features_are_added_never_changed(tmp_path, make_context):
    context = make_context()
    with Store(tmp_path / "m.sqlite") as store:
        store.record(context, OpKey("pw_1", "pwconv", {"macs": 10}), STATS)
        store.record(context, OpKey("pw_1", "pwconv", {"macs": 10, "bytes": 4}), STATS)  # a newer pynas adds one
        store.record(context, OpKey("pw_1", "pwconv", {}), STATS)
        assert [m.op.features for m in store.measurements()] == [{"macs": 10, "bytes": 4}] * 3
        with pytest.raises(StoreError, match="op key 'pw_1': feature 'macs' is stored as 10, got 11"):
            store.record(context, OpKey("pw_1", "pwconv", {"macs": 11}), STATS)
        with pytest.raises(StoreError, match="op key 'pw_1' is stored with kind 'pwconv', got 'conv'"):
            store.record(context, OpKey("pw_1", "conv", {}), STATS)
        assert store.summary().measurements == 3  # the refused records left nothing behind


def test_merge_dedupes_and_is_all_or_nothing(tmp_path, make_context):
    context = make_context()
    ms = [Measurement.new(context, OpKey(f"op_{i}", "pwconv"), STATS) for i in range(3)]
    with Store(tmp_path / "m.sqlite") as store:
        assert (store.merge(ms[:2]).added, store.merge(ms).added, store.merge(ms).duplicates) == (2, 1, 3)
        changed = Measurement(ms[0].measurement_id, ms[0].measured_at, context, ms[0].op, Stats(9, 0, 9, 9, 1), {})
        fresh = Measurement.new(context, OpKey("op_9", "pwconv"), STATS)
        with pytest.raises(StoreError, match=f"measurement {ms[0].measurement_id} is stored with median_ms 1.5, "
                                             "got 9.0: one id for two measurements"):
            store.merge([fresh, changed])
        assert store.summary().measurements == 3 and store.missing(context, ["op_9"]) == ["op_9"]

        def failing():
            yield fresh
            raise RuntimeError("the source broke")
        with pytest.raises(RuntimeError):
            store.merge(failing())
        assert store.summary().measurements == 3


def test_summary(tmp_path, make_context):
    with Store(tmp_path / "m.sqlite") as store:
        assert store.summary().rows == () and store.summary().first is None
        for i, (threads, kind) in enumerate([(1, "pwconv"), (1, "pwconv"), (1, "dwconv"), (4, "pwconv")]):
            store.record(make_context(threads=threads, session=f"s{threads}"), OpKey(f"{kind}_{i}", kind), STATS,
                         measured_at=f"2026-01-0{i + 1}T00:00:00Z")
        summary = store.summary()
    assert (summary.measurements, summary.devices, summary.keys, summary.sessions) == (4, 1, 4, 2)
    assert (summary.first, summary.last) == ("2026-01-01T00:00:00.000000Z", "2026-01-04T00:00:00.000000Z")
    assert [(r.threads, r.kind, r.count) for r in summary.rows] == [(1, "dwconv", 1), (1, "pwconv", 2),
                                                                    (4, "pwconv", 1)]
    assert summary.rows[0].cpu_model == "Test CPU" and summary.rows[1].first == "2026-01-01T00:00:00.000000Z"


# -- concurrency and crashes ----------------------------------------------------------------------
def test_a_writer_waits_for_the_lock_then_gives_up_clearly(tmp_path, make_context):
    path = tmp_path / "m.sqlite"
    store = Store(path, busy_timeout=5)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock ...
    threading.Timer(0.3, other.execute, ["COMMIT"]).start()  # ... for 0.3 s
    started = time.monotonic()
    store.record(make_context(), OpKey("op_0", "pwconv"), STATS)
    assert time.monotonic() - started >= 0.25

    other.execute("BEGIN IMMEDIATE")
    impatient = Store(path, busy_timeout=0.2)
    with pytest.raises(StoreError, match=rf"{path}: another process has held the write lock for more than 0.2 s"):
        impatient.record(make_context(), OpKey("op_1", "pwconv"), STATS)
    other.execute("ROLLBACK")
    other.close()
    assert [m.op.key for m in impatient.measurements()] == ["op_0"]
    impatient.close()
    store.close()


def _writer(path, context, worker, count, barrier):
    barrier.wait()  # both processes open (and create) the store at once, then write interleaved
    with Store(path) as store:
        for i in range(count):
            # Half the keys are shared, so both processes also insert the same op keys.
            op = OpKey(f"shared_{i}", "pwconv", {"i": i}) if i % 2 else OpKey(f"w{worker}_{i}", "pwconv")
            store.record(context, op, STATS, harness={"worker": worker, "i": i})
            time.sleep(0.002)  # the time a harness spends measuring the next op; SQLite's lock is not fair


def test_two_processes_write_one_store(tmp_path, make_context):
    path, count = tmp_path / "shared.sqlite", 150
    fork = multiprocessing.get_context("fork")  # the children inherit the context: nothing to pickle
    barrier = fork.Barrier(2)
    workers = [fork.Process(target=_writer, args=(path, make_context(), w, count, barrier)) for w in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    with Store(path) as store:
        written = list(store.measurements())
        assert len(written) == 2 * count == len({m.measurement_id for m in written})
        assert sorted((m.harness["worker"], m.harness["i"]) for m in written) == [(w, i) for w in (0, 1)
                                                                                  for i in range(count)]
        assert store.summary().keys == count + count // 2  # each process's own keys, the shared ones once
    order = [m.harness["worker"] for m in written]  # oldest first
    assert sum(a != b for a, b in zip(order, order[1:])) > 1, "the processes did not interleave"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


RECORDER = textwrap.dedent("""
    import sys
    from pynas.store import Context, OpKey, Stats, Store
    store = Store(sys.argv[1])
    context = Context.here("native", "0.1.0", threads=1, session="killed")
    for key in store.missing(context, [f"op_{i}" for i in range(100000)]):
        measurement = store.record(context, OpKey(key, "pwconv", {"macs": 1}), Stats(1.0, 0.0, 1.0, 1.0, 1))
        print(measurement.measurement_id, flush=True)  # after the commit: this one is stored
""")


def test_kill_9_loses_at_most_the_measurement_in_flight(tmp_path):
    path = tmp_path / "killed.sqlite"
    committed = []
    for round_ in range(3):  # each round resumes where the killed one stopped
        recorder = subprocess.Popen([sys.executable, "-c", RECORDER, str(path)], stdout=subprocess.PIPE, text=True,
                                    cwd=tmp_path, env=os.environ.copy())
        ids = [recorder.stdout.readline().strip() for _ in range(40 + 17 * round_)]
        os.kill(recorder.pid, signal.SIGKILL)
        recorder.wait(30)
        ids += recorder.stdout.read().split()  # printed before the kill, still in the pipe
        recorder.stdout.close()
        assert recorder.returncode == -signal.SIGKILL and all(ids)
        committed += ids
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = [row[0] for row in conn.execute("SELECT measurement_id FROM measurements")]
            keys = [row[0] for row in conn.execute("SELECT key FROM measurements")]
        conn.close()
        assert set(committed) <= set(stored)
        assert len(committed) <= len(stored) <= len(committed) + round_ + 1  # + the ones in flight at each kill
        assert len(keys) == len(set(keys)), "a key was measured twice"
    with Store(path) as store:
        assert sorted(int(m.op.key[3:]) for m in store.measurements()) == list(range(len(stored)))


# -- schema version 2: migration from version 1 ---------------------------------------------------
def _version_1_store(path: Path, context) -> Path:
    """A store as pynas wrote it before claims: version 1's tables, user_version 1, a measurement."""
    with Store(path) as store:
        store.record(context, OpKey("pw_1", "pwconv", {"macs": 10}), STATS)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE claims")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    return path


def test_a_version_1_store_is_migrated_when_opened_for_writing(tmp_path, make_context):
    path = _version_1_store(tmp_path / "old.sqlite", make_context())
    before = _fingerprint(path)
    with Store(path, create=False) as reader:  # a command that only reads leaves it as it is
        assert reader.schema_version == 1 and [m.op.key for m in reader.measurements()] == ["pw_1"]
        with pytest.raises(StoreError, match=r"schema version 1 \(opened only to read\) has no claims: open it for "
                                             "writing to migrate it to version 2"):
            reader.claim(make_context(), "pw_2")
    assert _fingerprint(path)[0] == before[0]
    with Store(path) as store:
        assert store.schema_version == 2 and [m.op.key for m in store.measurements()] == ["pw_1"]
        assert store.claim(make_context(), "pw_2")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == \
            {"devices", "op_keys", "measurements", "claims"}
    conn.close()


def _open_store(path, barrier):
    barrier.wait()
    with Store(path) as store:
        assert store.schema_version == 2


def test_two_processes_migrating_at_once(tmp_path, make_context):
    path = _version_1_store(tmp_path / "old.sqlite", make_context())
    fork = multiprocessing.get_context("fork")
    barrier = fork.Barrier(3)
    workers = [fork.Process(target=_open_store, args=(path, barrier)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]  # one migrated, the others found it done under the lock
    with Store(path) as store:
        assert [m.op.key for m in store.measurements()] == ["pw_1"]


def test_a_version_1_store_missing_a_table_is_refused_unchanged(tmp_path, make_context):
    path = _version_1_store(tmp_path / "old.sqlite", make_context())
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE devices")
    conn.close()
    before = _fingerprint(path)
    with pytest.raises(StoreError, match="damaged measurement store: expected tables devices, op_keys, measurements, "
                                         "missing devices"):
        Store(path)
    assert _fingerprint(path) == before


# -- claims: several processes profiling into one store -------------------------------------------
CLAIMER = textwrap.dedent("""
    import sys, time
    from pynas.store import Context, DeviceFingerprint, Store
    device = DeviceFingerprint("Test CPU", "aarch64", "Linux", ("neon",), 8, None, None, None, None)
    context = Context(device, "native", "0.1.0", 1, "claimer", "0.1.0", "6.1", None)
    with Store(sys.argv[1]) as store:
        print(store.claim(context, "op_0"), store.claim(context, "op_1"), flush=True)
        time.sleep(600)  # holds its claims until killed
""")


def test_claims_are_taken_once_and_a_killed_holders_are_reclaimed(tmp_path, make_context):
    from pynas.store import DeviceFingerprint

    path = tmp_path / "m.sqlite"
    device = DeviceFingerprint("Test CPU", "aarch64", "Linux", ("neon",), 8, None, None, None, None)
    context = make_context(device=device, kernel="6.1", cpu_mhz=None)
    holder = subprocess.Popen([sys.executable, "-c", CLAIMER, str(path)], stdout=subprocess.PIPE, text=True,
                              env=os.environ.copy(), cwd=tmp_path)
    try:
        assert holder.stdout.readline().split() == ["True", "True"]
        with Store(path) as store:
            assert not store.claim(context, "op_0")  # a live process holds it
            assert store.claim(context, "op_2") and store.claim(context, "op_2")  # ours, and still ours
            assert store.claims(context) == {"op_0": (socket.gethostname(), holder.pid),
                                             "op_1": (socket.gethostname(), holder.pid),
                                             "op_2": (socket.gethostname(), os.getpid())}
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(30)
            assert store.claim(context, "op_0") and store.claim(context, "op_1")  # a dead pid's claims are stale
            assert store.release(context, "op_0") == 1 and store.release(context) == 2
            assert store.claims(context) == {}
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()


def test_stale_claims_other_hosts_and_reused_pids(tmp_path, make_context):
    context = make_context()
    with Store(tmp_path / "m.sqlite") as store:
        assert store.claim(context, "op_0")
    with sqlite3.connect(tmp_path / "m.sqlite") as conn:  # the claim of a live process elsewhere ...
        conn.execute("UPDATE claims SET host = 'another-host', pid = 1")
    conn.close()
    with Store(tmp_path / "m.sqlite") as store:
        assert not store.claim(context, "op_0")
        assert store.claim(context, "op_0", timeout=0)  # ... until it is older than the timeout
    with sqlite3.connect(tmp_path / "m.sqlite") as conn:  # a live pid here that is another process now
        conn.execute(f"UPDATE claims SET pid = {os.getppid()}, started = 'long ago'")
    conn.close()
    with Store(tmp_path / "m.sqlite") as store:
        assert store.claim(context, "op_0")


def test_a_claim_skips_what_is_measured_already(tmp_path, make_context):
    context = make_context()
    with Store(tmp_path / "m.sqlite") as store:
        store.record(context, OpKey("op_0", "pwconv"), STATS)
        store.record(context, OpKey("op_1", "pwconv"), STATS, harness={"slow_spell": True})
        assert not store.claim(context, "op_0", skip_measured=True)  # measured (by another process, say)
        assert store.claim(context, "op_1", skip_measured=True)  # measured only in a slow spell: again
        assert store.claim(context, "op_0")  # without skip_measured: another pass
        assert not store.claim(context, "op_0", skip_measured=True, session="test session")
        assert store.claim(context, "op_0", skip_measured=True, session="another pass")
        assert store.claim(make_context(threads=2), "op_0", skip_measured=True)  # another series
        with pytest.raises(StoreError, match="field 'key': expected a non-empty string without whitespace"):
            store.claim(context, "op 0")


# -- rows edited or damaged by hand ---------------------------------------------------------------
@pytest.mark.parametrize("table, column, value, message", [
    ("measurements", "harness", "{not json", r"measurement '.*' \(measurements row 2\): column harness: expected a "
                                               r"JSON object, got malformed JSON"),
    ("measurements", "harness", "[1, 2]", r"measurement '.*' \(measurements row 2\): column harness: expected a JSON "
                                          r"object, got '\[1, 2\]'"),
    ("op_keys", "features", "{\"macs\": ", r"measurement '.*' \(measurements row 2\): op key 'dw_1': column "
                                            r"op_keys.features: expected a JSON object, got malformed JSON"),
    ("devices", "isa_flags", "neon", r"measurement '.*' \(measurements row 1\): device '.*': column isa_flags: "
                                     "expected a JSON array, got malformed JSON"),
    ("measurements", "median_ms", -1.0, r"measurement '.*' \(measurements row 2\): column median_ms: field "
                                        r"'median_ms': expected a finite number >= 0 and <= 1e\+06, got -1.0"),
    ("measurements", "kernel", "6.1\x1b[2J", r"measurement '.*' \(measurements row 2\): column kernel: field 'kernel':"
                                             " expected a string without control characters"),
])
def test_a_damaged_row_names_the_file_the_row_and_the_column(tmp_path, make_context, table, column, value, message):
    path = tmp_path / "m.sqlite"
    with Store(path) as store:
        store.record(make_context(), OpKey("pw_1", "pwconv", {"macs": 1}), STATS)
        store.record(make_context(), OpKey("dw_1", "dwconv", {"macs": 2}), STATS)
    key = {"measurements": "rowid = 2", "op_keys": "key = 'dw_1'", "devices": "1"}[table]
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key}", (value,))
    conn.close()
    with Store(path, create=False) as store:
        with pytest.raises(StoreError, match=rf"^{path}: {message}"):
            list(store.measurements())
        if column in ("harness", "features", "isa_flags"):  # what summary can check without reading rows
            with pytest.raises(StoreError, match=rf"^{path}: .*column {column.split('.')[-1]}: expected a JSON"):
                store.summary()
            if column == "harness" and value.startswith("{"):  # SQL's json_extract meets it: named the same way
                with pytest.raises(StoreError, match=rf"^{path}: measurement '.*' \(measurements row 2\): column "
                                                     "harness: expected a JSON object, got malformed JSON"):
                    store.slow_only(make_context())


def test_an_empty_sqlite_database_is_not_made_a_store_by_a_reader(tmp_path):
    path = tmp_path / "empty.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")  # writes the header: a database with nothing in it
    conn.close()
    before = _fingerprint(path)
    with pytest.raises(StoreError, match=rf"{path}: expected a measurement store, got an empty SQLite database"):
        Store(path, create=False)
    assert _fingerprint(path) == before
    with Store(path) as store:  # a writer makes it one
        assert store.schema_version == 2
