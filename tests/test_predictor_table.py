"""The compiled latency lookup table (pynas.predictor.table, cpp/predictor/table.h) against the
plain-Python dict path, its layout, its errors and its files."""
import hashlib
import itertools
import json
import re
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from pynas import _core
from pynas.arch import parse
from pynas.predictor.table import (CompiledTable, PricingError, TableSpecError, UnpricedCellError, compile_table,
                                   native_table, python_predict)
from pynas.space import MnasNetSpace, get_space
from pynas.space.catalogue import space_items
from pynas.space.layout import BlockSlot, TableLayout, TableSpec

OVERHEAD_MS = 0.375
WIDTH = 6  # tokens per MnasNet block: op, kernel, se, skip, filters, layers


def hash_ms(key: str) -> float:
    """A made-up but deterministic latency per segment key, 0.05..3.05 ms."""
    return 0.05 + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2 ** 32 * 3


@pytest.fixture(scope="module")
def space():
    return get_space("mnasnet")


@pytest.fixture(scope="module")
def compiled(space):
    calls = []

    def price(key):
        calls.append(key)
        return hash_ms(key)

    return compile_table(space, price, overhead_ms=OVERHEAD_MS), calls


def test_mnasnet_layout(space):
    layout = space.table_layout().layout
    assert layout.space == "mnasnet_res224_cls1000"
    assert layout.cardinalities == space.cardinalities and len(layout.blocks) == 7
    assert layout.states[:4] == ("stem:c32", "b1:c12", "b1:c16", "b1:c20") and len(layout.states) == 22
    b3 = layout.blocks[2]
    assert (b3.name, b3.stage, b3.chunk_tokens) == ("b3", 2, (12, 13, 14, 15, 16))
    assert (b3.repeats_token, b3.repeats, b3.state_token, b3.next_state) == (17, (2, 3, 4), 16, (7, 8, 9))
    reach = layout.reachable()
    # b2 sees b1's widths or, b1 being empty, the stem's; the head sees b7's or, b7 empty, b6's.
    assert [sorted(s) for s in reach.states_in] == [[0], [0, 1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12],
                                                    [13, 14, 15], [16, 17, 18]]
    assert sorted(reach.head) == list(range(16, 22))
    assert [len(f) for f in reach.first] == [144, 576, 432, 432, 432, 432, 432]
    assert all(len(r) == 144 for r in reach.rest)
    tokens = [0] * 42
    tokens[5], tokens[11] = 0, 2  # b1 empty: b2 sees the stem and leaves its width 0 (18 channels)
    trace, head_state = layout.trace(tokens)
    assert (trace[0].repeats, trace[1].state, trace[1].repeats, trace[2].state) == (0, 0, 3, 4)
    assert trace[6].repeats == 0 and head_state == 16  # b7 empty: the head sees b6's width 0
    assert TableLayout.from_json(json.loads(json.dumps(layout.to_json()))) == layout
    assert MnasNetSpace(resolution=192).table_layout().layout != layout  # the identity has the resolution


def test_cells_are_the_segments_profiling_measures(space, compiled):
    """price is called once per distinct key, and those keys are exactly space_segments' (what
    `pynas profile` measures): profiling a space prices its whole table."""
    table, calls = compiled
    assert len(calls) == len(set(calls)) == len(table.prices)
    assert set(calls) == set(space_items(space))
    assert table.prices == {key: hash_ms(key) for key in calls}
    assert table.stem_ms == hash_ms(next(k for k in calls if k.startswith("stem_")))


def test_table_equals_the_python_dict_path(space, compiled):
    table, _ = compiled
    tokens = space.sample_tokens(2000, seed=11)
    # 0-layer blocks (b1 and b7 at layers -1): the state passes through them.
    tokens[:300, 5] = 0
    tokens[300:600, 6 * WIDTH + 5] = 0
    tokens[600:900, [5, 6 * WIDTH + 5]] = 0
    for block in range(7):
        assert set(tokens[:, block * WIDTH + 5]) == {0, 1, 2}, block  # every repeats choice
    archs = [space.decode(row) for row in tokens]
    assert sum(a.stages[0].repeats == 0 and a.stages[6].repeats == 0 for a in archs) >= 300
    key_latency = {key: hash_ms(key) for key in table.prices}
    expected = python_predict(space, key_latency, archs, overhead_ms=OVERHEAD_MS)
    got = table.predict_batch(tokens)
    assert got.dtype == np.float32 and got.shape == (2000,)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)  # float32 rounding of a float64 sum
    np.testing.assert_array_equal(table.predict_batch(tokens.astype(np.int32)), got)
    np.testing.assert_array_equal(table.predict_batch(archs[:50]), got[:50])  # Arch inputs, encoded
    np.testing.assert_array_equal(table.predict_batch(tokens[:50].tolist()), got[:50])
    np.testing.assert_array_equal(table.predict_batch(tokens[:50].astype(np.uint8)), got[:50])
    np.testing.assert_array_equal(table.predict_batch(tokens[::7]), got[::7])  # not C-contiguous
    assert table.predict(archs[3]) == got[3] and table.predict(tokens[4]) == got[4]
    assert table.predict_batch(np.zeros((0, 42), np.int64)).shape == (0,) and table.predict_batch([]).shape == (0,)


def test_bad_tokens_raise_value_errors_naming_the_field(space, compiled):
    table, _ = compiled
    good = space.sample_tokens(5, seed=0)
    with pytest.raises(ValueError, match=r"tokens: expected N x 42 \(one column per decision\), got N x 41"):
        table.predict_batch(good[:, :41])
    for value in (2, -1, 2 ** 32 + 1):  # 2^32 + 1 would be 1 if narrowed to 32 bits
        bad = good.copy()
        bad[3, 13] = value
        with pytest.raises(ValueError, match=re.escape(f"tokens row 3, decision 13 (b3.kernel): expected a value "
                                                       f"in 0..1, got {value}")):
            table.predict_batch(bad)
    bad = good.astype(np.int32)
    bad[4, 41] = 3
    with pytest.raises(ValueError, match=r"tokens row 4, decision 41 \(b7.layers\): expected a value in 0..2, got 3"):
        table.predict_batch(bad)
    for wrong in (good.astype(np.float64), good.astype(bool), np.full((5, 42), "0")):
        with pytest.raises(ValueError, match=r"tokens: expected an integer array"):
            table.predict_batch(wrong)
    with pytest.raises(ValueError, match=r"tokens: expected an integer array"):
        table.predict_batch([[0.5] * 42])
    with pytest.raises(ValueError, match=r"tokens: expected a 2-d array N x 42"):
        table.predict_batch(good[0])
    with pytest.raises(ValueError, match=r"tokens: expected an int32 or int64 array, got dtype float64"):
        table._native.predict_batch(good.astype(np.float64))  # the binding itself never casts
    with pytest.raises(ValueError, match=r"resolution: expected one of \(224,\)"):
        table.predict(parse(str(space.decode(good[0])).replace("res224", "res192")))
    with pytest.raises(ValueError, match=r"archs: expected a list of Arch objects or of token rows, got a mix"):
        table.predict_batch([space.decode(good[0]), good[1]])


def test_a_row_reading_a_nan_cell_raises_naming_row_and_block(space, compiled):
    table, _ = compiled
    layout = table.layout
    tokens = space.sample_tokens(4, seed=5)
    tokens[:, 2 * WIDTH + 5] = 0  # b3 with 2 layers: first + 1 rest repeat
    tokens[2, 2 * WIDTH + 5] = 2  # ... row 2 with 4
    trace = [layout.trace(row)[0][2] for row in tokens]
    first = [f.copy() for f in table.first]
    first[2][trace[2].state, trace[2].chunk] = np.nan
    with pytest.raises(ValueError, match=r"first\[b3\]\[\d+, \d+\]: expected a latency in ms in \[0, 1e\+06\] \(a token vector "
                                         r"reads the cell\), got nan"):
        CompiledTable(layout, first, table.rest, table.head, table.stem_ms, table.overhead_ms)
    native = native_table(layout, first, table.rest, table.head, table.constant_ms)
    np.testing.assert_array_equal(native.predict_batch(tokens[:2]), table.predict_batch(tokens[:2]))
    state = layout.states[trace[2].state]
    with pytest.raises(UnpricedCellError, match=re.escape(f"tokens row 2: block b3 (state {trace[2].state} "
                                                          f"'{state}', chunk {trace[2].chunk}): its first repeat "
                                                          f"has no latency")):
        native.predict_batch(tokens)
    assert issubclass(UnpricedCellError, ValueError)

    # A NaN in `rest` is only read with 2+ repeats (b2: 1, 2 or 3 layers).
    rows = space.sample_tokens(2, seed=7)
    rows[:, 1 * WIDTH + 5] = [0, 1]  # b2 with 1 layer, then the same choice with 2
    rows[1, WIDTH:2 * WIDTH - 1] = rows[0, WIDTH:2 * WIDTH - 1]
    rest = [r.copy() for r in table.rest]
    rest[1][layout.trace(rows[0])[0][1].chunk] = np.nan
    native = native_table(layout, table.first, rest, table.head, table.constant_ms)
    assert native.predict_batch(rows[:1])[0] == table.predict_batch(rows[:1])[0]
    with pytest.raises(UnpricedCellError, match=r"tokens row 1: block b2 .*: its later repeats have no latency"):
        native.predict_batch(rows)
    first = [f.copy() for f in table.first]
    first[0][:] = np.nan  # b1: empty rows never read it
    rest = [r.copy() for r in table.rest]
    rest[0][:] = np.nan
    native = native_table(layout, first, rest, table.head, table.constant_ms)
    empty_b1 = space.sample_tokens(50, seed=6)
    empty_b1[:, 5] = 0
    np.testing.assert_array_equal(native.predict_batch(empty_b1), table.predict_batch(empty_b1))
    head = table.head.copy()
    head[layout.trace(empty_b1[0])[1]] = np.nan
    with pytest.raises(UnpricedCellError, match=r"tokens row 0: head \(state \d+ 'b\d:c\d+'\) has no latency"):
        native_table(layout, table.first, table.rest, head, table.constant_ms).predict_batch(empty_b1)


def test_unpriceable_keys_raise_naming_the_key(space, compiled):
    table, _ = compiled
    stem = next(k for k in table.prices if k.startswith("stem_"))  # the first cell priced

    def missing(key):
        raise KeyError(key)

    with pytest.raises(PricingError, match=re.escape(f"price: no latency for segment key {stem!r}")) as error:
        compile_table(space, missing)
    assert error.value.key == stem and isinstance(error.value.__cause__, KeyError)
    with pytest.raises(PricingError, match=re.escape(f"price: no latency for segment key {stem!r}")):
        compile_table(space, {})  # a mapping works as a price function
    for value in (float("nan"), float("inf"), -0.5, 1e308, "1.0", None, True):
        with pytest.raises(PricingError, match=re.escape(f"price({stem!r}): expected a latency in ms in [0, 1e+06], "
                                                         f"got {value!r}")):
            compile_table(space, lambda key, value=value: value)
    with pytest.raises(PricingError, match=r"key_latency: no latency for segment key '\w+' \(s\d\.0 of net_res224"):
        python_predict(space, {stem: 1.0}, space.sample(1, seed=0))


def test_compile_refuses_an_inconsistent_spec(space):
    class Dropped(MnasNetSpace):
        def table_layout(self):
            spec = super().table_layout()
            return TableSpec(spec.layout, [c for c in spec.cells if not (c.table == "head" and c.state == 16)])

    with pytest.raises(TableSpecError, match=r"1 reachable cells have no source, e.g. head\[state 16 \(b6:c120\)\]"):
        compile_table(Dropped(), hash_ms)

    class Mislabelled(MnasNetSpace):
        def table_layout(self):
            spec = super().table_layout()
            cells = list(spec.cells)  # two first cells of b1 swap chunks: still complete, but wrong
            i = next(i for i, c in enumerate(cells) if c.table == "first")
            j = next(j for j, c in enumerate(cells) if c.table == "first" and c.chunk != cells[i].chunk)
            cells[i], cells[j] = replace(cells[i], chunk=cells[j].chunk), replace(cells[j], chunk=cells[i].chunk)
            return TableSpec(spec.layout, cells)

    with pytest.raises(TableSpecError, match=r"first\[b1\]\[state 0 \(stem:c32\)\]\[chunk \d+\]: source .* does not "
                                             r"read it"):
        compile_table(Mislabelled(), hash_ms)


def test_save_load_round_trip_without_pickle(space, compiled, tmp_path):
    table, _ = compiled
    path = tmp_path / "mnasnet224.table"  # no .npz suffix: written exactly there
    table.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["mnasnet224.table"]
    with zipfile.ZipFile(path) as z:  # every member a plain .npy of numbers, none needing pickle
        for name in z.namelist():
            with z.open(name) as f:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}[version]
                _, _, dtype = read_header(f)
                assert not dtype.hasobject and dtype.kind in "fu", (name, dtype)
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(["meta_json", "head", *(f"{t}_{b}" for b in range(7)
                                                                    for t in ("first", "rest"))])
    loaded = CompiledTable.load(path, space)
    assert loaded.layout == table.layout and loaded.prices == table.prices
    assert (loaded.stem_ms, loaded.overhead_ms) == (table.stem_ms, table.overhead_ms)
    tokens = space.sample_tokens(20_000, seed=3)
    np.testing.assert_array_equal(loaded.predict_batch(tokens), table.predict_batch(tokens))
    assert loaded.predict(space.decode(tokens[0])) == table.predict(tokens[0])
    without_space = CompiledTable.load(path)
    np.testing.assert_array_equal(without_space.predict_batch(tokens[:10]), table.predict_batch(tokens[:10]))
    with pytest.raises(ValueError, match=r"space: this table has no space to encode Arch objects with"):
        without_space.predict(space.decode(tokens[0]))
    with pytest.raises(ValueError, match=r"layout: expected a table for the given space \(mnasnet_res192_cls1000\), "
                                         r"got one for mnasnet_res224_cls1000"):
        CompiledTable.load(path, MnasNetSpace(resolution=192))

    # A file whose tables disagree with its layout is refused, naming the cell.
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["rest_3"] = arrays["rest_3"].copy()
    arrays["rest_3"][7] = np.nan
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=r"rest\[b4\]\[7\]: expected a latency in ms in \[0, 1e\+06\]"):
        CompiledTable.load(bad)
    np.savez(bad, head=arrays["head"])
    with pytest.raises(ValueError, match=r"expected a pynas latency table \(.npz with meta_json\)"):
        CompiledTable.load(bad)


def toy_layout() -> TableLayout:
    """A layout of another shape: three layers of 4 choices where choice 3 is a skip (0 repeats,
    as repeats token = chunk token), layer 1's choice 2 changing the width (state 1); a fixed
    2-repeat block of two tokens; a decision no slot reads."""
    skip = (1, 1, 1, 0)
    return TableLayout(
        space="toy", decision_names=("l0", "l1", "l2", "c.a", "c.b", "free"), cardinalities=(4, 4, 4, 2, 3, 5),
        states=("narrow", "wide"), initial_state=0,
        blocks=(BlockSlot("l0", 0, (0,), 0, skip, None, (0,)),
                BlockSlot("l1", 1, (1,), 1, skip, 1, (0, 0, 1, 0)),
                BlockSlot("l2", 2, (2,), 2, skip, None, (0,)),
                BlockSlot("c", 3, (3, 4), None, (2,), None, (1,))))


def test_a_generic_layout_follows_its_trace():
    layout = toy_layout()
    reach = layout.reachable()
    assert [sorted(s) for s in reach.states_in] == [[0], [0], [0, 1], [0, 1]] and reach.head == {1}
    assert reach.first[0] == {(0, 0), (0, 1), (0, 2)} and reach.rest[3] == set(range(6)) and not reach.rest[0]
    rng = np.random.default_rng(0)
    first, rest = [], []
    for b in range(len(layout.blocks)):
        f = np.full((2, layout.chunk_count(b)), np.nan)
        r = np.full(layout.chunk_count(b), np.nan)
        for cell in reach.first[b]:
            f[cell] = rng.uniform(0.1, 2)
        for chunk in reach.rest[b]:
            r[chunk] = rng.uniform(0.1, 2)
        first.append(f)
        rest.append(r)
    head = np.array([np.nan, 0.7])
    table = CompiledTable(layout, first, rest, head, stem_ms=0.5, overhead_ms=0.25)
    tokens = np.array(list(itertools.product(*map(range, layout.cardinalities))))  # all 1920
    expected = []
    for row in tokens:
        trace, state = layout.trace(row)
        total = 0.75 + head[state]
        for b, t in enumerate(trace):
            if t.repeats:
                total += first[b][t.state, t.chunk] + (t.repeats - 1) * (rest[b][t.chunk] if t.repeats > 1 else 0)
        expected.append(total)
    np.testing.assert_allclose(table.predict_batch(tokens), expected, rtol=1e-6)
    with pytest.raises(ValueError, match=r"tokens row 0, decision 5 \(free\): expected a value in 0..4, got 5"):
        table.predict_batch([[0, 0, 0, 0, 0, 5]])  # tokens no slot reads are checked too
    with pytest.raises(ValueError, match=r"head\[0\]: expected NaN \(no token vector reads the cell\), got 1.0"):
        CompiledTable(layout, first, rest, np.array([1.0, 0.7]), stem_ms=0.5, overhead_ms=0.25)


def test_layout_validation_names_the_field():
    good = toy_layout()

    def with_blocks(*blocks):
        return TableLayout(good.space, good.decision_names, good.cardinalities, good.states, 0, blocks)

    with pytest.raises(ValueError, match=r"layout.blocks\[1\] \(l1\): expected token 0 \(l0\) in one slot only, it "
                                         r"is also read by l0"):
        with_blocks(good.blocks[0], BlockSlot("l1", 1, (1,), 0, (1, 1, 1, 0), None, (0,)))
    with pytest.raises(ValueError, match=r"layout.blocks\[0\] \(l0\).repeats: expected 4 values \(one per value of "
                                         r"token 0\)"):
        with_blocks(BlockSlot("l0", 0, (0,), 0, (1, 1), None, (0,)))
    with pytest.raises(ValueError, match=r"layout.blocks\[0\] \(l0\).next_state: expected state indices in 0..1"):
        with_blocks(BlockSlot("l0", 0, (0,), None, (1,), None, (2,)))
    with pytest.raises(ValueError, match=r"layout.blocks\[0\] \(l0\).chunk_tokens: expected token indices in 0..5"):
        with_blocks(BlockSlot("l0", 0, (6,), None, (1,), None, (0,)))
    with pytest.raises(ValueError, match=r"layout.blocks\[0\] \(big\): expected at most 2\^26 combinations"):
        TableLayout("huge", ("a", "b"), (2 ** 13, 2 ** 14), ("s",), 0, (BlockSlot("big", 0, (0, 1), None, (1,), None,
                                                                                   (0,)),))
    with pytest.raises(ValueError, match=r"layout.blocks\[0\]: expected an object with key 'stage'"):
        data = good.to_json()
        del data["blocks"][0]["stage"]
        TableLayout.from_json(data)
    with pytest.raises(ValueError, match=r"blocks\[l0\].first: expected 2 x 4 values \(states x chunks\), got 4"):
        native_table(good, [np.zeros((1, 4))] + [np.zeros((2, good.chunk_count(b))) for b in (1, 2, 3)],
                     [np.zeros(good.chunk_count(b)) for b in range(4)], np.zeros(2), 0.0)
    with pytest.raises(ValueError, match=r"blocks\[l0\].rest\[1\]: expected a latency in ms >= 0 or NaN"):
        native_table(good, [np.zeros((2, good.chunk_count(b))) for b in range(4)],
                     [np.array([0, -1.0, 0, 0])] + [np.zeros(good.chunk_count(b)) for b in (1, 2, 3)],
                     np.zeros(2), 0.0)
    assert _core.LatencyTable is type(native_table(good, [np.zeros((2, good.chunk_count(b))) for b in range(4)],
                                                   [np.zeros(good.chunk_count(b)) for b in range(4)], np.zeros(2), 0.0))


def test_a_damaged_table_file_is_a_value_error_naming_it(space, compiled, tmp_path, monkeypatch):
    """Whatever is wrong inside a table file, CompiledTable.load raises TableFileError (a
    ValueError) naming the file and what was expected: never numpy's pickle advice, a
    zipfile.BadZipFile or a traceback."""
    from pynas.predictor import table as table_module
    from pynas.predictor.table import TableFileError

    table, _ = compiled
    good = tmp_path / "good.npz"
    table.save(good)
    arrays = dict(np.load(good, allow_pickle=False))
    meta = json.loads(arrays["meta_json"].tobytes())

    def write(name, content=None, **changed):
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        else:
            np.savez(path, **dict(arrays, **changed))
        return path

    def meta_bytes(text: str):
        return np.frombuffer(text.encode(), dtype=np.uint8)

    cases = [
        (write("text.npz", b"arch,ms\nmnasnet-a1,3.1\n"),
         r"expected a pynas latency table \(an .npz: a zip archive of arrays\), got a file starting b'arch'"),
        (write("empty.npz", b""), r"expected a pynas latency table .*got a file starting b''"),
        (write("truncated.npz", good.read_bytes()[:3000]), r"damaged latency table \(BadZipFile: "),
        (write("meta-text.npz", meta_json=meta_bytes("{not json")),
         r"meta_json: expected a JSON object, got unreadable JSON"),
        (write("meta-deep.npz", meta_json=meta_bytes("[" * 100_000 + "]" * 100_000)),
         "meta_json: expected a JSON object, got JSON nested too deeply"),
        (write("meta-list.npz", meta_json=meta_bytes("[1, 2]")), "meta_json: expected a JSON object, got list"),
        (write("meta-float.npz", meta_json=np.zeros(3)), r"meta_json: expected UTF-8 JSON bytes \(a uint8 vector\)"),
        (write("format.npz", meta_json=meta_bytes(json.dumps(dict(meta, version=9)))),
         "format: expected pynas.latency_table version 1, got pynas.latency_table version 9"),
        (write("layout.npz", meta_json=meta_bytes(json.dumps(dict(meta, layout=[1])))),
         r"layout: expected an object with key 'blocks'"),
        (write("stem.npz", meta_json=meta_bytes(json.dumps(dict(meta, stem_ms=None)))),
         r"stem_ms: expected a latency in ms in \[0, 1e\+06\], got None"),
        (write("overhead.npz", meta_json=meta_bytes(json.dumps(dict(meta, overhead_ms="1")))),
         r"overhead_ms: expected a number of ms"),
        (write("prices.npz", meta_json=meta_bytes(json.dumps(dict(meta, prices=[1])))),
         "prices: expected null or an object of segment key -> ms"),
        (write("ints.npz", head=np.zeros(arrays["head"].shape, np.int64)), "head: expected float latencies"),
        (write("shape.npz", head=np.zeros(3, np.float32)), r"head: expected shape \(22,\), got \(3,\)"),
    ]
    objects = tmp_path / "objects.npz"
    np.savez(objects, **dict(arrays, head=np.array([{"a": 1}], dtype=object)), allow_pickle=True)
    cases.append((objects, r"damaged latency table \(ValueError: Object arrays cannot be loaded"))
    for path, message in cases:
        with pytest.raises(TableFileError, match=rf"^{path}: {message}"):
            CompiledTable.load(path, space)
    with pytest.raises(TableFileError, match=rf"^{tmp_path / 'nowhere.npz'}: cannot read \(No such file"):
        CompiledTable.load(tmp_path / "nowhere.npz")
    monkeypatch.setattr(table_module, "MAX_TABLE_BYTES", 1000)  # or a zip bomb: sizes checked before reading
    with pytest.raises(TableFileError, match=rf"^{good}: expected a latency table of at most 1,000 bytes of arrays"):
        CompiledTable.load(good)
