"""NAS-Bench-201 as a space (pynas.space.nb201): cells and their strings, the bijection with the
benchmark's indices on all 15,625 rows, the shipped data and its checks, sampling, refusals."""
import csv
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pynas.space import get_space, spaces_holding
from pynas.space import nb201
from pynas.space.nb201 import EDGE_NAMES, OPS, BenchmarkDataError, Cell, NB201Space, benchmark

# The source table (not shipped: the package ships what scripts/make-nb201-data.py made of it).
CSV = Path(os.environ.get("PYNAS_NB201_CSV", "/work/shared/data/nb201/nb201.csv"))
# Rows of that table, to check the shipped data against the benchmark wherever the table is absent:
# index, string, CIFAR-10 test (200 epochs), CIFAR-10 valid (12), ImageNet16 test, pixel3 ms, fpga ms, params M.
KNOWN = [
    (0, "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
     85.8633, 63.364, 26.6333, 3.60585, 2.57296, 0.129306),
    (1, "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     93.66, 82.834, 44.0333, 17.2381, 5.31536, 0.802426),
    (4321, "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|nor_conv_1x1~1|none~2|",
     88.8133, 72.844, 32.0889, 1.89255, 1.64816, 0.101306),
    (15624, "|nor_conv_1x1~0|+|none~0|nor_conv_1x1~1|+|none~0|nor_conv_1x1~1|nor_conv_1x1~2|",
     86.8233, 55.762, 21.4111, 4.63185, 3.19376, 0.185306),
]
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # index 1651: input cut off from output


@pytest.fixture(scope="module")
def space():
    return get_space("nb201")


def test_decisions_and_size(space):
    assert isinstance(space, NB201Space) and space.name == "nb201" and space.resolution == 32
    assert [d.name for d in space.decisions] == ["edge0to1", "edge0to2", "edge1to2", "edge0to3", "edge1to3",
                                                 "edge2to3"]
    assert all(d.choices == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
               for d in space.decisions)
    assert space.size == 15625 and not space.lowerable
    assert space.options() == {} and get_space("nb201", **space.options()).layout_name() == "nb201_res32_cls10"


@pytest.mark.parametrize("index, text", [row[:2] for row in KNOWN])
def test_known_rows_of_the_benchmark(space, index, text):
    cell = Cell.parse(text)
    assert str(cell) == text and space.index(text) == index == space.index(cell)
    assert space.decode(space.tokens_of([index])[0]) == cell


def test_bijection_with_the_benchmark_index_on_all_rows(space):
    every = np.array(list(itertools.product(range(5), repeat=6)), dtype=np.int64)  # lexicographic
    indices = space.index_of(every)
    assert sorted(indices.tolist()) == list(range(15625))  # a permutation of the indices
    np.testing.assert_array_equal(space.tokens_of(indices), every)
    np.testing.assert_array_equal(space.index_of(space.tokens_of(np.arange(15625))), np.arange(15625))
    # The benchmark's order is its own: not the lexicographic one (index 0 is not the all-none cell).
    assert space.index(ALL_NONE) == 1651 and not np.array_equal(indices, np.arange(15625))
    cells = [space.decode(t) for t in every]  # and with the strings
    assert len({str(c) for c in cells}) == 15625
    assert all(space.encode(str(c)) == tuple(t) for c, t in zip(cells, every.tolist()))


@pytest.mark.skipif(not CSV.is_file(), reason=f"the source table {CSV} is not here (set PYNAS_NB201_CSV)")
def test_shipped_data_is_the_source_table_on_every_row(space):
    """Every string of the table parses to the cell of its index, and every kept column is the
    table's decimals exactly."""
    data = benchmark()
    with open(CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15625 and [int(r["arch_index"]) for r in rows] == list(range(15625))
    strings = [str(space.decode(t)) for t in space.tokens_of(np.arange(15625))]
    assert strings == [r["arch_str"] for r in rows]
    for column in nb201.COLUMNS:
        np.testing.assert_array_equal(data.columns[column], [float(r[column]) for r in rows], err_msg=column)


@pytest.mark.parametrize("index, text, test200, valid12, imagenet200, pixel3, fpga, params", KNOWN)
def test_benchmark_columns(index, text, test200, valid12, imagenet200, pixel3, fpga, params):
    data = benchmark()
    assert data.accuracy("cifar10", 200)[index] == test200  # the test accuracy after 200 epochs
    assert data.accuracy("cifar10", 12)[index] == valid12  # the validation accuracy after 12 epochs
    assert data.accuracy("imagenet16")[index] == imagenet200
    assert data.latency("pixel3")[index] == pixel3 and data.latency("fpga")[index] == fpga
    assert data.params[index] == params


def test_benchmark_arrays_are_whole_read_only_and_cached():
    data = benchmark()
    assert benchmark() is data
    for dataset in nb201.DATASETS:
        for fidelity in nb201.FIDELITIES:
            acc = data.accuracy(dataset, fidelity)
            assert acc.shape == (15625,) and acc.dtype == np.float64 and 0 <= acc.min() and acc.max() <= 100
    for device in nb201.DEVICES:
        assert data.latency(device).min() > 0
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        data.latency("pixel3")[0] = 0.0
    assert data.latency("pixel3")[1651] < 0.01 < np.median(data.latency("pixel3"))  # the all-none cell: ~0 ms


def test_benchmark_bad_arguments():
    data = benchmark()
    with pytest.raises(ValueError, match="dataset: expected one of cifar10, cifar100, imagenet16, got 'imagenet'"):
        data.accuracy("imagenet", 200)
    with pytest.raises(ValueError, match=r"fidelity: expected one of 12, 200 \(epochs\), got 50"):
        data.accuracy("cifar10", 50)
    with pytest.raises(ValueError, match="device: expected one of pixel3, raspi4, eyeriss, fpga, got 'edgegpu'"):
        data.latency("edgegpu")


def test_manifest_and_readme_name_sha256_columns_source_and_licence():
    manifest = json.loads((nb201.DATA_DIR / "manifest.json").read_text())
    entry = manifest["files"]["nb201.npz"]
    assert entry["sha256"] == benchmark().sha256 and entry["rows"] == 15625
    assert set(entry["arrays"]) == {"tokens", *nb201.COLUMNS}
    assert all(a["unit"] in ("%", "ms", "M", "op index") and a["what"] for a in entry["arrays"].values())
    assert "HW-NAS-Bench" in entry["source"] and "NATS-Bench" in entry["source"] and "MIT" in entry["licence"]
    readme = (nb201.DATA_DIR / "README.md").read_text()
    assert "MIT" in readme and "HW-NAS-Bench" in readme and "make-nb201-data.py" in readme
    assert (nb201.DATA_DIR / "nb201.npz").stat().st_size < 600_000  # small: float64 compresses to ~460 KB


def test_data_files_go_into_the_wheel():
    """Everything under pynas/ that git does not ignore is in the wheel (pyproject.toml)."""
    root = nb201.DATA_DIR.parent.parent.parent
    if not (root / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    for name in ("nb201.npz", "manifest.json", "README.md"):
        done = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", str(nb201.DATA_DIR / name)])
        assert done.returncode == 1, f"{name} is ignored by git, so it would not be in the wheel"


@pytest.fixture
def data_copy(tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(nb201.DATA_DIR, folder)
    return folder


def _rewrite(folder: Path, **changes) -> None:
    """The data file with arrays changed, and the manifest's sha256 updated to match."""
    import hashlib

    with np.load(folder / "nb201.npz", allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    with open(folder / "nb201.npz", "wb") as f:
        np.savez_compressed(f, **arrays)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["nb201.npz"]["sha256"] = hashlib.sha256((folder / "nb201.npz").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_a_changed_data_file_is_refused_naming_expected_and_got_sha256(data_copy):
    assert benchmark(data_copy).sha256 == benchmark().sha256  # an intact copy reads
    raw = bytearray((data_copy / "nb201.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (data_copy / "nb201.npz").write_bytes(bytes(raw))
    want = benchmark().sha256
    with pytest.raises(BenchmarkDataError, match=rf"nb201.npz: sha256: expected {want} \(manifest.json\), got "
                                                 r"[0-9a-f]{64}: the file changed"):
        benchmark(data_copy)


def test_bad_data_is_refused_naming_the_array(data_copy):
    latency = benchmark().latency("raspi4").copy()
    latency[7] = np.nan
    _rewrite(data_copy, raspi4_latency_ms_cifar10=latency)
    with pytest.raises(BenchmarkDataError, match=r"raspi4_latency_ms_cifar10\[7\]: expected a finite number > 0, "
                                                 r"got nan"):
        benchmark(data_copy)
    accuracy = benchmark().accuracy("cifar100", 12).copy()
    accuracy[3] = 101.0
    _rewrite(data_copy, raspi4_latency_ms_cifar10=benchmark().latency("raspi4"), cifar100_valid_acc_12ep=accuracy)
    with pytest.raises(BenchmarkDataError, match=r"cifar100_valid_acc_12ep\[3\]: expected a percentage in \[0, 100\]"):
        benchmark(data_copy)


def test_data_whose_tokens_are_no_bijection_is_refused(data_copy):
    tokens = benchmark().tokens.copy()
    tokens[5] = tokens[6]
    _rewrite(data_copy, tokens=tokens)
    with pytest.raises(BenchmarkDataError, match="tokens: expected each of the 15625 cells exactly once .* got 15624"):
        benchmark(data_copy)
    _rewrite(data_copy, tokens=benchmark().tokens, params_M_cifar10=None)
    with pytest.raises(BenchmarkDataError, match=r"arrays: expected \[.*'params_M_cifar10'.*\], got \["):
        benchmark(data_copy)
    _rewrite(data_copy, params_M_cifar10=benchmark().params.astype(np.float32))
    with pytest.raises(BenchmarkDataError, match=r"params_M_cifar10: expected float64 with shape \(15625,\), got "
                                                 r"float32"):
        benchmark(data_copy)


def test_missing_or_unreadable_data(data_copy, tmp_path):
    with pytest.raises(BenchmarkDataError, match="nb201.npz: NAS-Bench-201 data missing"):
        benchmark(tmp_path / "nowhere")
    (data_copy / "manifest.json").write_text("{")
    with pytest.raises(BenchmarkDataError, match="manifest.json: unreadable data manifest"):
        benchmark(data_copy)
    (data_copy / "manifest.json").write_text('{"format": "pynas.space.data", "version": 1, "files": {}}')
    with pytest.raises(BenchmarkDataError, match=r"files.nb201.npz.sha256: expected the data file's sha256"):
        benchmark(data_copy)


def test_cell_strings_round_trip(space):
    for tokens in space.sample_tokens(500, seed=3):
        cell = space.decode(tokens)
        assert Cell.parse(str(cell)) == cell and space.encode(str(cell)) == tuple(tokens) == cell.tokens
    assert Cell(list(OPS[:5]) + ["none"]) == Cell(tuple(OPS[:5]) + ("none",))  # a list is taken as a tuple
    assert hash(Cell(("none",) * 6)) == hash(Cell.parse(ALL_NONE))


@pytest.mark.parametrize("text, message", [
    ("", r"expected 3 groups joined by '\+'"),
    ("|none~0|+|none~0|none~1|", "expected 3 groups joined by '\\+' .* got 2"),
    (ALL_NONE + "+|none~0|", "got 4"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", r"node 1: expected \|OP~0\|, got 'none~0\|'"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", r"node 2: expected 2 edge\(s\), \|OP~0\|OP~1\|, got 1"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1: edge 0: expected OP~0, got 'none~1'"),
    ("|none~0|+|none~0|none~1|+|none~0|none~2|none~1|", "node 3: edge 1: expected OP~1, got 'none~2'"),
    ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1: edge 0: expected OP~0, got 'none'"),
    ("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
     "edge0to1: expected one of none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3, got 'conv_3x3'"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|None~2|", "edge2to3: expected one of .* got 'None'"),
    (" " + ALL_NONE, r"node 1: expected \|OP~0\|, got ' \|none~0\|'"),
    (ALL_NONE + "\n", r"node 3: expected"),
    ("|none~00|+|none~0|none~1|+|none~0|none~1|none~2|", "expected OP~0, got 'none~00'"),
])
def test_parse_is_strict_with_one_line_errors(space, text, message):
    with pytest.raises(ValueError, match=message) as caught:
        space.parse(text)
    assert "\n" not in str(caught.value).replace(repr(text), "")


def test_parse_and_cell_refuse_other_types():
    with pytest.raises(ValueError, match="NAS-Bench-201 cell: expected a string like .*, got int"):
        Cell.parse(3)
    with pytest.raises(ValueError, match=r"ops: expected 6 op names \(one per edge: edge0to1, .*\), got \('none',\)"):
        Cell(("none",))
    with pytest.raises(ValueError, match="ops: edge1to2: expected one of none, .* got 'conv'"):
        Cell(("none", "none", "conv", "none", "none", "none"))


def test_encode_refuses_what_is_not_a_cell(space):
    arch = get_space("mnasnet").sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="architecture not in space 'nb201': expected a NAS-Bench-201 Cell or its "
                                         "string, got Arch"):
        space.encode(arch)
    with pytest.raises(ValueError, match="tokens: expected 6 values for space 'nb201', got 5"):
        space.decode([0] * 5)
    with pytest.raises(ValueError, match="token edge1to3: expected 0..4, got 5"):
        space.decode([0, 0, 0, 0, 5, 0])


def test_index_of_and_tokens_of_refuse_bad_arrays(space):
    with pytest.raises(ValueError, match=r"tokens: expected an N x 6 integer array .*, got int64 with shape \(6,\)"):
        space.index_of(np.zeros(6, dtype=np.int64))
    with pytest.raises(ValueError, match=r"got float64 with shape \(2, 6\)"):
        space.index_of(np.zeros((2, 6)))
    bad = np.zeros((3, 6), dtype=np.int64)
    bad[2, 3] = -1
    with pytest.raises(ValueError, match="tokens: row 2, edge0to3: expected 0..4, got -1"):
        space.index_of(bad)
    bad[2, 3], bad[1, 5] = 0, 5
    with pytest.raises(ValueError, match="tokens: row 1, edge2to3: expected 0..4, got 5"):
        space.index_of(bad)
    with pytest.raises(ValueError, match="tokens: row 0, edge0to1: expected 0..4, got 255"):
        space.index_of(np.full((1, 6), 255, dtype=np.uint8))
    for dtype in (np.int8, np.int32, np.uint16, np.uint64):  # any integer type, exactly
        assert space.index_of(np.array([[4, 2, 1, 2, 1, 1]], dtype=dtype)).tolist() == [0]
    assert space.index_of(np.zeros((0, 6), dtype=np.int64)).shape == (0,)
    with pytest.raises(ValueError, match="indices: position 1: expected a benchmark index in 0..15624, got 15625"):
        space.tokens_of([0, 15625])
    with pytest.raises(ValueError, match="indices: expected a 1-D integer array of benchmark indices"):
        space.tokens_of([[0]])


def test_sampling_is_seeded_and_uniform(space):
    cells = space.sample(5, seed=0)
    assert all(isinstance(c, Cell) for c in cells) and cells == space.sample(5, seed=0)
    tokens = space.sample_tokens(50_000, seed=1)
    counts = np.stack([np.bincount(tokens[:, d], minlength=5) for d in range(6)])
    assert counts.min() > 9500 and counts.max() < 10500  # 10,000 expected per (edge, op)
    indices = space.index_of(tokens)
    assert len(np.unique(indices)) > 14_000  # spread over the benchmark


def test_resolution_is_only_the_benchmark_s(space):
    assert get_space("nb201", resolution=32).resolution == 32
    with pytest.raises(ValueError, match=r"resolution: expected 32 \(NAS-Bench-201's CIFAR skeleton; the benchmark "
                                         r"has no other\), got 64"):
        get_space("nb201", resolution=64)
    with pytest.raises(ValueError, match="search space 'nb201': unknown option 'setting', expected one of resolution"):
        get_space("nb201", setting="cifar100")


def test_tools_for_block_networks_refuse_the_space_by_name(space):
    with pytest.raises(ValueError, match="space 'nb201': table_layout .* expected a space of block networks .* "
                                         "priced one by one: its lookup bundles"):
        space.table_layout()
    assert spaces_holding(Cell.parse(ALL_NONE)) == ["nb201"]
    assert spaces_holding(get_space("mnasnet").sample(1, seed=0)[0]) == ["mnasnet"]
    with pytest.raises(ValueError, match="arch: expected an Arch, a NAS-Bench-201 Cell or a cell network, got str"):
        spaces_holding(ALL_NONE)


def test_describe(space):
    text = space.describe()
    assert "search space nb201: 6 decisions" in text and "edge2to3" in text and nb201.EXAMPLE in text
    assert EDGE_NAMES[0] == "edge0to1"
