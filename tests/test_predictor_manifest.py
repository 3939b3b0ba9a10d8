"""Bundle manifests (pynas.predictor.manifest): a manifest is input from anywhere, so reading one
checks every field's type and value before any file is opened; a fuzz test of mutated manifests
finds nothing but BundleError."""
import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pynas.predictor import bundle, manifest as manifest_module
from pynas.predictor.manifest import BundleError

SHIPPED = Path(__file__).resolve().parent.parent / "predictors"


@pytest.fixture
def pixel3(tmp_path) -> Path:
    """A copy of the shipped pixel3 bundle (a table bundle, 24 KB) to break."""
    return Path(shutil.copytree(SHIPPED / "pixel3", tmp_path / "pixel3"))


def _write(folder: Path, data: dict) -> None:
    (folder / "manifest.json").write_text(json.dumps(data))


def _read(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.parametrize("field, value, message", [
    # files: a list, a sha256 of another type, a name that is a path
    ("files", ["table.npz"], "files: expected an object of file name -> sha256, got ['table.npz']"),
    ("files", {"table.npz": 5}, "files: expected a sha256 (64 lowercase hex digits) for file table.npz"),
    ("files", {"table.npz": "ab" * 31}, "files: expected a sha256 (64 lowercase hex digits) for file table.npz"),
    ("files", "table.npz", "files: expected an object of file name -> sha256, got 'table.npz'"),
    # extra: not an object, caches of another shape, a report that is not an object
    ("extra", [], "extra: expected an object, got []"),
    ("extra", {"caches": "l2"}, "extra: expected an object whose caches is {l1d, l2, l3: bytes or null}"),
    ("extra", {"caches": {"l2": -1}}, "extra: expected an object whose caches is {l1d, l2, l3: bytes or null}"),
    ("extra", {"caches": {"l4": 1}}, "extra: expected an object whose caches is {l1d, l2, l3: bytes or null}"),
    ("extra", {"report": [1]}, "extra: expected an object whose report is an object"),
    # network_term: not an object, a number of another type, a field it does not have
    ("network_term", [1.0, 0.0], "network_term: expected an object, got [1.0, 0.0]"),
    ("network_term", "scale=1", "network_term: expected an object, got 'scale=1'"),
    ("network_term", {"scale": "1", "overhead_ms": 0}, "network_term.scale: expected a finite number in (0.0, 1000.0], "
                                                        "got '1'"),
    ("network_term", {"scale": 1, "overhead_ms": 0, "bias": 1}, "network_term: unknown field 'bias'"),
    ("network_term", {"overhead_ms": 0}, "network_term.scale: expected a number, got nothing"),
    ("network_term", {"scale": 1, "overhead_ms": 0, "group_scales": [1]},
     "network_term.group_scales: expected an object of op-type group -> number, got [1]"),
    # the others
    ("device", ["pixel3"], "device: expected an object of name -> string, number, boolean, null or list of strings"),
    ("device", {"isa_flags": [1, 2]}, "device: expected an object of name -> string"),
    ("device", {"name": {"nested": 1}}, "device: expected an object of name -> string"),
    ("threads", -1, "threads: expected an integer in 0..4096 (0: the source does not say), got -1"),
    ("threads", True, "threads: expected an integer in 0..4096"),
    ("threads", 10 ** 400, "threads: expected an integer in 0..4096"),
    ("features", "cin,cout", "features: expected a list of names, got 'cin,cout'"),
    ("units", "s", "units: expected 'ms', got 's'"),
    ("space", {"name": "fbnet"}, "space: expected null or an object {name, resolution, options, layout}"),
    ("space", {"name": "fbnet", "resolution": 224, "options": {"resolution": 32}, "layout": "x"},
     "space: expected null or an object {name, resolution, options, layout} (options.resolution the resolution)"),
    ("name", 3, "name: expected a string, got 3"),
    ("schema_version", "1", "schema_version: expected 1, got '1'"),
])
def test_each_field_of_the_wrong_type_is_refused_naming_it(pixel3, field, value, message):
    _write(pixel3, dict(_read(pixel3), **{field: value}))
    with pytest.raises(BundleError) as caught:
        bundle.load(pixel3)
    assert str(caught.value).startswith(f"{pixel3}/manifest.json: {message}"), str(caught.value)


@pytest.mark.parametrize("field, value", [
    ("scale", math.nan), ("scale", -1.0), ("scale", 0.0), ("scale", 1e308), ("overhead_ms", math.nan),
    ("overhead_ms", -1e308), ("overhead_ms", 1e308), ("overhead_ms", math.inf), ("weight_ms_per_mb", -0.5),
    ("segment_ms", math.nan), ("group_scales", {"mbconv": math.nan}), ("group_scales", {"mbconv": -2.0}),
    ("group_offsets", {"mbconv": 1e308}), ("fitted_ms", [3.0, 1.0]), ("fitted_ms", [math.nan, 1.0]),
    ("scale", 10 ** 400),
])
def test_unphysical_network_terms_are_refused_on_load(pixel3, field, value):
    data = _read(pixel3)
    data["network_term"][field] = value
    (pixel3 / "manifest.json").write_text(json.dumps(data))  # NaN and Infinity as JSON extensions
    with pytest.raises(BundleError, match=rf"^{pixel3}/manifest.json: network_term.{field}"):
        bundle.load(pixel3)


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/proc/self/environ", "a/b", "..", ".hidden",
                                  "manifest.json", "table.npz\x00", "x" * 200])
def test_file_entries_that_are_paths_are_refused_before_anything_is_opened(pixel3, monkeypatch, name):
    def never(path):
        raise AssertionError(f"{path} was opened")

    monkeypatch.setattr(manifest_module, "sha256_of", never)
    data = _read(pixel3)
    data["files"][name] = "0" * 64
    _write(pixel3, data)
    with pytest.raises(BundleError, match=rf"^{pixel3}/manifest.json: files: expected plain file names inside the "
                                          r"bundle folder \(letters, digits, _ \. -\), not "):
        bundle.load(pixel3)
    # The listing reads the manifest the same way: the bundle is listed as unreadable, nothing opened.
    monkeypatch.setattr(bundle, "search_path", lambda: [pixel3.parent])
    [(listed, _, error)] = bundle.list_bundles()
    assert listed == "pixel3" and isinstance(error, BundleError) and "files: expected plain file names" in str(error)


def test_a_deeply_nested_manifest_is_one_error(pixel3):
    text = (pixel3 / "manifest.json").read_text()
    (pixel3 / "manifest.json").write_text(text.replace('"extra": {', '"extra": {"deep": ' + "[" * 100_000
                                                       + "]" * 100_000 + ", ", 1))
    with pytest.raises(BundleError, match=rf"^{pixel3}/manifest.json: unreadable manifest \(nested too deeply\)$"):
        bundle.load(pixel3)
    (pixel3 / "manifest.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(BundleError, match=rf"^{pixel3}/manifest.json: unreadable manifest \('utf-8' codec"):
        bundle.load(pixel3)


# -- fuzz ------------------------------------------------------------------------------------------
DEEP = "__deep__"  # a placeholder the writer replaces with [[[...]]] nested thousands deep
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70),
    st.sampled_from([0, 1, -1, 4097, 2 ** 63, 10 ** 400, 1e308, -1e308, 5e-324, -0.0, math.nan, math.inf,
                     -math.inf]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["../../../../etc/passwd", "/proc/self/environ", "a/b", "", "table.npz", "model.ubj",
                     "manifest.json", "\x00", "ms", "xgboost", "table", "mnasnet", "fbnet", "0" * 64, DEEP]),
    st.lists(st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=4), st.floats()), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=4)), max_size=3),
)


def _paths(value, prefix=(), depth=0):
    """Every path to a value inside a JSON value (dict keys and list indices), a few levels deep."""
    yield prefix
    if depth >= 4:
        return
    items = value.items() if isinstance(value, dict) else enumerate(value[:3]) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, prefix + (key,), depth + 1)


def _mutate(data, path, action, value, new_key):
    """Apply one mutation at `path`: replace the value, delete it, add a key beside it, rename it."""
    if not path:
        return value if action == "replace" else data
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "replace":
        parent[key] = value
    elif action == "delete":
        del parent[key]
    elif action == "add" and isinstance(parent, dict):
        parent[new_key] = value
    elif action == "rename" and isinstance(parent, dict):
        parent[new_key] = parent.pop(key)
    return data


def _manifest_text(data, depth: int) -> str:
    return json.dumps(data).replace(json.dumps(DEEP), "[" * depth + "]" * depth)


@pytest.fixture(scope="module")
def bases(tiny_bundle, tmp_path_factory):
    """The bundles whose manifests are mutated: a table bundle and an XGBoost one with a table."""
    root = tmp_path_factory.mktemp("fuzz-bases")
    return {name: (Path(shutil.copytree(source, root / name)), _read(source))
            for name, source in (("pixel3", SHIPPED / "pixel3"), ("tiny", tiny_bundle))}


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_manifests_raise_only_bundle_errors(bases, data, monkeypatch, capsys):
    """Types swapped, values NaN/huge/negative/nested deep, keys removed, added and renamed, file
    entries with paths: `load` raises BundleError (a ValueError: one line on the command line) or
    loads; `pynas predictors` lists the bundle, readable or with its reason, and never fails."""
    from pynas.cli import main

    name = data.draw(st.sampled_from(sorted(bases)), label="bundle")
    source, original = bases[name]
    manifest = json.loads(json.dumps(original))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        by_length = {}
        for path in _paths(manifest):  # a field, a field's field, ... each as likely: not mostly the deep ones
            by_length.setdefault(len(path), []).append(path)
        path = data.draw(st.sampled_from(by_length[data.draw(st.sampled_from(sorted(by_length)))]), label="path")
        action = data.draw(st.sampled_from(["replace", "replace", "delete", "add", "rename"]), label="action")
        value = data.draw(ODD_VALUES, label="value")
        new_key = data.draw(st.sampled_from(["x", "../x", "/proc/self/environ", "table.npz", "scale", ""]),
                            label="new key")
        if action in ("delete", "rename") and not path:
            continue
        manifest = _mutate(manifest, path, action, value, new_key)
    depth = data.draw(st.sampled_from([40, 5000, 100_000]), label="deep")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(shutil.copytree(source, Path(tmp) / name))
        (folder / "manifest.json").write_text(_manifest_text(manifest, depth))
        try:
            bundle.load(folder)
        except BundleError:
            pass  # a ValueError: one line on the command line. Anything else fails the test.
        monkeypatch.setattr(bundle, "search_path", lambda: [Path(tmp)])
        assert main(["predictors"]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[2].startswith(name), out


SWAPS = [None, -1, 10 ** 400, math.nan, "../../etc/passwd", ["x"], {"x": 1}, DEEP]  # each JSON type, odd values


def test_every_field_and_subfield_swapped_to_every_type(bases, monkeypatch, capsys):
    """The systematic half of the fuzz: each field and each field's field of both manifests replaced
    by a value of each JSON type (and odd ones), and removed: BundleError or a loaded bundle."""
    from pynas.cli import main

    outcomes = {"loaded": 0, "refused": 0}
    for name, (folder, original) in sorted(bases.items()):
        monkeypatch.setattr(bundle, "search_path", lambda folder=folder: [folder.parent])
        paths = [p for p in _paths(original) if 1 <= len(p) <= 2]
        for path in paths:
            for action, value in [("delete", None)] + [("replace", v) for v in SWAPS]:
                manifest = _mutate(json.loads(json.dumps(original)), path, action, value, "")
                (folder / "manifest.json").write_text(_manifest_text(manifest, 100_000))
                try:
                    bundle.load(folder)
                    outcomes["loaded"] += 1
                except BundleError:
                    outcomes["refused"] += 1
        assert main(["predictors"]) == 0
        (folder / "manifest.json").write_text(json.dumps(original))
    capsys.readouterr()
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0  # both happen: the sweep reaches past the checks
