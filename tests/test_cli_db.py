"""`pynas db summary|export|import`: the store from the command line, errors without tracebacks."""
import pytest

from pynas.cli import main
from pynas.store import OpKey, Stats, Store


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def phone(tmp_path, make_context):
    """A store path holding three measurements of one device: two pwconv, one dwconv."""
    path = tmp_path / "phone.sqlite"
    with Store(path) as store:
        for key, kind in (("pw_1", "pwconv"), ("pw_2", "pwconv"), ("dw_1", "dwconv")):
            store.record(make_context(), OpKey(key, kind), Stats(1.0, 0.1, 0.9, 1.2, 50))
    return path


def test_summary(capsys, phone, make_context):
    code, out, _ = run(capsys, "db", "summary", "--db", str(phone))
    assert code == 0
    assert f"store {phone}" in out and "3 measurements of 3 keys on 1 device(s) in 1 session(s)" in out
    device_id = make_context().device.device_id
    lines = [line.split() for line in out.splitlines() if line.startswith(device_id)]
    assert [line[:2] + line[3:8] for line in lines] == [[device_id, "Test", "native", "0.1.0", "1", "dwconv", "1"],
                                                        [device_id, "Test", "native", "0.1.0", "1", "pwconv", "2"]]


def test_export_then_import_twice(capsys, phone, tmp_path):
    exported = tmp_path / "phone.jsonl.gz"
    assert run(capsys, "db", "export", str(exported), "--db", str(phone))[1] == f"wrote 3 measurements to {exported}\n"
    desk = tmp_path / "desk.sqlite"
    code, out, _ = run(capsys, "db", "import", "--db", str(desk), str(exported), str(exported))
    assert code == 0
    assert out.splitlines() == [f"{exported}: 3 measurements, 3 added, 0 already in {desk}",
                                f"{exported}: 3 measurements, 0 added, 3 already in {desk}"]
    assert "3 measurements of 3 keys" in run(capsys, "db", "summary", "--db", str(desk))[1]


def test_export_filters_and_refuses_to_overwrite(capsys, phone, tmp_path):
    out_path = tmp_path / "x.jsonl"
    assert run(capsys, "db", "export", str(out_path), "--db", str(phone), "--threads", "2")[1].startswith("wrote 0 ")
    code, _, err = run(capsys, "db", "export", str(out_path), "--db", str(phone))
    assert code == 2 and f"pynas db export: error: {out_path}: already exists" in err and "Traceback" not in err
    code, out, _ = run(capsys, "db", "export", str(out_path), "--db", str(phone), "--force",
                       "--session", "test session")
    assert code == 0 and out.startswith("wrote 3 ")


def test_store_from_environment(capsys, phone, monkeypatch):
    monkeypatch.setenv("PYNAS_DB", str(phone))
    assert "3 measurements" in run(capsys, "db", "summary")[1]


def test_errors_are_one_line(capsys, tmp_path):
    missing = tmp_path / "nope.sqlite"
    code, _, err = run(capsys, "db", "summary", "--db", str(missing))
    assert code == 2 and f"{missing}: expected a measurement store, got nothing there" in err and not missing.exists()
    empty = tmp_path / "empty.sqlite"  # a read-only command never makes a store of an empty file
    empty.write_bytes(b"")
    code, _, err = run(capsys, "db", "summary", "--db", str(empty))
    assert code == 2 and "got an empty file there" in err and empty.stat().st_size == 0
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all")
    code, _, err = run(capsys, "db", "summary", "--db", str(junk))
    assert code == 2 and "not an SQLite database" in err and "Traceback" not in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format":"pynas-measurements","version":1}\n{"measurement_id": 1}\n')
    code, _, err = run(capsys, "db", "import", "--db", str(tmp_path / "desk.sqlite"), str(bad))
    assert code == 2 and f"{bad}:2: field 'measured_at': expected a value" in err
