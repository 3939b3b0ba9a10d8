"""HW-NAS-Bench's FBNet-space latency tables (Li et al., ICLR 2021) for pynas architectures.

HW-NAS-Bench prices an FBNet-space network by summing per-block entries of a lookup table measured
(or simulated) per device: the stem conv, the 22 searchable layers, the head 1x1 conv, the average
pool and the classifier. `block_keys(arch)` names those entries for a pynas architecture of
`pynas.space.FBNetSpace` (either setting), exactly as HW-NAS-Bench names them::

    ConvNorm_H224_W224_Cin3_Cout16_kernel3_stride2_group1             stem (input size)
    ConvBlock_H112_W112_Cin16_Cout24_exp1_kernel3_stride2_group2      a k3_e1_g2 layer
    Skip_H56_W56_Cin24_Cout32_stride2                                 a skip layer
    ConvNorm_H7_W7_Cin352_Cout1984_kernel1_stride1_group1             head conv
    AvgP_H7_W7_Cin1984_Cout1984_kernel7_stride1                       average pool
    FC_Cin1984_Cout1000                                               classifier

(H, W: the block's input size), in the order and with the arithmetic of HW-NAS-Bench's own
``fbnet_get_metrics`` (hw_nas_bench_api.py). A skip layer that keeps the shape lowers to nothing in pynas but
has its own (small, measured) entry in the tables, and is summed as HW-NAS-Bench sums it.
`table_latency(arch, device)` is the sum in milliseconds for ``pixel3`` (Pixel 3, TFLite),
``raspi4`` (Raspberry Pi 4, TFLite) or ``edgegpu`` (Jetson TX2, TensorRT), all measured, or
``eyeriss`` (an ASIC) or ``fpga`` (a ZC706 FPGA), both estimated by simulators.

The table is the CSV of HW-NAS-Bench's v1.0 ``["fbnet"]`` entry, shipped with pynas
(`pynas/predictor/data/`, whose README gives its source and MIT licence), read strictly: a malformed file raises `TableError` naming the file, line and column; a key the table
lacks raises `MissingKeyError` naming it, never a latency of 0.

HW-NAS-Bench also timed every network of NAS-Bench-201's cell space; `save_nb201_bundle` writes
those numbers as a lookup bundle (`nb201-<device>`, `pynas.predictor.lookup`).
"""
from __future__ import annotations

import csv
import functools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pynas.arch import Arch

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "hwnasbench_fbnet_lut.csv"
COLUMNS = ("block_key", "used_by", "edgegpu_latency", "edgegpu_energy", "raspi4_latency", "pixel3_latency",
           "eyeriss_latency", "eyeriss_energy", "fpga_latency", "fpga_energy")
VALUE_COLUMNS = COLUMNS[2:]
MEASURED = ("pixel3", "raspi4", "edgegpu")  # timed on the devices
SIMULATED = ("eyeriss", "fpga")  # estimated by HW-NAS-Bench's simulators
DEVICES = MEASURED + SIMULATED
# Devices whose table is a latency model: HW-NAS-Bench's FPGA simulator prices only the searchable
# ConvBlocks (stem, head, pool, classifier and skip layers are 0.0), so its all-skip network costs
# 0 ms, which no pynas latency model may return; fpga is a target to evaluate few-shot calibration
# on (bench/fewshot.py), not a bundle.
BUNDLED = MEASURED + ("eyeriss",)
# Which macro-architecture uses a key; empty for FC_Cin1504_Cout10, a CIFAR-10 classifier the
# published table also holds.
USED_BY = ("cifar100", "ImageNet", "")
_KEY_PATTERNS = tuple(re.compile(p.replace("#", "(0|[1-9][0-9]*)")) for p in (
    r"ConvNorm_H#_W#_Cin#_Cout#_kernel#_stride#_group#",
    r"ConvBlock_H#_W#_Cin#_Cout#_exp#_kernel#_stride#_group#",
    r"Skip_H#_W#_Cin#_Cout#_stride#",
    r"AvgP_H#_W#_Cin#_Cout#_kernel#_stride#",
    r"FC_Cin#_Cout#",
))
# Plain non-negative decimals as the table writes them (float() alone would take 'nan', 'inf',
# '1_0' and surrounding spaces).
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


class TableError(ValueError):
    """A malformed table file: names the file, line and column."""


class MissingKeyError(KeyError):
    """A block key the table has no entry for (an architecture the table cannot price)."""

    def __init__(self, key: str, path: Path | str):
        super().__init__(key)
        self.key, self.path = key, str(path)

    def __str__(self) -> str:
        return f"{self.path}: no HW-NAS-Bench entry for block key {self.key!r}"


@dataclass(frozen=True)
class Entry:
    key: str
    used_by: str
    values: dict  # column (one of VALUE_COLUMNS) -> value: ms for *_latency, mJ for *_energy
    line: int  # where it is in the file


class LatencyTable:
    """One table file's entries by block key. `load_table(path)` reads (and caches) one."""

    def __init__(self, path: Path | str, entries: dict[str, Entry]):
        self.path = Path(path)
        self.entries = entries

    @classmethod
    def read(cls, path: Path | str | None = None) -> "LatencyTable":
        path = DEFAULT_PATH if path is None else Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"HW-NAS-Bench FBNet table: no file {path} (pass the path of HW-NAS-Bench's "
                                    f"FBNet lookup table as a CSV with columns {', '.join(COLUMNS)})")
        try:
            with open(path, newline="", encoding="utf-8") as f:
                return cls(path, _parse(path, csv.reader(f, strict=True)))
        except UnicodeDecodeError as error:
            raise TableError(f"{path}: not UTF-8 text ({error})") from None
        except csv.Error as error:
            raise TableError(f"{path}: malformed CSV ({error})") from None

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def value(self, key: str, column: str) -> float:
        if column not in VALUE_COLUMNS:
            raise ValueError(f"column: expected one of {', '.join(VALUE_COLUMNS)}, got {column!r}")
        if key not in self.entries:
            raise MissingKeyError(key, self.path)
        return self.entries[key].values[column]

    def latency(self, key: str, device: str) -> float:
        """Milliseconds of block `key` on `device` (one of DEVICES)."""
        return self.value(key, f"{check_device(device)}_latency")


def _parse(path: Path, reader) -> dict[str, Entry]:
    def fail(line: int, column: int, message: str):
        raise TableError(f"{path}: line {line}, column {column + 1} ({COLUMNS[column]}): {message}")

    header = next(reader, None)
    if header is None:
        raise TableError(f"{path}: line 1: empty file, expected the header {','.join(COLUMNS)}")
    for i, expected in enumerate(COLUMNS):
        if i >= len(header) or header[i] != expected:
            got = repr(header[i]) if i < len(header) else "nothing"
            fail(1, i, f"header: expected {expected!r}, got {got}")
    if len(header) != len(COLUMNS):
        raise TableError(f"{path}: line 1: header: expected {len(COLUMNS)} columns, got {len(header)}")
    entries: dict[str, Entry] = {}
    for row in reader:
        line = reader.line_num
        if len(row) != len(COLUMNS):
            raise TableError(f"{path}: line {line}: expected {len(COLUMNS)} fields, got {len(row)}")
        key, used_by = row[0], row[1]
        if not any(p.fullmatch(key) for p in _KEY_PATTERNS):
            fail(line, 0, f"expected a ConvNorm_, ConvBlock_, Skip_, AvgP_ or FC_ block key, got {key!r}")
        if key in entries:
            fail(line, 0, f"duplicate key {key!r} (first on line {entries[key].line})")
        if used_by not in USED_BY:
            fail(line, 1, f"expected one of {USED_BY}, got {used_by!r}")
        values = {}
        for i, text in enumerate(row[2:], start=2):
            value = float(text) if _NUMBER.fullmatch(text) else math.nan
            if not math.isfinite(value):
                fail(line, i, f"expected a non-negative decimal number, got {text!r}")
            values[COLUMNS[i]] = value
        entries[key] = Entry(key, used_by, values, line)
    return entries


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> LatencyTable:
    return LatencyTable.read(path)


def load_table(path: Path | str | None = None) -> LatencyTable:
    """The table at `path` (default DEFAULT_PATH), read once per file version."""
    path = DEFAULT_PATH if path is None else Path(path)
    try:
        stat = os.stat(path)
    except OSError:
        return LatencyTable.read(path)  # raises the clear FileNotFoundError
    return _load(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
    return device


@functools.cache
def _spaces():
    from pynas.space.fbnet import SETTINGS, FBNetSpace

    return tuple(FBNetSpace(setting) for setting in SETTINGS)


def _fbnet_space_of(arch: Arch):
    """The FBNet space (imagenet or cifar100 setting, at the setting's resolution and classes) that
    holds `arch`; ValueError naming why neither does."""
    reasons = []
    for space in _spaces():
        try:
            space.encode(arch)
        except ValueError as error:
            reasons.append(str(error))
            continue
        return space
    raise ValueError("architecture not in HW-NAS-Bench's FBNet space (either setting): " + "; ".join(reasons))


def _arch(arch: Arch | str) -> Arch:
    if isinstance(arch, str):
        from pynas.presets import resolve
        return resolve(arch)
    if not isinstance(arch, Arch):
        raise TypeError(f"arch: expected an Arch or an architecture string, got {type(arch).__name__}")
    return arch


def block_keys(arch: Arch | str) -> list[str]:
    """HW-NAS-Bench's block keys of an FBNet-space architecture, in network order: stem, 22 layers,
    head conv, average pool, classifier."""
    arch = _arch(arch)
    space = _fbnet_space_of(arch)
    res, stem = arch.resolution, arch.stem
    keys = [f"ConvNorm_H{res}_W{res}_Cin{arch.in_channels}_Cout{stem.channels}_kernel{stem.kernel}_stride{stem.stride}_group1"]
    for layer, stage in zip(space.layers, arch.stages):
        shape = f"H{layer.size}_W{layer.size}_Cin{layer.cin}_Cout{layer.cout}"
        if stage.block == "id":
            keys.append(f"Skip_{shape}_stride{layer.stride}")
        else:  # encode() checked it is an ir layer with an integral expansion
            keys.append(f"ConvBlock_{shape}_exp{int(stage.expansion)}_kernel{stage.kernel}_stride{layer.stride}"
                        f"_group{stage.groups}")
    size, cin, head = space.head_size, space.layers[-1].cout, arch.head.channels
    keys.append(f"ConvNorm_H{size}_W{size}_Cin{cin}_Cout{head}_kernel1_stride1_group1")
    keys.append(f"AvgP_H{size}_W{size}_Cin{head}_Cout{head}_kernel{size}_stride1")
    keys.append(f"FC_Cin{head}_Cout{arch.num_classes}")
    return keys


def _table(table) -> LatencyTable:
    return table if isinstance(table, LatencyTable) else load_table(table)


def latency_breakdown(arch: Arch | str, device: str, table: LatencyTable | Path | str | None = None
                      ) -> list[tuple[str, float]]:
    """(block key, ms) for every block of `arch` on `device`, in network order."""
    check_device(device)
    lut = _table(table)
    return [(key, lut.latency(key, device)) for key in block_keys(arch)]


def table_latency(arch: Arch | str, device: str, table: LatencyTable | Path | str | None = None) -> float:
    """HW-NAS-Bench's latency of `arch` on `device` in ms: the sum of its blocks' table entries.
    `table`: a LatencyTable or a path (default DEFAULT_PATH)."""
    return sum(ms for _, ms in latency_breakdown(arch, device, table))


BACKENDS = {"pixel3": ("tflite", "Google Pixel 3, TFLite"), "raspi4": ("tflite", "Raspberry Pi 4, TFLite"),
            "edgegpu": ("tensorrt", "NVIDIA Jetson TX2, TensorRT"),
            "eyeriss": ("simulator", "Eyeriss ASIC (simulated by HW-NAS-Bench)"),
            "fpga": ("simulator", "Xilinx ZC706 FPGA (simulated by HW-NAS-Bench)")}


def segment_prices(device: str, setting: str = "imagenet", table: LatencyTable | Path | str | None = None
                   ) -> dict[str, float]:
    """pynas segment key -> ms on `device` for every segment of the FBNet space in `setting`: the
    stem and each layer choice are one table entry each; pynas's head segment (1x1 conv, average
    pool, classifier) is the sum of those three entries. Two entries for one segment key that
    disagree raise TableError (the key would not determine the latency)."""
    from pynas.space.catalogue import segment_by_id
    from pynas.space.fbnet import FBNetSpace

    check_device(device)
    lut = _table(table)
    space = FBNetSpace(setting)
    prices: dict[str, float] = {}
    last, by_id, keys = None, {}, []
    for arch, sid in space.segment_archs():
        if arch is not last:
            last, by_id, keys = arch, segment_by_id(arch), block_keys(arch)
        if sid == "stem":
            ms = lut.latency(keys[0], device)
        elif sid == "head":
            ms = sum(lut.latency(k, device) for k in keys[-3:])
        else:
            ms = lut.latency(keys[1 + int(sid[1:].split(".")[0])], device)
        key = by_id[sid].key
        if prices.setdefault(key, ms) != ms:
            raise TableError(f"{lut.path}: segment {key} has two latencies on {device}: {prices[key]} and {ms}")
    return prices


def compile_device_table(device: str, setting: str = "imagenet", table: LatencyTable | Path | str | None = None,
                         *, latency_model: bool = True):
    """The FBNet space's compiled latency table (`pynas.predictor.table`) priced from HW-NAS-Bench's
    entries for `device`: `predict_batch` of token rows equals `table_latency` of their
    architectures (float32 rounding aside). Identity skips, which run nothing in pynas, are priced
    with HW-NAS-Bench's own entries for them, as its sum counts them. `latency_model=False` for a
    table used as data only (fpga's, whose all-skip network is 0 ms: a few-shot base or target)."""
    from pynas.predictor.table import compile_table
    from pynas.space.fbnet import FBNetSpace

    lut = _table(table)
    space = FBNetSpace(setting)

    def identity(cell) -> float:  # the layer's Skip entry (cell.arch has the skip at cell.block)
        return lut.latency(block_keys(cell.arch)[1 + cell.block], device)

    return compile_table(space, segment_prices(device, setting, lut), empty=identity, latency_model=latency_model)


def save_bundle(folder: Path | str, device: str, setting: str = "imagenet",
                table: LatencyTable | Path | str | None = None, *, samples: int = 2000, overwrite: bool = False):
    """A table bundle (`pynas.predictor.bundle`, kind "table") for `device` in the FBNet space:
    the compiled table and a report checking it against `table_latency` on `samples` random
    architectures."""
    import numpy as np

    from pynas.predictor import bundle
    from pynas.space.fbnet import FBNetSpace

    bundle.check_writable(folder, overwrite)
    lut = _table(table)
    compiled = compile_device_table(device, setting, lut)
    space = FBNetSpace(setting)
    tokens = space.sample_tokens(samples, seed=0)
    got = compiled.predict_batch(tokens).astype(np.float64)
    want = np.array([table_latency(space.decode(t), device, lut) for t in tokens])
    rel = np.abs(got - want) / want
    if rel.max() > 1e-5:
        raise AssertionError(f"compiled table vs HW-NAS-Bench sum: max relative difference {rel.max():.3g}")
    backend, description = BACKENDS[device]
    report = {"source": "HW-NAS-Bench v1.0, FBNet space lookup table (per-block latencies; the network sum is "
                        "HW-NAS-Bench's own, exact by construction)",
              "check_vs_table_latency": {"archs": samples, "max_rel_diff": float(rel.max()),
                                         "mean_ms": float(want.mean()), "min_ms": float(want.min()),
                                         "max_ms": float(want.max())}}
    return bundle.save_table(folder, compiled, space, device={"name": device, "description": description},
                             backend=backend, backend_version="hw-nas-bench-1.0", threads=0, report=report,
                             source=f"{lut.path.name} column {device}_latency ({setting})", overwrite=overwrite)


def save_nb201_bundle(folder: Path | str, device: str, *, overwrite: bool = False) -> Path:
    """The lookup bundle (`pynas.predictor.lookup`, kind "lookup") of HW-NAS-Bench's latency on
    `device` (pixel3, raspi4, eyeriss, fpga) for every NAS-Bench-201 cell: HW-NAS-Bench measured
    (or simulated) each of the 15,625 networks, so the bundle is its numbers, from the benchmark data
    pynas ships (`pynas.space.nb201.benchmark()`). Unlike FBNet's fpga table, HW-NAS-Bench gives
    every NAS-Bench-201 network > 0 ms on every device (fpga's least is 1.1 ms; checked when the
    data is read and again when the bundle is written), so all four devices are bundles."""
    import numpy as np

    from pynas.predictor.writers import save_lookup
    from pynas.space.nb201 import DATA_FILE, NB201Space, benchmark, latency_column

    column = latency_column(device)
    data = benchmark()
    ms = data.latency(device)
    backend, description = BACKENDS[device]
    report = {"source": "HW-NAS-Bench (Li et al., ICLR 2021): the latency it gives for each NAS-Bench-201 "
                        "architecture (CIFAR-10 network, batch 1), exact per architecture",
              "archs": int(len(ms)), "min_ms": float(ms.min()), "median_ms": float(np.median(ms)),
              "max_ms": float(ms.max()), "data": {"file": f"pynas/space/data/{DATA_FILE}", "column": column,
                                                   "sha256": data.sha256}}
    return save_lookup(folder, ms, NB201Space(), device={"name": device, "description": description},
                       backend=backend, backend_version="hw-nas-bench-1.0", threads=0, report=report,
                       source=f"pynas/space/data/{DATA_FILE} column {column} (sha256 {data.sha256[:12]})",
                       overwrite=overwrite)
