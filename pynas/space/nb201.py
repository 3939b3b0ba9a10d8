"""NAS-Bench-201 (Dong & Yang, ICLR 2020) as a search space with its ground truth.

A cell is a DAG over 4 nodes; each of its 6 edges i -> j (i < j) carries one of 5 ops, and node j
sums its incoming edges. The network is the benchmark's CIFAR skeleton (32x32 input: a 3x3 conv
stem to 16 channels, three stages of 5 cells at 16, 32, 64 channels with a ResNet block of stride 2
between them, global pool, classifier); only the cell is searched. Decisions, one per edge in the
order of the benchmark's string, each over the ops in this fixed order (its token is the index):

    edge0to1, edge0to2, edge1to2, edge0to3, edge1to3, edge2to3
    none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3

`Cell` is an architecture; its string is the benchmark's own,
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (group j: the edges into node j, ``~i`` the source node),
and `Cell.parse` reads exactly that. 5^6 = 15,625 cells, in bijection with the token vectors
(`decode`, `encode`) and with the benchmark's indices (`index_of`, `tokens_of`). The benchmark's
index order is its own (no formula of the tokens), so the data file ships it as the tokens of each
index.

`benchmark()` reads the benchmark's numbers shipped in the package (`data/nb201.npz`, its sha256,
columns, source and licence in `data/manifest.json`, written by scripts/make-nb201-data.py):
accuracy by dataset and training length, HW-NAS-Bench latency by device, parameters.

A cell's network is a cell network (`pynas.cell`, skeleton ``nb201``): `Cell.network()` /
`space.network(cell)`, whose string (``cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_...``) is
the network's while `str(cell)` stays the benchmark's; `space.parse` and `encode` take either.
pynas lowers it (`pynas.ir.lower`), builds it (`pynas.torch_builder.build_torch`; its parameters
are the benchmark's) and `segment_archs` lists its segments. `lowerable` stays False: `decode`
gives cells, not `pynas.arch.Arch` networks, and the tools made for those (segment XGBoost
bundles, compiled tables) take block networks only; latencies come from lookup bundles
(`nb201-pixel3`, ...: `pynas.predictor.lookup`). `profiled_whole` is True: `pynas profile --space
nb201` times sampled networks whole, and `pynas calibrate --space nb201` fits a model of whole
networks on them (`pynas.predictor.cellnet`) and writes every cell's prediction as a lookup bundle,
which a search's verification measures here when it describes this machine.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pynas.cell import CellNet, CellSpec, Edge, Node
from pynas.space.base import Decision, SearchSpace

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (source, target), in the string's order
EDGE_NAMES = tuple(f"edge{i}to{j}" for i, j in EDGES)
NODES = 4
# The benchmark's ops in the cell form (pynas.cell); none is no edge there.
CELL_OPS = {"skip_connect": "skip", "nor_conv_1x1": "conv1", "nor_conv_3x3": "conv3", "avg_pool_3x3": "avg3"}
RESOLUTION = 32  # the CIFAR skeleton HW-NAS-Bench timed; the benchmark has no other input size
SIZE = len(OPS) ** len(EDGES)
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
# A token row's position in lexicographic order (first edge most significant): `index_of` maps it
# to the benchmark's index through the shipped permutation.
_RADIX = (len(OPS) ** np.arange(len(EDGES) - 1, -1, -1)).astype(np.int64)

DATA_DIR = Path(__file__).resolve().parent / "data"
DATA_FILE = "nb201.npz"
DATA_MANIFEST = "manifest.json"
DATA_FORMAT, DATA_VERSION = "pynas.space.data", 1
DATASETS = ("cifar10", "cifar100", "imagenet16")
FIDELITIES = (12, 200)  # epochs: 12 the cheap proxy a search sees, 200 the final result it is judged by
DEVICES = ("pixel3", "raspi4", "eyeriss", "fpga")


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass(frozen=True)
class Cell:
    """A NAS-Bench-201 cell: the op of each edge, in `EDGE_NAMES` order."""

    ops: tuple[str, ...]

    def __post_init__(self):
        if not isinstance(self.ops, (tuple, list)) or len(self.ops) != len(EDGES):
            raise ValueError(f"ops: expected {len(EDGES)} op names (one per edge: {', '.join(EDGE_NAMES)}), "
                             f"got {_short(self.ops)}")
        object.__setattr__(self, "ops", tuple(self.ops))  # a list is taken, a tuple kept: hashable
        for name, op in zip(EDGE_NAMES, self.ops):
            if op not in OPS:
                raise ValueError(f"ops: {name}: expected one of {', '.join(OPS)}, got {_short(op)}")

    def __str__(self) -> str:
        groups, k = [], 0
        for node in range(1, NODES):
            groups.append("|" + "|".join(f"{self.ops[k + i]}~{i}" for i in range(node)) + "|")
            k += node
        return "+".join(groups)

    @property
    def tokens(self) -> tuple[int, ...]:
        return tuple(OPS.index(op) for op in self.ops)

    def genotype(self) -> CellSpec:
        """This cell in the cell form (`pynas.cell`): node j sums its edges, a ``none`` edge left out."""
        nodes = []
        for target in range(1, NODES):
            edges = [Edge(CELL_OPS[op], source) for op, (source, t) in zip(self.ops, EDGES)
                     if t == target and op != "none"]
            nodes.append(Node(tuple(edges)))
        return CellSpec("cell", "last", tuple(nodes), inputs=1)

    def network(self, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5,
                resolution: int = RESOLUTION) -> CellNet:
        """The benchmark's network of this cell (its CIFAR skeleton; by default CIFAR-10's, the one
        HW-NAS-Bench timed and whose parameters the benchmark lists) as a cell network: what pynas
        lowers, builds, runs and profiles. Its string is the network's; `str(cell)` the benchmark's."""
        return CellNet(resolution=resolution, num_classes=num_classes, skeleton="nb201", channels=channels,
                       cells=cells_per_stage, genotypes=(self.genotype(),))

    @classmethod
    def parse(cls, text: str) -> "Cell":
        """The cell of a benchmark string, read strictly (no spaces, sources in order, known ops):
        ValueError naming the part and what was expected."""
        if not isinstance(text, str):
            raise ValueError(f"NAS-Bench-201 cell: expected a string like {EXAMPLE}, got {type(text).__name__}")
        what = f"NAS-Bench-201 cell {_short(text)}"
        groups = text.split("+")
        if len(groups) != NODES - 1:
            raise ValueError(f"{what}: expected {NODES - 1} groups joined by '+' (the edges into nodes 1, 2, 3, as in "
                             f"{EXAMPLE}), got {len(groups)}")
        ops = []
        for node, group in enumerate(groups, start=1):
            want = "|" + "|".join(f"OP~{i}" for i in range(node)) + "|"
            if len(group) < 2 or group[0] != "|" or group[-1] != "|":
                raise ValueError(f"{what}: node {node}: expected {want}, got {_short(group)}")
            entries = group[1:-1].split("|")
            if len(entries) != node:
                raise ValueError(f"{what}: node {node}: expected {node} edge(s), {want}, got {len(entries)}")
            for source, entry in enumerate(entries):
                op, tilde, got = entry.partition("~")
                if not tilde or got != str(source):
                    raise ValueError(f"{what}: node {node}: edge {source}: expected OP~{source}, got {_short(entry)}")
                if op not in OPS:
                    raise ValueError(f"{what}: edge{source}to{node}: expected one of {', '.join(OPS)}, "
                                     f"got {_short(op)}")
                ops.append(op)
        return cls(tuple(ops))


class NB201Space(SearchSpace):
    name = "nb201"
    lowerable = False
    profiled_whole = True  # profiled and predicted per whole network (pynas.predictor.cellnet)

    def __init__(self, resolution: int = RESOLUTION):
        """`resolution` only 32 (the benchmark's CIFAR skeleton); taken so that a --resolution flag
        gets an answer naming it."""
        if resolution != RESOLUTION or isinstance(resolution, bool):
            raise ValueError(f"resolution: expected {RESOLUTION} (NAS-Bench-201's CIFAR skeleton; the benchmark has no "
                             f"other), got {_short(resolution)}")
        self.resolution = RESOLUTION
        self.decisions = tuple(Decision(name, OPS) for name in EDGE_NAMES)

    def options(self) -> dict:
        return {}

    def layout_name(self) -> str:
        return f"nb201_res{RESOLUTION}_cls10"  # HW-NAS-Bench timed the CIFAR-10 network

    def parse(self, text: str) -> Cell:
        """A cell from the benchmark's string, or from its network's string (``cellnet_...``)."""
        from pynas.cell import is_cellnet_string, parse as parse_cellnet

        if is_cellnet_string(text):
            return self.cell_of(parse_cellnet(text))
        return Cell.parse(text)

    def decode(self, tokens: Sequence[int]) -> Cell:
        return Cell(tuple(OPS[t] for t in self.check_tokens(tokens)))

    def encode(self, cell: Cell | str) -> tuple[int, ...]:
        """Tokens of a Cell or a benchmark string; ValueError for anything else (an Arch of
        another space included: spaces_holding and the few-shot checks rely on it)."""
        if isinstance(cell, CellNet) and self.cell_of(cell).network() != cell:
            raise ValueError(f"architecture not in space 'nb201': expected a NAS-Bench-201 Cell or its string "
                             f"(or its network, cellnet_res32_cls10:nb201_c16_n5:cell_olast:...), got {_short(str(cell))}")
        return self.cell_of(cell).tokens

    def index_of(self, tokens) -> np.ndarray:
        """Benchmark indices (int64) of an N x 6 integer token array, vectorised."""
        rows = _token_rows(tokens)
        return benchmark().index_by_code[rows @ _RADIX]

    def tokens_of(self, indices) -> np.ndarray:
        """N x 6 int64 tokens of benchmark indices (a 1-D integer array)."""
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu" or indices.ndim != 1:
            raise ValueError(f"indices: expected a 1-D integer array of benchmark indices, got {indices.dtype} "
                             f"with shape {indices.shape}")
        bad = (indices < 0) | (indices >= SIZE)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"indices: position {i}: expected a benchmark index in 0..{SIZE - 1}, got {indices[i]}")
        return benchmark().tokens[indices].astype(np.int64)

    def index(self, cell: Cell | str) -> int:
        """The benchmark index of one Cell or string."""
        return int(self.index_of(np.array([self.encode(cell)]))[0])

    def network(self, cell: Cell | str | Sequence[int]) -> CellNet:
        """The network of a cell (a Cell, a benchmark string or tokens) that pynas lowers, builds
        and runs: the benchmark's CIFAR-10 network (`Cell.network`), the one HW-NAS-Bench timed."""
        if not isinstance(cell, (Cell, str)):
            cell = self.decode(cell)
        return self.cell_of(cell).network()

    def reference_network(self) -> CellNet:
        """The network profiling times the others against (`pynas.profiling.session`, a space
        `profiled_whole`), and whose stem is the segment reference: the benchmark's example cell's,
        mid-sized (three 3x3 convs, an average pool, two skips). Fixed: every run and pass of a
        series shares its fast state."""
        return self.network(EXAMPLE)

    def cell_of(self, arch) -> Cell:
        """The cell of a Cell, a benchmark string, or a network of the benchmark's skeleton (CellNet or
        its ``cellnet_...`` string, any width, depth and classes); ValueError naming what is not."""
        if isinstance(arch, str):
            return self.parse(arch)
        if isinstance(arch, Cell):
            return arch
        if not isinstance(arch, CellNet):
            raise ValueError(f"architecture not in space 'nb201': expected a NAS-Bench-201 Cell or its string, got "
                             f"{type(arch).__name__} {_short(str(arch))}")
        where = "architecture not in space 'nb201'"
        if arch.skeleton != "nb201":
            raise ValueError(f"{where}: skeleton: expected nb201, got {arch.skeleton}")
        genotype = arch.genotypes[0]
        if len(genotype.nodes) != NODES - 1:
            raise ValueError(f"{where}: cell: expected {NODES - 1} nodes, got {len(genotype.nodes)}")
        names = {v: k for k, v in CELL_OPS.items()}
        ops = dict.fromkeys(EDGES, "none")
        for target, node in enumerate(genotype.nodes, start=1):
            for edge in node.edges:
                if edge.op not in names:
                    raise ValueError(f"{where}: edge{edge.source}to{target}: expected one of "
                                     f"{', '.join(CELL_OPS.values())}, got {edge.op}")
                if ops[(edge.source, target)] != "none":
                    raise ValueError(f"{where}: edge{edge.source}to{target}: expected one op per edge, got two")
                ops[(edge.source, target)] = names[edge.op]
        return Cell(tuple(ops[e] for e in EDGES))

    @staticmethod
    def holds_network(net: CellNet) -> bool:
        """Whether `net` is the space's network of one of its cells."""
        try:
            cell = NB201Space().cell_of(net)
        except ValueError:
            return False
        return cell.network() == net

    def segment_archs(self):
        """(network, segment id) pairs covering every distinct segment of the space's networks:
        each cell at each of the three stage widths (a cell of skips lowers to no op and is no
        segment), the two ResNet blocks, the stem and the head."""
        from pynas.ir import lower

        first = self.network(Cell(("nor_conv_3x3",) * len(EDGES)))
        layout = first.layout()
        firsts = [f"c{i}" for i, (kind, _) in enumerate(layout) if kind == "cell" and (i == 0 or layout[i - 1][0] != "cell")]
        yield first, "stem"
        yield from ((first, f"c{i}") for i, (kind, _) in enumerate(layout) if kind == "resblock")
        yield first, "head"
        for tokens in itertools.product(range(len(OPS)), repeat=len(EDGES)):
            net = self.network(tokens)
            blocks = {op.block for op in lower(net).ops if op.block is not None}
            yield from ((net, sid) for sid in firsts if sid in blocks)

    def table_layout(self):
        raise ValueError("space 'nb201': table_layout (a compiled latency table): expected a space of block "
                         "networks (mnasnet, fbnet), got NAS-Bench-201, whose 15,625 networks are priced one by one: "
                         "its lookup bundles (nb201-pixel3, nb201-raspi4, nb201-eyeriss, nb201-fpga) hold each "
                         "network's latency")

    def describe(self) -> str:
        return "\n".join([super().describe(),
                          "  a cell on NAS-Bench-201's CIFAR skeleton (32x32, stem 16, 3 stages x 5 cells at 16/32/64 "
                          "channels); edge i->j: op from node i into node j",
                          f"  strings as the benchmark's, e.g. {EXAMPLE}",
                          f"  its network: {self.network(EXAMPLE)}",
                          f"  benchmark data: {DATA_DIR / DATA_FILE} (pynas.space.nb201.benchmark())"])


def _token_rows(tokens) -> np.ndarray:
    """`tokens` as an N x 6 int32/int64 array of valid tokens, or a ValueError naming the row and edge."""
    rows = np.asarray(tokens)
    if rows.dtype.kind not in "iu" or rows.ndim != 2 or rows.shape[1] != len(EDGES):
        raise ValueError(f"tokens: expected an N x {len(EDGES)} integer array (one row of op indices per cell), got "
                         f"{rows.dtype} with shape {rows.shape}")
    if rows.size:
        # One pass for both bounds: viewed as unsigned, a negative token is huge.
        unsigned = rows if rows.dtype.kind == "u" else rows.view(rows.dtype.str.replace("i", "u"))
        if unsigned.max() >= len(OPS):
            r, c = (int(x) for x in np.argwhere((rows < 0) | (rows >= len(OPS)))[0])
            raise ValueError(f"tokens: row {r}, {EDGE_NAMES[c]}: expected 0..{len(OPS) - 1}, got {rows[r, c]}")
    if rows.dtype not in (np.int32, np.int64):
        rows = rows.astype(np.int64)  # uint64 @ int64 would be float64; the range is checked above
    return rows


# -- the benchmark's numbers ------------------------------------------------------------------------

class BenchmarkDataError(ValueError):
    """The shipped benchmark data is not what its manifest says (changed, damaged, malformed)."""


def accuracy_column(dataset: str, fidelity: int) -> str:
    """The data column of `dataset`'s accuracy at `fidelity` epochs (ValueError naming a bad one)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset: expected one of {', '.join(DATASETS)}, got {_short(dataset)}")
    if fidelity not in FIDELITIES or isinstance(fidelity, bool):
        raise ValueError(f"fidelity: expected one of {', '.join(map(str, FIDELITIES))} (epochs), "
                         f"got {_short(fidelity)}")
    # The 12-epoch proxy is the validation accuracy (what a search may look at); the 200-epoch
    # figure the test accuracy (what it is judged by, never seen during the search).
    return f"{dataset}_valid_acc_12ep" if fidelity == 12 else f"{dataset}_test_acc"


def latency_column(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {', '.join(DEVICES)}, got {_short(device)}")
    return f"{device}_latency_ms_cifar10"


PARAMS_COLUMN = "params_M_cifar10"
COLUMNS = (*(accuracy_column(d, f) for f in FIDELITIES for d in DATASETS), PARAMS_COLUMN, *map(latency_column, DEVICES))


class Benchmark:
    """The benchmark's numbers, one float64 array per column in benchmark index order (read-only)."""

    def __init__(self, path: Path, sha256: str, tokens: np.ndarray, columns: dict[str, np.ndarray]):
        self.path, self.sha256, self.tokens, self.columns = path, sha256, tokens, columns
        index_by_code = np.empty(SIZE, dtype=np.int64)
        index_by_code[tokens.astype(np.int64) @ _RADIX] = np.arange(SIZE)
        self.index_by_code = index_by_code
        for array in (tokens, index_by_code, *columns.values()):
            array.flags.writeable = False  # shared by every caller of the cached benchmark()

    def accuracy(self, dataset: str, fidelity: int = 200) -> np.ndarray:
        """Percent: `fidelity` 200 the test accuracy after 200 epochs, 12 the validation accuracy
        after 12 epochs (the proxy)."""
        return self.columns[accuracy_column(dataset, fidelity)]

    def latency(self, device: str) -> np.ndarray:
        """HW-NAS-Bench's latency in ms on `device` (pixel3, raspi4, eyeriss, fpga), CIFAR-10 network."""
        return self.columns[latency_column(device)]

    @property
    def params(self) -> np.ndarray:
        """Parameters in millions (CIFAR-10 head)."""
        return self.columns[PARAMS_COLUMN]


def benchmark(folder: str | os.PathLike | None = None) -> Benchmark:
    """The shipped benchmark data (or that of `folder`, holding nb201.npz and manifest.json), read
    once (a folder's: once per file version) and checked: sha256 against the manifest, arrays,
    ranges, bijection."""
    if folder is None:
        return _shipped()
    return _benchmark_in(Path(folder))


@functools.cache
def _shipped() -> Benchmark:
    # Once per process: `index_of` calls this per batch, and a stat per call costs more than a
    # small batch's lookup.
    return _benchmark_in(DATA_DIR)


def _benchmark_in(folder: Path) -> Benchmark:
    path = folder / DATA_FILE
    try:
        stat = os.stat(path)
    except OSError as error:
        raise BenchmarkDataError(f"{path}: NAS-Bench-201 data missing ({error.strerror}): expected the file pynas "
                                 f"ships (scripts/make-nb201-data.py writes it)") from None
    return _read(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _read(path_text: str, mtime_ns: int, size: int) -> Benchmark:
    path = Path(path_text)
    entry = _manifest_entry(path.parent / DATA_MANIFEST)
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != entry["sha256"]:
        raise BenchmarkDataError(f"{path}: sha256: expected {entry['sha256']} ({DATA_MANIFEST}), got {got}: the file "
                                 f"changed")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name.removesuffix(".npy"): data[name] for name in data.files}
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError) as error:
        raise BenchmarkDataError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    want = {"tokens": ("uint8", (SIZE, len(EDGES)))} | {c: ("float64", (SIZE,)) for c in COLUMNS}
    if set(arrays) != set(want):
        raise BenchmarkDataError(f"{path}: arrays: expected {sorted(want)}, got {sorted(arrays)}")
    for name, (dtype, shape) in want.items():
        if arrays[name].dtype != np.dtype(dtype) or arrays[name].shape != shape:
            raise BenchmarkDataError(f"{path}: {name}: expected {dtype} with shape {shape}, got {arrays[name].dtype} "
                                     f"with shape {arrays[name].shape}")
    tokens = arrays.pop("tokens")
    codes = tokens.astype(np.int64) @ _RADIX
    if tokens.max() >= len(OPS) or len(np.unique(codes)) != SIZE:
        raise BenchmarkDataError(f"{path}: tokens: expected each of the {SIZE} cells exactly once (op indices "
                                 f"0..{len(OPS) - 1}), got {len(np.unique(codes))} distinct")
    for name, array in arrays.items():
        percent = "_acc" in name  # an accuracy in [0, 100]; a latency or a parameter count > 0
        bad = ~((array >= 0) & (array <= 100) if percent else np.isfinite(array) & (array > 0))
        if bad.any():
            i = int(np.argmax(bad))
            expected = "a percentage in [0, 100]" if percent else "a finite number > 0"
            raise BenchmarkDataError(f"{path}: {name}[{i}]: expected {expected}, got {float(array[i])!r}")
    return Benchmark(path, got, tokens, arrays)


def _manifest_entry(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise BenchmarkDataError(f"{path}: unreadable data manifest ({type(error).__name__}: {error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != DATA_FORMAT or \
            manifest.get("version") != DATA_VERSION:
        raise BenchmarkDataError(f"{path}: expected a {DATA_FORMAT} version {DATA_VERSION} manifest, got "
                                 f"{_short(manifest)}")
    entry = manifest.get("files", {}).get(DATA_FILE) if isinstance(manifest.get("files"), dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise BenchmarkDataError(f"{path}: files.{DATA_FILE}.sha256: expected the data file's sha256, got "
                                 f"{_short(entry)}")
    return entry
