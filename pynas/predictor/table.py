"""The compiled latency lookup table: a search's fast path.

A network's predicted latency is the sum of its segments' latencies (`pynas.ir.segments`) plus a
per-network overhead. `compile_table(space, price)` prices every segment the space can contain once
(`price(segment key) -> ms`), lays the latencies out in the dense per-block tables of the space's
`TableLayout` (`pynas.space.layout`) and hands them to the C++ `LatencyTable`
(`cpp/predictor/table.h`), which sums a token vector's cells with no Python per architecture:

    table = compile_table(space, price, overhead_ms=0.3)
    ms = table.predict_batch(space.sample_tokens(1_000_000))   # N float32, ~10^7+ rows/s
    table.save("mnasnet224.npz"); table = CompiledTable.load("mnasnet224.npz", space)

`python_predict(space, key_latency, archs)` is the plain-Python path (lower each architecture, sum
its segments' latencies from a dict, as Once-for-All's latency table does): for comparison and
tests only.
"""
from __future__ import annotations

import itertools
import json
import math
import numbers
import re
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from pynas import _core
from pynas.arch import Arch
from pynas.space.base import SearchSpace
from pynas.space.catalogue import segments_of
from pynas.space.layout import TableCell, TableLayout, TableSpec

FORMAT = "pynas.latency_table"
FORMAT_VERSION = 1
_BLOCK_SEGMENT = re.compile(r"s(\d+)\.(\d+)")  # segment ids of block repeats (pynas.ir.segments)

UnpricedCellError = _core.UnpricedCellError  # a ValueError: a row read a NaN (unpriced) cell


class PricingError(ValueError):
    """A segment key the price function could not price (or priced with a non-latency)."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


class TableSpecError(ValueError):
    """A space's `table_layout()` disagrees with itself: a reachable cell without a source, a
    source for a cell no token vector reads, or sources of one cell with different keys."""


def _segment_keys(arch: Arch) -> dict[str, str]:
    return {s.id: s.key for s in segments_of(arch)}


MAX_MS = 1e6  # a latency beyond 1000 s is a corrupt number, not a measurement


def _is_latency(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value) and \
        0 <= value <= MAX_MS


def _check_latency(value, key: str) -> float:
    if not _is_latency(value):
        raise PricingError(f"price({key!r}): expected a latency in ms in [0, {MAX_MS:g}], got {value!r}", key)
    return float(value)


def _check_ms(name: str, value) -> float:
    if not _is_latency(value):
        raise ValueError(f"{name}: expected a latency in ms in [0, {MAX_MS:g}], got {value!r}")
    return float(value)


def _check_cells(name: str, array: np.ndarray, shape: tuple, reachable) -> None:
    """Reachable cells finite and >= 0, the others NaN: a NaN where a token vector reads would fail
    at prediction time, a number where none reads means the table is not this layout's."""
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")
    mask = np.zeros(shape, dtype=bool)
    for cell in reachable:
        mask[cell] = True
    bad = np.argwhere(mask & ~(np.isfinite(array) & (array >= 0) & (array <= MAX_MS)))
    if len(bad):
        raise ValueError(f"{name}{list(map(int, bad[0]))}: expected a latency in ms in [0, {MAX_MS:g}] (a token vector reads the "
                         f"cell), got {array[tuple(bad[0])]} ({len(bad)} such cells)")
    bad = np.argwhere(~mask & ~np.isnan(array))
    if len(bad):
        raise ValueError(f"{name}{list(map(int, bad[0]))}: expected NaN (no token vector reads the cell), got "
                         f"{array[tuple(bad[0])]} ({len(bad)} such cells)")


def _check_source(spec: TableSpec, cell: TableCell, tokens: tuple[int, ...]) -> None:
    """The cell's architecture must read that very cell (TableLayout.trace): a space whose cells
    and layout disagree would otherwise price the table with the wrong segments."""
    layout = spec.layout
    trace, head_state = layout.trace(tokens)
    where = cell.where(layout)
    if cell.table == "first" and cell.segment is None:  # a choice that lowers to no op
        slot, t = layout.blocks[cell.block], trace[cell.block]
        if not (t.chunk == cell.chunk and t.state == cell.state and t.repeats >= 1):
            raise TableSpecError(f"{where}: source {cell.arch} does not read it (its tokens give block {slot.name} "
                                 f"state {t.state}, chunk {t.chunk}, {t.repeats} repeats)")
    elif cell.table in ("first", "rest"):
        slot, t = layout.blocks[cell.block], trace[cell.block]
        match = _BLOCK_SEGMENT.fullmatch(cell.segment or "")
        repeat = int(match[2]) if match else -1
        ok = (match is not None and int(match[1]) == slot.stage and t.chunk == cell.chunk and repeat < t.repeats
              and (repeat == 0 and t.state == cell.state if cell.table == "first" else repeat >= 1))
        if not ok:
            raise TableSpecError(f"{where}: source {cell.arch} segment {cell.segment} does not read it (its "
                                 f"tokens give block {slot.name} state {t.state}, chunk {t.chunk}, "
                                 f"{t.repeats} repeats; segments s{slot.stage}.<repeat>)")
    elif cell.table == "head":
        if cell.segment != "head" or head_state != cell.state:
            raise TableSpecError(f"{where}: source {cell.arch} segment {cell.segment} does not read it (its "
                                 f"head sees state {head_state})")
    elif cell.table == "constant":
        if cell.segment == "head" or _BLOCK_SEGMENT.fullmatch(cell.segment):
            raise TableSpecError(f"{where}: expected a segment every network has (not a block or the head)")
    else:
        raise TableSpecError(f"cell table: expected one of first, rest, head, constant, got {cell.table!r}")


def native_table(layout: TableLayout, first: Sequence[np.ndarray], rest: Sequence[np.ndarray], head: np.ndarray,
                 constant_ms: float) -> "_core.LatencyTable":
    """The C++ table of these arrays as they are: no reachability check (CompiledTable does it),
    so tests can give it a NaN where a row reads."""
    blocks = [dict(name=slot.name, chunk_tokens=np.asarray(slot.chunk_tokens, np.int32),
                   repeats_token=-1 if slot.repeats_token is None else slot.repeats_token,
                   repeats=np.asarray(slot.repeats, np.int32),
                   state_token=-1 if slot.state_token is None else slot.state_token,
                   next_state=np.asarray(slot.next_state, np.int32), first=np.asarray(first[b], np.float32),
                   rest=np.asarray(rest[b], np.float32))
              for b, slot in enumerate(layout.blocks)]
    return _core.LatencyTable(np.asarray(layout.cardinalities, np.int32), list(layout.decision_names),
                              list(layout.states), layout.initial_state, blocks, np.asarray(head, np.float32),
                              float(constant_ms))


def cheapest_network(layout: TableLayout, first, rest, head) -> float:
    """The least sum of block and head cells any token row of `layout` reads (NaN cells are
    unreachable), exactly: dynamic programming over the slots, which share no tokens, with the
    cheapest way to reach each state."""
    best = np.full(len(layout.states), np.inf)
    best[layout.initial_state] = 0.0
    for b, slot in enumerate(layout.blocks):
        tokens = slot.tokens()
        position = {t: i for i, t in enumerate(tokens)}
        after = best.copy() if 0 in slot.repeats else np.full_like(best, np.inf)  # an empty block passes on
        for values in itertools.product(*(range(layout.cardinalities[t]) for t in tokens)):
            repeats = slot.repeats[0 if slot.repeats_token is None else values[position[slot.repeats_token]]]
            if repeats == 0:
                continue
            chunk = 0
            for t in slot.chunk_tokens:
                chunk = chunk * layout.cardinalities[t] + values[position[t]]
            nxt = slot.next_state[0 if slot.state_token is None else values[position[slot.state_token]]]
            cost = np.asarray(first[b][:, chunk], np.float64) + (repeats - 1) * (float(rest[b][chunk]) if repeats > 1
                                                                                 else 0.0)
            reach = np.where(np.isfinite(best) & np.isfinite(cost), best + cost, np.inf)
            after[nxt] = min(after[nxt], float(reach.min()))
        best = after
    ends = np.where(np.isfinite(best) & np.isfinite(head), best + np.asarray(head, np.float64), np.inf)
    return float(ends.min())


class CompiledTable:
    """Dense latency tables of a space (`layout`) and their C++ evaluator.

    first[b]: states x chunks ms of slot b's first repeat; rest[b]: chunks ms of each later one;
    head: per state; stem_ms: segments every network has; overhead_ms: per network (a fitted
    intercept, may be negative; the minimum over the space must stay > 0). Unreachable
    cells are NaN and reachable ones finite (checked here), so a prediction never reads a NaN.
    `space` (optional, must match the layout) encodes Arch inputs; `prices` (optional) is the
    segment key -> ms the table was compiled from, kept for inspection and saved with it."""

    def __init__(self, layout: TableLayout, first: Sequence[np.ndarray], rest: Sequence[np.ndarray],
                 head: np.ndarray, stem_ms: float, overhead_ms: float, space: SearchSpace | None = None,
                 prices: Mapping[str, float] | None = None, *, latency_model: bool = True):
        if not isinstance(layout, TableLayout):
            raise ValueError(f"layout: expected a TableLayout, got {type(layout).__name__}")
        self.layout = layout
        self.first = tuple(np.ascontiguousarray(a, dtype=np.float32) for a in first)
        self.rest = tuple(np.ascontiguousarray(a, dtype=np.float32) for a in rest)
        self.head = np.ascontiguousarray(head, dtype=np.float32)
        self.stem_ms = _check_ms("stem_ms", stem_ms)
        # A fitted intercept (network = scale x sum + overhead): either sign (see
        # pynas.predictor.network_term), bounded; min_ms() below keeps every network > 0.
        if isinstance(overhead_ms, bool) or not isinstance(overhead_ms, numbers.Real) or \
                not math.isfinite(overhead_ms) or abs(overhead_ms) > MAX_MS:
            raise ValueError(f"overhead_ms: expected a number of ms in [-{MAX_MS:g}, {MAX_MS:g}], got {overhead_ms!r}")
        self.overhead_ms = float(overhead_ms)
        self.prices = dict(prices) if prices is not None else None
        if space is not None and space.table_layout().layout != layout:
            raise ValueError(f"space: expected the space of layout {layout.space!r}, got "
                             f"{space.table_layout().layout.space!r}")
        self.space = space
        blocks = len(layout.blocks)
        if len(self.first) != blocks or len(self.rest) != blocks:
            raise ValueError(f"first, rest: expected {blocks} tables each (one per block slot), got "
                             f"{len(self.first)} and {len(self.rest)}")
        n_states = len(layout.states)
        reach = layout.reachable()
        for b, slot in enumerate(layout.blocks):
            chunks = layout.chunk_count(b)
            _check_cells(f"first[{slot.name}]", self.first[b], (n_states, chunks), reach.first[b])
            _check_cells(f"rest[{slot.name}]", self.rest[b], (chunks,), [(c,) for c in reach.rest[b]])
        _check_cells("head", self.head, (n_states,), [(s,) for s in reach.head])
        # Cells may be 0 (an identity skip runs nothing; a simulator leaves a layer out), so check
        # the exact minimum over every token row: a latency model never returns <= 0 ms. A table
        # that is data, not a model (a simulator's, as a few-shot base), says latency_model=False.
        lowest = self.min_ms()
        if latency_model and not lowest > 0:
            raise ValueError(f"table: expected every network of the space > 0 ms, got a minimum of {lowest!r} ms")
        self._native = native_table(layout, self.first, self.rest, self.head, self.constant_ms)

    def min_ms(self) -> float:
        """The lowest latency any token row can get, exactly (`cheapest_network`, once per table)."""
        if getattr(self, "_cheapest", None) is None:
            self._cheapest = cheapest_network(self.layout, self.first, self.rest, self.head)
        return self._cheapest + self.constant_ms

    @property
    def constant_ms(self) -> float:
        return self.stem_ms + self.overhead_ms

    def tokens(self, archs_or_tokens) -> np.ndarray:
        """An N x D int32/int64 array of `archs_or_tokens` (Arch objects are encoded with the space)."""
        if isinstance(archs_or_tokens, np.ndarray):
            array = archs_or_tokens
        else:
            items = list(archs_or_tokens)
            if not items:
                return np.zeros((0, len(self.layout.cardinalities)), dtype=np.int32)
            if any(isinstance(item, Arch) for item in items):
                if not all(isinstance(item, Arch) for item in items):
                    raise ValueError("archs: expected a list of Arch objects or of token rows, got a mix")
                if self.space is None:
                    raise ValueError("space: this table has no space to encode Arch objects with; pass space= "
                                     "to CompiledTable.load or predict token arrays")
                return np.asarray([self.space.encode(a) for a in items], dtype=np.int32)
            array = np.asarray(items)
        if array.dtype.kind not in "iu":
            raise ValueError(f"tokens: expected an integer array (one row of decision indices per "
                             f"architecture), got dtype {array.dtype}")
        if array.dtype not in (np.int32, np.int64) or not array.dtype.isnative:
            # Other integer types are converted exactly; only uint64 beyond int64 could not be.
            if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
                raise ValueError(f"tokens: expected decision indices, got {array.max()}")
            array = array.astype(np.int64)
        return array

    def predict_batch(self, archs_or_tokens) -> np.ndarray:
        """Predicted ms (float32, one per row) of an N x D integer token array or a list of Arch."""
        return self._native.predict_batch(self.tokens(archs_or_tokens))

    def predict(self, arch_or_tokens) -> float:
        """Predicted ms of one Arch or one token row."""
        row = [arch_or_tokens] if isinstance(arch_or_tokens, Arch) else np.asarray(arch_or_tokens)[None, :]
        return float(self.predict_batch(row)[0])

    def explain(self, arch_or_tokens) -> list[dict]:
        """The cells one Arch or token row reads, in network order: {"part", "cell", "ms"} for the
        constant segments, each block slot (first repeat, later repeats) and the head, then the
        per-network overhead. Their sum is `predict`'s (up to float32 rounding)."""
        row = self.tokens([arch_or_tokens] if isinstance(arch_or_tokens, Arch) else
                          np.asarray(arch_or_tokens)[None, :])[0]
        trace, head_state = self.layout.trace(row)
        rows = [{"part": "stem", "cell": "constant", "ms": self.stem_ms}]
        for b, (slot, t) in enumerate(zip(self.layout.blocks, trace)):
            if t.repeats == 0:
                continue
            rows.append({"part": slot.name, "cell": f"first[state {t.state}][chunk {t.chunk}]",
                         "ms": float(self.first[b][t.state, t.chunk])})
            if t.repeats > 1:
                rows.append({"part": f"{slot.name} x{t.repeats - 1}", "cell": f"rest[chunk {t.chunk}]",
                             "ms": float(self.rest[b][t.chunk]) * (t.repeats - 1)})
        rows.append({"part": "head", "cell": f"head[state {head_state}]", "ms": float(self.head[head_state])})
        rows.append({"part": "overhead", "cell": "constant", "ms": self.overhead_ms})
        return rows

    def save(self, path: str | Path) -> None:
        """A portable .npz (no pickle): the tables as float32 arrays, the layout, scalars and prices
        as JSON (UTF-8 bytes in a uint8 array)."""
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "layout": self.layout.to_json(),
                "stem_ms": self.stem_ms, "overhead_ms": self.overhead_ms, "prices": self.prices}
        arrays = {"meta_json": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), "head": self.head}
        for b in range(len(self.layout.blocks)):
            arrays[f"first_{b}"] = self.first[b]
            arrays[f"rest_{b}"] = self.rest[b]
        with open(path, "wb") as f:  # a file object: numpy would append .npz to a path without it
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | None = None) -> "CompiledTable":
        """Read a table `save` wrote. With `space`, it must be the space the table was compiled for
        (same layout, identity included: e.g. resolution), and Arch objects can be predicted.
        Whatever is wrong with the file (not a zip, a damaged member, a wrong array, bad
        metadata, a table no latency model may have) is a TableFileError naming it."""
        path = Path(path)
        try:
            arrays = _read_npz(path)
            return cls._from_arrays(arrays, space)
        except TableFileError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as error:
            raise TableFileError(f"{path}: {error}") from None

    @classmethod
    def _from_arrays(cls, arrays: dict, space: SearchSpace | None) -> "CompiledTable":
        if "meta_json" not in arrays:
            raise ValueError(f"expected a pynas latency table (.npz with meta_json), got arrays {sorted(arrays)}")
        raw = arrays["meta_json"]
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"meta_json: expected UTF-8 JSON bytes (a uint8 vector), got {raw.dtype} {raw.shape}")
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except RecursionError:
            raise ValueError("meta_json: expected a JSON object, got JSON nested too deeply") from None
        except ValueError as error:
            raise ValueError(f"meta_json: expected a JSON object, got unreadable JSON ({error})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"meta_json: expected a JSON object, got {type(meta).__name__}")
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"format: expected {FORMAT} version {FORMAT_VERSION}, got "
                             f"{str(meta.get('format'))[:40]} version {str(meta.get('version'))[:20]}")
        layout = TableLayout.from_json(meta.get("layout"))
        if space is not None and space.table_layout().layout != layout:
            raise ValueError(f"layout: expected a table for the given space "
                             f"({space.table_layout().layout.space}), got one for {layout.space}")
        blocks = range(len(layout.blocks))
        missing = [n for n in ["head", *(f"{t}_{b}" for b in blocks for t in ("first", "rest"))] if n not in arrays]
        if missing:
            raise ValueError(f"expected arrays {missing}, missing")
        for name, array in arrays.items():
            if name != "meta_json" and array.dtype.kind != "f":
                raise ValueError(f"{name}: expected float latencies, got dtype {array.dtype}")
        prices = meta.get("prices")
        if prices is not None and not (isinstance(prices, dict) and all(_is_latency(v) for v in prices.values())):
            raise ValueError("prices: expected null or an object of segment key -> ms")
        return cls(layout, tuple(arrays[f"first_{b}"] for b in blocks), tuple(arrays[f"rest_{b}"] for b in blocks),
                   arrays["head"], meta.get("stem_ms"), meta.get("overhead_ms"), space, prices)


class TableFileError(ValueError):
    """A table file pynas cannot use; the message names the file and what was expected."""


MAX_TABLE_BYTES = 1 << 28  # a space's table is a few hundred KB; more is no table (or a zip bomb)
_ZIP_MAGIC = b"PK\x03\x04"


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz, every way it can be wrong a TableFileError naming the file: not a zip
    (numpy would talk of pickles), a damaged member (a bad CRC), too large, object arrays."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_ZIP_MAGIC))
    except OSError as error:
        raise TableFileError(f"{path}: cannot read ({error.strerror or error})") from None
    if magic != _ZIP_MAGIC:
        raise TableFileError(f"{path}: expected a pynas latency table (an .npz: a zip archive of arrays), got a file "
                             f"starting {magic!r}")
    try:
        with zipfile.ZipFile(path) as archive:
            size = sum(info.file_size for info in archive.infolist())
        if size > MAX_TABLE_BYTES:
            raise TableFileError(f"{path}: expected a latency table of at most {MAX_TABLE_BYTES:,} bytes of arrays, "
                                 f"got {size:,}")
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except TableFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError, NotImplementedError) as error:
        raise TableFileError(f"{path}: damaged latency table ({type(error).__name__}: {error}): expected the .npz "
                             f"pynas saved") from None


def compile_table(space: SearchSpace, price: Callable[[str], float] | Mapping[str, float],
                  overhead_ms: float = 0.0, empty: Callable[[TableCell], float] | None = None, *,
                  latency_model: bool = True) -> CompiledTable:
    """Price every segment of `space` once and compile its latency table.

    price: segment key -> ms (a callable, or a mapping such as a measured key -> ms dict). It is
    called once per distinct key; a key it cannot price (it raises, or returns something other
    than a finite ms >= 0) raises PricingError naming the key and a cell needing it.

    empty: ms of a cell whose choice lowers to no op at all (its TableCell has segment None, e.g.
    FBNet's skip where it is the identity). By default 0: in pynas's lowering nothing runs there,
    so a predictor of pynas's own segments is exact with 0. Tables measured by others may time
    such a choice (HW-NAS-Bench times its identity Skip blocks); they pass their price here."""
    if isinstance(price, Mapping):
        price = price.__getitem__
    spec = space.table_layout()
    layout = spec.layout
    _check_complete(space, layout, spec.cells)  # before the slow part: lowering every source
    n_states = len(layout.states)
    first = [np.full((n_states, layout.chunk_count(b)), np.nan) for b in range(len(layout.blocks))]
    rest = [np.full(layout.chunk_count(b), np.nan) for b in range(len(layout.blocks))]
    head = np.full(n_states, np.nan)
    constant: dict[str, float] = {}  # segment key -> ms, each once
    prices: dict[str, float] = {}
    cell_key: dict[tuple, tuple[str, TableCell]] = {}
    keys_of: dict[Arch, dict[str, str]] = {}

    for cell in spec.cells:
        if cell.arch not in keys_of:
            keys_of.clear()  # consecutive cells share architectures; keep one lowering at a time
            keys_of[cell.arch] = _segment_keys(cell.arch)
            tokens = space.encode(cell.arch)
        _check_source(spec, cell, tokens)
        keys = keys_of[cell.arch]
        if cell.segment is None:
            stage = layout.blocks[cell.block].stage
            if any(_BLOCK_SEGMENT.fullmatch(sid) and int(sid[1:].split(".")[0]) == stage for sid in keys):
                raise TableSpecError(f"{cell.where(layout)}: source {cell.arch} says its choice lowers to no op, "
                                     f"but stage {stage} has segments")
            index = _cell_index(cell)
            if index not in cell_key:
                cell_key[index] = ("", cell)
                value = 0.0 if empty is None else empty(cell)
                first[cell.block][cell.state, cell.chunk] = _check_latency(value, f"empty {cell.where(layout)}")
            continue
        if cell.segment not in keys:
            raise TableSpecError(f"{cell.where(layout)}: expected segment {cell.segment} in {cell.arch}, it has "
                                 f"{', '.join(keys)}")
        key = keys[cell.segment]
        index = _cell_index(cell)
        if index in cell_key:
            if cell_key[index][0] != key:
                raise TableSpecError(f"{cell.where(layout)}: sources disagree: {cell_key[index][1].arch} segment "
                                     f"{cell_key[index][1].segment} has key {cell_key[index][0]}, {cell.arch} "
                                     f"segment {cell.segment} has key {key}")
            continue
        cell_key[index] = (key, cell)
        if key not in prices:
            try:
                value = price(key)
            except Exception as error:
                raise PricingError(f"price: no latency for segment key {key!r} (needed by "
                                   f"{cell.where(layout)}, segment {cell.segment} of {cell.arch}): "
                                   f"{type(error).__name__}: {error}", key) from error
            prices[key] = _check_latency(value, key)
        ms = prices[key]
        if cell.table == "first":
            first[cell.block][cell.state, cell.chunk] = ms
        elif cell.table == "rest":
            rest[cell.block][cell.chunk] = ms
        elif cell.table == "head":
            head[cell.state] = ms
        else:
            constant[key] = ms

    return CompiledTable(layout, first, rest, head, sum(constant.values()), overhead_ms, space, prices,
                         latency_model=latency_model)


def _cell_index(cell: TableCell) -> tuple:
    return (cell.table, cell.block, cell.state, cell.chunk) if cell.table != "constant" else ("constant", cell.segment)


def _check_complete(space: SearchSpace, layout: TableLayout, cells: Sequence[TableCell]) -> None:
    """The spec's cells are exactly the reachable ones (`TableLayout.reachable`), plus at least one
    constant: so the table is built from a complete pricing and holds nothing unreachable."""
    reach = layout.reachable()
    expected = {("head", None, s, None) for s in reach.head}
    for b in range(len(layout.blocks)):
        expected |= {("first", b, s, c) for s, c in reach.first[b]} | {("rest", b, None, c) for c in reach.rest[b]}
    got = {_cell_index(c): c for c in cells}
    missing = expected - got.keys()
    if missing:
        table, block, state, chunk = min(missing, key=str)
        example = TableCell(table, None, "", block, state, chunk).where(layout)
        raise TableSpecError(f"space {space.name}: table_layout(): {len(missing)} reachable cells have no source, "
                             f"e.g. {example}")
    extra = [c for index, c in got.items() if index not in expected and c.table != "constant"]
    if extra:
        cell = extra[0]
        raise TableSpecError(f"space {space.name}: table_layout(): {len(extra)} cells with a source cannot be "
                             f"reached, e.g. table {cell.table} block {cell.block} state {cell.state} chunk "
                             f"{cell.chunk} ({cell.segment} of {cell.arch})")
    if not any(c.table == "constant" for c in cells):
        raise TableSpecError(f"space {space.name}: table_layout(): expected a constant cell (the stem), got none")


def python_predict(space: SearchSpace, key_latency: Mapping[str, float], archs: Sequence[Arch] | np.ndarray,
                   overhead_ms: float = 0.0) -> np.ndarray:
    """The plain-Python path: lower each architecture (Arch or token row), sum its segments'
    latencies from `key_latency` (segment key -> ms), add the overhead. float64, one per arch."""
    out = np.empty(len(archs), dtype=np.float64)
    for i, arch in enumerate(archs):
        if not isinstance(arch, Arch):
            arch = space.decode(arch)
        total = overhead_ms
        for seg in segments_of(arch):
            if seg.key not in key_latency:
                raise PricingError(f"key_latency: no latency for segment key {seg.key!r} ({seg.id} of {arch})", seg.key)
            total += key_latency[seg.key]
        out[i] = total
    return out
