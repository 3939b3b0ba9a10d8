"""The bad-input trial, end to end on the command line: every bad architecture string, file, store,
bundle or flag ends the command with exit status 2 and ONE line on stderr naming the field (file,
line, flag) and what was expected, before any work is done, with nothing written and nothing lost.
In-process (`pynas.cli.main`) where that is enough; a subprocess where a hang or a kill matters."""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pynas.cli import main
from pynas.space import get_space
from pynas.store import OpKey, Stats, Store

SHIPPED = Path(__file__).resolve().parent.parent / "predictors"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))  # this process's pynas, installed or the dev tree


def fails(capsys, *argv, code=2) -> str:
    """Run `pynas ARGV`; it must fail with `code` and one line on stderr, no traceback: that line."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == code, (status, out, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"pynas {argv[0]}"), err
    return err.strip()


def fingerprint(path: Path):
    """A file's bytes (None if absent) and its folder's listing: 'unchanged' means both."""
    return (hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None,
            sorted(os.listdir(path.parent)) if path.parent.exists() else None)


@pytest.fixture
def phone(tmp_path, make_context):
    """A store holding two measurements."""
    path = tmp_path / "phone.sqlite"
    with Store(path) as store:
        store.record(make_context(), OpKey("pw_1", "pwconv", {"macs": 1}), Stats(1.0, 0.1, 0.9, 1.2, 50))
        store.record(make_context(), OpKey("dw_1", "dwconv", {"macs": 2}), Stats(2.0, 0.1, 1.9, 2.2, 50))
    return path


# -- item 3: pynas profile's flags ----------------------------------------------------------------
@pytest.mark.parametrize("flag, value, message", [
    ("--pin", "999", "argument --pin: expected one of this machine's CPUs"),
    ("--pin", "-1", "argument --pin: expected one of this machine's CPUs"),
    ("--pin", "x", "argument --pin: expected one of this machine's CPUs"),
    ("--target-ci", "0", "argument --target-ci: expected a finite number in (0, 1], got '0'"),
    ("--target-ci", "-0.1", "argument --target-ci: expected a finite number in (0, 1], got '-0.1'"),
    ("--item-budget-seconds", "0", "argument --item-budget-seconds: expected a finite number in (0, 3600], got '0'"),
    ("--item-budget-seconds", "-2", "argument --item-budget-seconds: expected a finite number in (0, 3600]"),
    ("--item-budget-seconds", "nan", "argument --item-budget-seconds: expected a finite number in (0, 3600], got "
                                     "'nan'"),
    ("--item-budget-seconds", "inf", "argument --item-budget-seconds: expected a finite number"),
    ("--budget-minutes", "-1", "argument --budget-minutes: expected a finite number in [0, 1e+06], got '-1'"),
    ("--networks", "-1", "argument --networks: expected an integer 0..100000, got '-1'"),
    ("--neighbours", "-1", "argument --neighbours: expected an integer 0..100000, got '-1'"),
    ("--threads", "0", "argument --threads: expected an integer 1..256, got '0'"),
    ("--threads", "1000", "argument --threads: expected an integer 1..256, got '1000'"),
    ("--limit", "0", "argument --limit: expected an integer >= 1, got '0'"),
    ("--segments", "1.5", "argument --segments: expected an integer >= 1, got '1.5'"),
    ("--jobs", "0", "argument --jobs: expected an integer 1..64, got '0'"),
    ("--drift-tolerance", "nan", "argument --drift-tolerance: expected a finite number in (0, 1e+12], got 'nan'"),
])
def test_profile_flags(capsys, tmp_path, phone, flag, value, message):
    fresh = tmp_path / "fresh" / "m.sqlite"
    for db in (fresh, phone):  # a new store is not made; an existing one is not changed
        before = fingerprint(db)
        err = fails(capsys, "profile", "--resolution", "32", "--limit", "3", "--db", db, flag, value)
        assert message in err and err.startswith("pynas profile: error: ")
        assert fingerprint(db) == before


def test_a_run_in_which_every_item_failed_exits_1(capsys, tmp_path, monkeypatch):
    from pynas.profiling.backends import Backend

    def broken(self, *args, **kwargs):
        raise RuntimeError("the runtime crashed")

    monkeypatch.setattr(Backend, "segment", broken)
    monkeypatch.setattr(Backend, "network", broken)
    db = tmp_path / "m.sqlite"
    status = main(["profile", "--resolution", "32", "--limit", "3", "--networks", "0", "--neighbours", "0",
                   "--db", str(db)])
    out, err = capsys.readouterr()
    assert status == 1 and "FAILED" in out and "RuntimeError: the runtime crashed" in out
    assert err.splitlines()[-1] == "pynas profile: error: every one of 3 items failed: nothing was measured"
    with Store(db) as store:
        assert store.summary().measurements == 0 and store.claims(_context()) == {}


def _context():
    from pynas.profiling.backends import Backend
    from pynas.store import Context

    backend = Backend("native")
    return Context.here(backend.name, backend.version, backend.threads)


# -- item 4: pynas run --threads 1000 hung in the thread pool ---------------------------------------
def test_run_with_1000_threads_is_refused_at_once():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-P", "-m", "pynas.cli", "run", "mnasnet-a1", "--threads", "1000"],
                          capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "pynas run: error: argument --threads: expected an integer 1..256, got '1000' (see pynas run --help)"]
    assert time.monotonic() - started < 60


# -- item 5: what used to end in a traceback ------------------------------------------------------
@pytest.mark.parametrize("backend, extra", [("litert", "pynas[litert]"), ("onnxruntime", "pynas[onnx]")])
def test_a_backend_that_is_not_installed_says_what_to_install(capsys, tmp_path, backend, extra):
    from pynas.profiling.backends import unavailable

    if unavailable(backend) is None:
        pytest.skip(f"{backend} is installed here")
    db = tmp_path / "m.sqlite"
    err = fails(capsys, "profile", "--backend", backend, "--db", db)
    assert f"--backend {backend}: unavailable here: {backend} needs" in err and f"pip install '{extra}'" in err
    assert not db.exists()


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write in (root writes anywhere but on a read-only mount)."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o555)
        return folder
    for candidate in (Path("/proc/sys"), Path("/sys/kernel")):
        if candidate.is_dir() and not os.access(candidate, os.W_OK):
            return candidate
    pytest.skip("no read-only folder here for root")


@pytest.mark.parametrize("where", ["a file", "below a file", "a read-only place", "a folder of other files"])
def test_calibrate_output_is_checked_before_training(capsys, tmp_path, monkeypatch, phone, where):
    from pynas.predictor import train

    def never(*args, **kwargs):
        raise AssertionError("trained (or read the store) before checking the output")

    monkeypatch.setattr(train, "train", never)
    monkeypatch.setattr(train, "load_dataset", never)
    (tmp_path / "file").write_text("keep")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    output = {"a file": tmp_path / "file", "below a file": tmp_path / "file" / "bundle",
              "a read-only place": _read_only_folder(tmp_path) / "bundle",
              "a folder of other files": tmp_path / "notes"}
    message = {"a file": "expected a folder for the bundle, got a file there",
               "below a file": "is not a writable folder", "a read-only place": "is not a writable folder",
               "a folder of other files": "expected an empty folder or a bundle to replace, got other files there"}
    err = fails(capsys, "calibrate", phone, "-o", output[where])
    assert err.startswith(f"pynas calibrate: error: {output[where]}: ") and message[where] in err
    assert (tmp_path / "file").read_text() == "keep" and (tmp_path / "notes" / "mine.txt").read_text() == "keep"


def test_fewshot_with_a_missing_or_bad_csv(capsys, tmp_path):
    out = tmp_path / "new"
    err = fails(capsys, "fewshot", "pixel3", tmp_path / "nope.csv", "-o", out)
    assert err == (f"pynas fewshot: error: {tmp_path / 'nope.csv'}: expected a CSV file of measured networks "
                   f"(header 'arch,ms'), got nothing there")
    arch = get_space("fbnet").sample(1, seed=0)[0]
    for text, message in ((f"arch,ms\n{arch},-3\n", "line 2: ms: expected a latency in ms > 0, got '-3'"),
                          (f"arch,ms\n{arch},nan\n", "line 2: ms: expected a latency in ms > 0, got 'nan'"),
                          ("name,latency\n", "line 1: header: expected 'arch,ms', got 'name,latency'"),
                          (f"arch,ms\n{arch},1,2\n", "line 2: expected 2 fields (arch, ms), got 3"),
                          ("arch,ms\nnet_res224:stem,3\n", "line 2: arch: ")):
        csv = tmp_path / "measured.csv"
        csv.write_text(text)
        assert message in fails(capsys, "fewshot", "pixel3", csv, "-o", out)
    assert not out.exists()


@pytest.mark.parametrize("command", [["run", "mnasnet-a1"], ["describe", "mnasnet-a1"],
                                     ["predict", "mnasnet-a1", "--predictor", "x86-avx512-native"]])
def test_a_huge_resolution_is_a_flag_error(capsys, command):
    err = fails(capsys, *command, "--resolution", "100000")
    assert "argument --resolution: expected an integer 1..4096, got '100000'" in err


def test_import_of_a_line_nested_100000_deep(capsys, tmp_path, phone):
    bad = tmp_path / "deep.jsonl"
    bad.write_text('{"format":"pynas-measurements","version":1}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    before = fingerprint(phone)
    err = fails(capsys, "db", "import", "--db", phone, bad)
    assert err == (f"pynas db import: error: {bad}:2: expected a JSON object, got JSON nested too deeply to read "
                   f"(records nest at most 32 levels)")
    assert fingerprint(phone)[0] == before[0]  # nothing imported, nothing lost
    with Store(phone) as store:
        assert store.summary().measurements == 2


def _broken_bundles(root: Path) -> dict[str, str]:
    """Bundles broken in several ways, each with (the start of) the reason `pynas predictors` gives."""
    reasons = {}

    def copy(name):
        return Path(shutil.copytree(SHIPPED / "pixel3", root / name))

    def edit(folder, **changes):
        data = json.loads((folder / "manifest.json").read_text())
        data.update(changes)
        (folder / "manifest.json").write_text(json.dumps(data))

    folder = copy("bad-json")
    (folder / "manifest.json").write_text("{\"name\": ")
    reasons["bad-json"] = f"{folder}/manifest.json: unreadable manifest (Expecting value: line 1 column 10 (char 9))"
    folder = copy("deep")
    (folder / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    reasons["deep"] = f"{folder}/manifest.json: unreadable manifest (nested too deeply)"
    folder = copy("changed-table")
    (folder / "table.npz").write_bytes((folder / "table.npz").read_bytes() + b"\0")
    digest = hashlib.sha256((folder / "table.npz").read_bytes()).hexdigest()
    expected = json.loads((folder / "manifest.json").read_text())["files"]["table.npz"]
    reasons["changed-table"] = (f"{folder}/table.npz: sha256: expected {expected} (manifest), got {digest}: the file "
                                f"changed")
    folder = copy("missing-file")
    (folder / "report.json").unlink()
    reasons["missing-file"] = f"{folder}: file report.json listed in the manifest is missing"
    folder = copy("path-entry")
    edit(folder, files={"../../../../etc/passwd": "0" * 64})
    reasons["path-entry"] = (f"{folder}/manifest.json: files: expected plain file names inside the bundle folder "
                             f"(letters, digits, _ . -), not '../../../../etc/passwd'")
    folder = copy("nan-scale")
    edit(folder, network_term={"scale": float("nan"), "overhead_ms": 0})
    reasons["nan-scale"] = f"{folder}/manifest.json: network_term.scale: expected a finite number in (0.0, 1000.0], " \
                           f"got nan"
    folder = copy("wrong-types")
    edit(folder, extra=["report"])
    reasons["wrong-types"] = f"{folder}/manifest.json: extra: expected an object, got ['report']"
    folder = copy("future")
    edit(folder, schema_version=7)
    reasons["future"] = f"{folder}/manifest.json: schema_version: expected 1, got 7 (made by another pynas version)"
    return reasons


def test_predictors_lists_broken_bundles_with_their_full_reason_and_the_others(capsys, tmp_path, monkeypatch):
    reasons = _broken_bundles(tmp_path / "mine")
    Path(shutil.copytree(SHIPPED / "raspi4", tmp_path / "mine" / "good"))
    monkeypatch.setenv("PYNAS_PREDICTORS", str(tmp_path / "mine"))
    assert main(["predictors"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    for name, reason in reasons.items():
        assert rows[name].split()[1] == "unreadable", rows[name]
        assert reason in rows[name], (rows[name], reason)  # in full: never cut
    assert rows["good"].split()[1] == "table" and str(tmp_path / "mine" / "good") in rows["good"]
    for shipped in ("pixel3", "x86-avx512-native"):  # the search path's other bundles are still listed
        assert rows[shipped].split()[1] in ("table", "xgboost")


# -- item 8: one space's bundle does not price another space's networks -----------------------------
def test_a_mnasnet_bundle_does_not_price_an_fbnet_network(capsys):
    arch = get_space("fbnet").sample(1, seed=0)[0]
    err = fails(capsys, "predict", arch, "--predictor", "x86-avx512-native")
    assert "bundle x86-avx512-native was made for space mnasnet@224, got an architecture of space fbnet" in err


def test_fewshot_of_a_mnasnet_base_from_fbnet_networks(capsys, tmp_path):
    csv = tmp_path / "fbnet.csv"
    csv.write_text("arch,ms\n" + "".join(f"{a},{10 + i}\n" for i, a in enumerate(get_space("fbnet").sample(5, seed=1))))
    out = tmp_path / "new"
    err = fails(capsys, "fewshot", "x86-avx512-native", csv, "-o", out)
    assert f"{csv}: line 2: base x86-avx512-native is for space mnasnet@224, got an architecture of space fbnet" in err
    assert not out.exists()


# -- item 9: NaN, negative or huge numbers in a manifest --------------------------------------------
@pytest.mark.parametrize("field, value", [("scale", "NaN"), ("scale", "-1"), ("scale", "1e308"),
                                          ("overhead_ms", "NaN"), ("overhead_ms", "-1e308"), ("overhead_ms", "1e308"),
                                          ("weight_ms_per_mb", "-0.5"), ("overhead_ms", "Infinity")])
def test_unphysical_manifest_numbers(capsys, tmp_path, monkeypatch, field, value):
    monkeypatch.chdir(tmp_path)
    folder = Path(shutil.copytree(SHIPPED / "pixel3", tmp_path / "copy"))
    data = json.loads((folder / "manifest.json").read_text())
    data["network_term"][field] = "VALUE"
    (folder / "manifest.json").write_text(json.dumps(data).replace('"VALUE"', value))
    err = fails(capsys, "predict", get_space("fbnet").sample(1, seed=0)[0], "--predictor", "./copy")
    assert err.startswith(f"pynas predict: error: copy/manifest.json: network_term.{field}: expected a finite number")


# -- item 11: damaged store rows name the file, the row and the column -------------------------------
def _damage(path: Path, column: str = "harness", value: str = "{\"warmup\": ") -> str:
    """Corrupt one measurement's JSON column by hand; its measurement_id."""
    with sqlite3.connect(path) as conn:
        rowid, measurement_id = conn.execute("SELECT rowid, measurement_id FROM measurements ORDER BY rowid "
                                             "LIMIT 1 OFFSET 1").fetchone()
        conn.execute(f"UPDATE measurements SET {column} = ? WHERE rowid = ?", (value, rowid))
    conn.close()
    return f"measurement '{measurement_id}' (measurements row {rowid}): column {column}: expected a JSON object, got"


def test_damaged_rows_in_summary_and_export(capsys, tmp_path, phone):
    where = _damage(phone)
    err = fails(capsys, "db", "summary", "--db", phone)
    assert err.startswith(f"pynas db summary: error: {phone}: {where} malformed JSON")
    out = tmp_path / "out.jsonl"
    err = fails(capsys, "db", "export", out, "--db", phone)
    assert err.startswith(f"pynas db export: error: {phone}: {where} malformed JSON")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.jsonl")]


def test_damaged_rows_in_calibrate(capsys, tmp_path, small_store):
    store = Path(shutil.copy(small_store, tmp_path / "m.sqlite"))
    where = _damage(store, value="[\"not an object\"]")
    out = tmp_path / "bundle"
    err = fails(capsys, "calibrate", store, "-o", out, "--space", "mnasnet")
    assert err.startswith(f"pynas calibrate: error: {store}: {where} '[\"not an object\"]'")
    assert not out.exists()


# -- item 12: sizes -------------------------------------------------------------------------------
HUGE_REPEATS = "net_res224_cls1000:stem_k3_s2_c32:ir_r100000_k3_s1_e6_c16:head_c1280"


def test_an_architecture_with_100000_repeats_is_refused_quickly():
    from pynas.arch import ArchParseError, parse

    with pytest.raises(ArchParseError, match=r"stage.repeats: expected an integer in \[0, 64\], got 100000"):
        parse(HUGE_REPEATS)
    for command in (["describe", HUGE_REPEATS], ["predict", HUGE_REPEATS, "--predictor", "x86-avx512-native"]):
        done = subprocess.run([sys.executable, "-P", "-m", "pynas.cli", *command], capture_output=True, text=True,
                              timeout=30, env=ENV)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "r100000" in done.stderr


def test_sample_streams_and_n_is_an_integer(capsys):
    proc = subprocess.Popen([sys.executable, "-P", "-m", "pynas.cli", "sample", "-n", "100000000", "--seed", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        started = time.monotonic()
        lines = [proc.stdout.readline() for _ in range(3)]  # printed as decoded, not after 1e8 of them
        assert time.monotonic() - started < 60
        assert all(line.startswith("net_res224_cls1000:stem_k3_s2_c32:") for line in lines)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    err = fails(capsys, "sample", "-n", "1e8")
    assert "argument -n: expected an integer >= 0, got '1e8'" in err
