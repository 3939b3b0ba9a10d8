"""Portable files: export and import round trips, no duplicates on re-import, all-or-nothing
imports, and errors naming the file, line and field."""
import gzip
import json
import sqlite3
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pynas.store import DeviceFingerprint, OpKey, Stats, Store, StoreError, export_jsonl, import_jsonl

UUID = "0b7e2f8a-5c1d-4e7f-9a3b-2c4d6e8f0a1b"
HEADER = '{"format":"pynas-measurements","version":1}'
# A record as the planned C++ pynas-profile would write it: integer clock, no fraction of seconds.
C_RECORD = ('{"measurement_id":"' + UUID + '","measured_at":"2026-01-02T03:04:05Z","session":"pixel7 run",'
            '"device":{"cpu_model":"implementer 0x41 part 0xd41","machine":"aarch64","os":"Linux",'
            '"isa_flags":["neon","fp16","dotprod"],"logical_cores":8,"l1d_bytes":65536,"l2_bytes":262144,'
            '"l3_bytes":null,"max_mhz":2850},"kernel":"5.10.157-android13","cpu_mhz":null,"backend":"native",'
            '"backend_version":"0.1.0","threads":1,"pynas_version":"0.1.0",'
            '"key":"dwconv_n1_i32x112x112_o32x112x112_k3_s1","kind":"dwconv",'
            '"features":{"macs":3612672,"kernel":3,"stride":1},'
            '"stats":{"median_ms":0.412,"mad_ms":0.003,"p10_ms":0.405,"p90_ms":0.431,"runs":200},'
            '"harness":{"warmup":20,"pinned":[4,5]}}')


@pytest.fixture
def filled(tmp_path, make_context):
    """A store with five measurements in two series."""
    store = Store(tmp_path / "phone.sqlite")
    for i in range(5):
        store.record(make_context(threads=1 + i % 2), OpKey(f"op_{i}", "pwconv", {"macs": i}),
                     Stats.from_samples([1.0 + i, 1.1 + i, 1.3 + i]), harness={"warmup": 10})
    yield store
    store.close()


def _lines(path):
    with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as f:
        return f.read().splitlines()


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_round_trip(tmp_path, filled, name):
    path = tmp_path / name
    assert export_jsonl(filled, path) == 5
    lines = _lines(path)
    header = json.loads(lines[0])
    assert (header["format"], header["version"], header["writer"]) == ("pynas-measurements", 1, "pynas 0.1.0")
    assert len(lines) == 6 and not any(p.name.endswith(".partial") for p in tmp_path.iterdir())
    with Store(tmp_path / "desk.sqlite") as desk:
        result = import_jsonl(desk, path)
        assert (result.records, result.added, result.duplicates) == (5, 5, 0)
        assert list(desk.measurements()) == list(filled.measurements())


def test_reimport_adds_nothing(tmp_path, filled):
    export_jsonl(filled, tmp_path / "a.jsonl")
    assert import_jsonl(filled, tmp_path / "a.jsonl").duplicates == 5  # into the store it came from
    with Store(tmp_path / "desk.sqlite") as desk:
        assert import_jsonl(desk, tmp_path / "a.jsonl").added == 5
        result = import_jsonl(desk, tmp_path / "a.jsonl")
        assert (result.added, result.duplicates) == (0, 5)
        assert desk.summary().measurements == 5


def test_export_filters_and_never_overwrites_unasked(tmp_path, filled, make_context):
    path = tmp_path / "two.jsonl"
    assert export_jsonl(filled, path, threads=2) == 2
    with pytest.raises(StoreError, match=f"{path}: already exists; expected a new file name"):
        export_jsonl(filled, path)
    assert len(_lines(path)) == 3
    assert export_jsonl(filled, path, overwrite=True, session="test session", threads=1) == 3
    with pytest.raises(StoreError, match="unknown filter 'thread'"):
        export_jsonl(filled, tmp_path / "x.jsonl", thread=1)
    assert not (tmp_path / "x.jsonl").exists()


def test_a_record_written_by_hand_imports(tmp_path):
    path = tmp_path / "phone.jsonl"
    path.write_text(HEADER + "\n" + C_RECORD + "\n")
    with Store(tmp_path / "desk.sqlite") as desk:
        assert import_jsonl(desk, path).added == 1
        (measurement,) = desk.measurements()
    expected = DeviceFingerprint("implementer 0x41 part 0xd41", "aarch64", "Linux", ("dotprod", "fp16", "neon"), 8,
                                 65536, 262144, None, 2850.0)
    assert measurement.context.device == expected
    with Store(tmp_path / "desk.sqlite") as desk:
        assert list(desk.devices()) == [expected.device_id]
    assert measurement.measured_at == "2026-01-02T03:04:05.000000Z"
    assert measurement.op == OpKey("dwconv_n1_i32x112x112_o32x112x112_k3_s1", "dwconv",
                                   {"macs": 3612672, "kernel": 3, "stride": 1})
    assert measurement.stats == Stats(0.412, 0.003, 0.405, 0.431, 200) and measurement.harness["pinned"] == [4, 5]


def _edit(record: str, **changes) -> str:
    data = json.loads(record)
    for path, value in changes.items():
        *parents, name = path.split("__")
        target = data
        for parent in parents:
            target = target[parent]
        if value is DELETE:
            del target[name]
        else:
            target[name] = value
    return json.dumps(data)


DELETE = object()
OTHER = _edit(C_RECORD, measurement_id="9c0a6f7e-1b2d-4c3e-8f4a-5b6c7d8e9f00", key="pw_1", kind="pwconv")


@pytest.mark.parametrize("lines, where, message", [
    ([HEADER, OTHER, '{"measurement_id": '], 3, "not valid JSON"),
    ([HEADER, OTHER, _edit(C_RECORD, stats__median_ms="fast")], 3,
     r"field 'stats.median_ms': expected a finite number >= 0 and <= 1e\+06, got 'fast'"),
    ([HEADER, _edit(C_RECORD, device__logical_cores=0), OTHER], 2,
     "field 'device.logical_cores': expected an integer >= 1, got 0"),
    ([HEADER, _edit(C_RECORD, threads=DELETE)], 2, "field 'threads': expected a value, got nothing"),
    ([HEADER, _edit(C_RECORD, hostname="phone")], 2, "field 'hostname': expected no such field"),
    ([HEADER, C_RECORD.replace('"mad_ms":0.003', '"mad_ms":NaN')], 2, "not valid JSON .*NaN is not a JSON number"),
    ([HEADER, C_RECORD.replace('"threads":1', '"threads":1,"threads":2')], 2,
     r"not valid JSON \(name 'threads' repeated in one object\)"),
    ([HEADER, OTHER, ""], 3, "expected a JSON object, got a blank line"),
    ([HEADER, "[1, 2]"], 2, r"expected a measurement record \(a JSON object\), got \[1, 2\]"),
    ([HEADER, C_RECORD, _edit(C_RECORD, stats__runs=201)], 3,
     f".*desk.sqlite: measurement {UUID} is stored with runs 200, got 201: one id for two measurements"),
    ([HEADER, C_RECORD, _edit(OTHER, features={"macs": 1}), _edit(OTHER, measurement_id=UUID[:-1] + "c",
                                                                   features={"macs": 2})], 4,
     ".*desk.sqlite: op key 'pw_1': feature 'macs' is stored as 1, got 2"),
    (['{"format":"csv","version":1}', C_RECORD], 1,
     "not a pynas measurements file: header field 'format' expected 'pynas-measurements', got 'csv'"),
    (['{"format":"pynas-measurements","version":2}', C_RECORD], 1,
     "header field 'version' expected 1, got 2: written by a newer pynas"),
    (['{"format":"pynas-measurements","version":1,"records":1}', C_RECORD], 1,
     "field 'records': expected no such header field"),
    ([C_RECORD], 1, "not a pynas measurements file: header field 'format' expected 'pynas-measurements', got None"),
    # What the store used to accept: any kind (a NUL byte too), 1e308 ms, control characters.
    ([HEADER, OTHER, _edit(C_RECORD, kind="lstm")], 3, "field 'kind': expected one of network, stem, mbconv"),
    ([HEADER, _edit(C_RECORD, kind="pw\u0000conv")], 2, "field 'kind': expected a string without control characters"),
    ([HEADER, _edit(C_RECORD, stats__median_ms=1e308, stats__p90_ms=1e308)], 2,
     r"field 'stats.median_ms': expected a finite number >= 0 and <= 1e\+06, got 1e\+308"),
    ([HEADER, _edit(C_RECORD, key="pw_1\u001b[2J")], 2, "field 'key': expected a string without control characters"),
    ([HEADER, _edit(C_RECORD, session="nightly\nrun")], 2, "field 'session': expected a string without control"),
    ([HEADER, _edit(C_RECORD, threads=10 ** 30)], 2, r"field 'threads': expected an integer in \[1, 4096\]"),
    ([HEADER, _edit(C_RECORD, stats__runs=10 ** 400)], 2, r"field 'stats.runs': expected an integer in \[1, 9007"),
    ([HEADER, _edit(C_RECORD, stats__median_ms=10 ** 400)], 2, "field 'stats.median_ms': expected a finite number"),
    # Nested too deeply: a whole line (Python's parser gives up), or a harness deeper than records go.
    ([HEADER, "[" * 100_000 + "]" * 100_000], 2, "expected a JSON object, got JSON nested too deeply to read"),
    ([HEADER, _edit(C_RECORD, harness={"a": json.loads("[" * 40 + "]" * 40)})], 2,
     "field 'harness': expected a JSON object at most 32 levels deep"),
])
def test_malformed_file_imports_nothing(tmp_path, lines, where, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with Store(tmp_path / "desk.sqlite") as desk:
        with pytest.raises(StoreError, match=f"{path}:{where}: {message}"):
            import_jsonl(desk, path)
        assert desk.summary().measurements == 0 and desk.summary().devices == 0 and desk.summary().keys == 0


def test_unreadable_files(tmp_path):
    with Store(tmp_path / "desk.sqlite") as desk:
        empty = tmp_path / "empty.jsonl"
        empty.write_bytes(b"")
        with pytest.raises(StoreError, match=f"{empty}: expected a header line .*, got an empty file"):
            import_jsonl(desk, empty)
        with pytest.raises(StoreError, match=f"{tmp_path / 'none.jsonl'}: cannot read \\(No such file"):
            import_jsonl(desk, tmp_path / "none.jsonl")
        latin = tmp_path / "latin.jsonl"
        latin.write_bytes(HEADER.encode() + b"\n" + C_RECORD.replace("pixel7", "pixel\xe9").encode("latin-1") + b"\n")
        with pytest.raises(StoreError, match=f"{latin}:2: expected UTF-8 text"):
            import_jsonl(desk, latin)
        truncated = tmp_path / "cut.jsonl.gz"
        truncated.write_bytes(gzip.compress((HEADER + "\n" + (C_RECORD + "\n") * 50).encode())[:-30])
        with pytest.raises(StoreError, match=f"{truncated}:\\d+: not readable as gzip"):
            import_jsonl(desk, truncated)
        plain = tmp_path / "plain.jsonl.gz"
        plain.write_text(HEADER + "\n")
        with pytest.raises(StoreError, match=f"{plain}:1: not readable as gzip"):
            import_jsonl(desk, plain)
        assert desk.summary().measurements == 0


def test_import_never_touches_a_store_it_cannot_open(tmp_path):
    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(StoreError, match="not a pynas measurement store"):
        Store(foreign)


# -- fuzz ------------------------------------------------------------------------------------------
ODD = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70),
    st.sampled_from([0, -1, 4097, 2 ** 53 + 1, 10 ** 400, 1e308, 1e6, 1e6 + 1, 5e-324, -0.0]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["", " ", "\x00", "a\nb", "\x1b[2J", "network", "lstm", "pw conv", UUID, UUID.upper(),
                     "2026-02-30T00:00:00Z", "2026-01-02T03:04:05Z"]),
    st.lists(st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=4)), max_size=3),
)


def _record_paths(value, prefix=()):
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _record_paths(child, prefix + (key,))


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    with Store(tmp_path_factory.mktemp("fuzz") / "desk.sqlite") as store:
        yield store


@settings(max_examples=500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_records_raise_only_store_errors(fuzz_store, data):
    """A valid record mutated (fields of any type, values NaN/huge/negative/deep, keys removed,
    added and renamed, the line's text cut or spliced): import_jsonl raises StoreError naming the
    file and line, or imports it, after which the store still reads back whole."""
    record = json.loads(C_RECORD)
    record["measurement_id"] = str(uuid.UUID(int=data.draw(st.integers(0, 2 ** 128 - 1), label="id")))
    for _ in range(data.draw(st.integers(0, 3), label="mutations")):
        by_length = {}
        for path in _record_paths(record):
            by_length.setdefault(len(path), []).append(path)
        path = data.draw(st.sampled_from(by_length[data.draw(st.sampled_from(sorted(by_length)))]), label="path")
        action = data.draw(st.sampled_from(["replace", "replace", "delete", "add", "rename"]), label="action")
        value = data.draw(ODD, label="value")
        if not path:
            record = value if action == "replace" else record
            continue
        parent = record
        for key in path[:-1]:
            parent = parent[key]
        if action == "replace":
            parent[path[-1]] = value
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent["extra" if action == "add" else data.draw(st.text(max_size=5), label="new name")] = \
                value if action == "add" else parent.pop(path[-1])
    line = json.dumps(record, allow_nan=True)
    text = data.draw(st.sampled_from(["as is", "cut", "splice", "deep", "bytes"]), label="text")
    if text == "cut":
        line = line[:data.draw(st.integers(0, len(line)), label="cut at")]
    elif text == "splice":
        at = data.draw(st.integers(0, len(line)), label="at")
        line = line[:at] + data.draw(st.text(max_size=8), label="spliced") + line[at:]
    elif text == "deep":
        depth = data.draw(st.sampled_from([30, 33, 1000, 100_000]), label="depth")
        line = line.replace('"harness":{', '"harness":{"d":' + "[" * depth + "]" * depth + ",", 1)
    raw = HEADER.encode() + b"\n" + (data.draw(st.binary(max_size=40), label="bytes") if text == "bytes"
                                     else line.encode("utf-8", "surrogatepass")) + b"\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "phone.jsonl"
        path.write_bytes(raw)
        try:
            import_jsonl(fuzz_store, path)
        except StoreError as error:
            assert str(error).startswith(f"{path}:"), error
    # Whatever was imported reads back: no value a record can hold breaks the store's readers.
    assert fuzz_store.summary().measurements == sum(1 for _ in fuzz_store.measurements())
