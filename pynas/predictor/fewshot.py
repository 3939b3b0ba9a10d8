"""Few-shot calibration: adapt a predictor bundle to another device from k <= 20 whole networks.

A bundle made on one device (or backend) ranks architectures roughly right on another one, but its
milliseconds are off, and not by one factor: a GPU runs depthwise 5x5 relatively faster than a
phone CPU does, a grouped 1x1 conv costs another share on each. So the base predictor's latency of
an architecture is split into groups of segments of one op type (`segment_group`: kind, kernel,
groups; the stem, the head, identity layers each their own), and the target device's latency is
modelled as

    t(arch) = sum_g s_g * base_g(arch) + c + d * kernels(arch)

with one scale per group, a per-network overhead c and a per-kernel launch cost d >= 0 (a GPU
runtime pays ~0.4 ms per layer whatever it does), fitted to the k measured networks on relative
error (weighted least squares). With 5 networks and ~10 groups that is underdetermined, so the
group scales are pulled towards one global scale (ridge, strength chosen by leave-one-out
cross-validation over the k networks) and c, d towards 0: with few networks the fit falls back to
"one scale", with more it learns per-op-type corrections.

This single-base method is kept as a baseline and an option; the default is several bases at once
(`pynas.predictor.multibase`), which bench/fewshot.py shows is never worse and holds where this one
does not (a GPU, accelerators).

`calibrate(base, archs, measured)` returns a `Calibration` (`.predict_batch(base, archs)`);
`calibrated_bundle(bases, ...)` writes the calibrated table bundle, by either method (`pynas
fewshot [BASE ...] MEASURED.csv -o DIR`; `bases_for(archs)` picks every bundle of their space);
`rescaled_table(...)` is a base's compiled table with its cells rescaled. `evaluate(...)` draws k
calibration networks many times and reports held-out accuracy per k (bench/fewshot.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pynas.arch import Arch
from pynas.predictor.features import segment_group
from pynas.predictor.metrics import accuracy

RIDGE_GRID = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)  # relative to the k networks' squared relative error
METHODS = ("base", "scale", "groups")  # as is; one global scale; per-group scales (ridge) + overhead
BUNDLE_METHODS = ("multibase", "scale", "groups")  # what `calibrated_bundle` can write


IDENTITY = "identity"  # a layer that lowers to no op but a table bundle prices (HW-NAS-Bench's Skip)


@dataclass
class Breakdown:
    """The base predictor's view of N architectures: ms per group (N x G), its overhead per
    network (N) and how many segments (kernels launched) each has (N)."""
    groups: list[str]
    matrix: np.ndarray
    overhead: np.ndarray
    counts: np.ndarray

    def take(self, rows) -> "Breakdown":
        return Breakdown(self.groups, self.matrix[rows], self.overhead[rows], self.counts[rows])


def breakdown(predictor, archs: Sequence[Arch]) -> Breakdown:
    """How the base predictor prices `archs`, per group. Works for XGBoost bundles (per segment)
    and table bundles (per table cell, mapped to the segment its slot's stage lowers to)."""
    from pynas.space.catalogue import segment_by_id

    rows: list[dict[str, float]] = []
    overheads, counts = [], []
    for arch in archs:
        segs = segment_by_id(arch)
        parts: dict[str, float] = {}
        count = 0
        if getattr(predictor, "model", None) is not None:  # XGBoost bundle
            for row in predictor.explain(arch):
                if row["segment"] == "overhead":
                    overheads.append(row["ms"])
                    continue
                seg = segs[row["segment"]]
                g = segment_group(seg.kind, seg.features())
                parts[g] = parts.get(g, 0.0) + row["ms"]
                count += 1
        else:  # table bundle: parts stem, <slot>, '<slot> xN', head, overhead
            stage_of = {slot.name: slot.stage for slot in predictor.table.layout.blocks}
            for row in predictor.table.explain(arch):
                part = row["part"]
                if part == "overhead":
                    overheads.append(row["ms"])
                    continue
                if part in ("stem", "head"):
                    g, n = part, 1
                else:
                    name, _, times = part.partition(" x")
                    seg = segs.get(f"s{stage_of[name]}.{1 if times else 0}")
                    g = IDENTITY if seg is None else segment_group(seg.kind, seg.features())
                    n = 0 if seg is None else int(times) if times else 1  # an identity launches nothing
                parts[g] = parts.get(g, 0.0) + row["ms"]
                count += n
        rows.append(parts)
        counts.append(count)
    names = sorted({g for parts in rows for g in parts})
    matrix = np.array([[parts.get(g, 0.0) for g in names] for parts in rows], dtype=np.float64).reshape(len(rows), -1)
    return Breakdown(names, matrix, np.array(overheads, dtype=np.float64), np.array(counts, dtype=np.float64))


@dataclass
class Calibration:
    """t = sum_g scales[g] * base_g + overhead_ms + segment_ms * segments (groups the fit never
    saw use `scale`); method "base" is the base predictor as it is."""
    method: str
    scale: float  # the global scale
    scales: dict[str, float]
    overhead_ms: float
    segment_ms: float = 0.0
    ridge: float | None = None
    k: int = 0
    info: dict = field(default_factory=dict)

    def apply(self, view: Breakdown) -> np.ndarray:
        if self.method == "base":
            return view.matrix.sum(axis=1) + view.overhead
        s = np.array([self.scales.get(g, self.scale) for g in view.groups])
        return view.matrix @ s + self.overhead_ms + self.segment_ms * view.counts

    def predict_batch(self, base, archs: Sequence[Arch]) -> np.ndarray:
        return self.apply(breakdown(base, archs))

    def to_json(self) -> dict:
        return {"method": self.method, "scale": self.scale, "scales": self.scales, "overhead_ms": self.overhead_ms,
                "segment_ms": self.segment_ms, "ridge": self.ridge, "k": self.k, **self.info}


def _global_scale(total: np.ndarray, y: np.ndarray) -> float:
    # argmin_s sum((s * total / y - 1)^2)
    r = total / y
    return float(r.sum() / (r @ r))


def _fit_groups(matrix: np.ndarray, counts: np.ndarray, y: np.ndarray, s0: float, ridge: float
                ) -> tuple[np.ndarray, float, float]:
    """Group scales s, overhead c and per-segment cost d >= 0 minimising
    sum((B s + c + d n)/y - 1)^2 + ridge * (sum((s - s0)^2) + (c / ybar)^2 + (d nbar / ybar)^2):
    c and d are pulled towards 0 in units of a typical network, like the scales towards s0."""
    n, g = matrix.shape
    a = np.hstack([matrix / y[:, None], (1.0 / y)[:, None], (counts / y)[:, None]])
    ybar, nbar = float(np.mean(y)), float(np.mean(counts))
    penalty = np.sqrt(ridge) * np.diag(np.r_[np.ones(g), 1.0 / ybar, nbar / ybar])
    target = np.sqrt(ridge) * np.r_[np.full(g, s0), 0.0, 0.0]
    keep = list(range(g + 2))
    while True:  # an overhead and a kernel launch cost >= 0: refit without a term that went negative
        sol = np.zeros(g + 2)
        sol[keep], *_ = np.linalg.lstsq(np.vstack([a[:, keep], penalty[np.ix_(keep, keep)]]),
                                        np.r_[np.ones(n), target[keep]], rcond=None)
        negative = [i for i in (g + 1, g) if i in keep and sol[i] < 0]
        if not negative:
            return sol[:g], float(sol[g]), float(sol[g + 1])
        keep.remove(negative[0])


def fit(view: Breakdown, measured: np.ndarray, method: str = "groups") -> Calibration:
    """Fit a calibration to k networks: `view` (their breakdown by the base), `measured` (k ms)."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    y = np.asarray(measured, dtype=np.float64)
    if y.ndim != 1 or len(y) != len(view.matrix) or len(y) < 1:
        raise ValueError(f"measured: expected one latency per network ({len(view.matrix)}), got shape {y.shape}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("measured: expected finite latencies in ms > 0")
    k = len(y)
    total = view.matrix.sum(axis=1) + view.overhead
    s0 = _global_scale(total, y)
    if method == "base":
        return Calibration("base", 1.0, {}, 0.0, k=k)
    if method == "scale":
        # The base's overhead scales with it: t = s0 * (sum + overhead).
        return Calibration("scale", s0, {g: s0 for g in view.groups}, s0 * float(np.mean(view.overhead)), k=k)
    # Ridge strength by leave-one-out over the k networks (k >= 3), else the strongest.
    best, best_err = RIDGE_GRID[-1], np.inf
    if k >= 3:
        for ridge in RIDGE_GRID:
            errs = []
            for i in range(k):
                keep = np.arange(k) != i
                s, c, d = _fit_groups(view.matrix[keep], view.counts[keep], y[keep], _global_scale(total[keep], y[keep]),
                                      ridge)
                errs.append((view.matrix[i] @ s + c + d * view.counts[i]) / y[i] - 1)
            err = float(np.sqrt(np.mean(np.square(errs))))
            if err < best_err:
                best, best_err = ridge, err
    s, c, d = _fit_groups(view.matrix, view.counts, y, s0, best)
    return Calibration("groups", s0, dict(zip(view.groups, map(float, s))), c, d, ridge=best, k=k,
                       info={"loo_rmspe": None if best_err == np.inf else 100 * best_err})


def calibrate(base, archs: Sequence[Arch], measured: Sequence[float], method: str = "groups") -> Calibration:
    """Fit `method` to the architectures `archs` measured on the target device (`measured`, ms)."""
    return fit(breakdown(base, list(archs)), np.asarray(measured, dtype=np.float64), method)


def evaluate(base, archs: Sequence[Arch], measured: Sequence[float], ks=(5, 10, 20), draws: int = 30,
             seed: int = 0, methods=METHODS) -> dict:
    """Held-out accuracy of few-shot calibration: for each k, `draws` times pick k of the networks
    to calibrate on and score the rest. Returns {method: {k: {"rmspe", "within5", "within10",
    "spearman"} (medians over the draws), "rmspe_p90", "heldout", "draws"}}."""
    view = breakdown(base, list(archs))
    y = np.asarray(measured, dtype=np.float64)
    rng = np.random.default_rng(seed)
    out: dict = {m: {} for m in methods}
    for k in ks:
        if not 1 <= k < len(y):
            raise ValueError(f"ks: expected values in 1..{len(y) - 1} (fewer than the networks), got {k}")
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        for _ in range(draws):
            chosen = rng.choice(len(y), k, replace=False)
            rest = np.setdiff1d(np.arange(len(y)), chosen)
            for m in methods:
                cal = fit(view.take(chosen), y[chosen], m)
                runs[m].append(accuracy(cal.apply(view.take(rest)), y[rest]))
        for m in methods:
            scores = runs[m]
            summary = {name: float(np.median([s[name] for s in scores])) for name in scores[0] if name != "n"}
            summary.update(rmspe_p90=float(np.percentile([s["rmspe"] for s in scores], 90)),
                           heldout=int(len(y) - k), draws=draws)
            out[m][k] = summary
    return out


def read_measured(path) -> tuple[list[str], np.ndarray]:
    """A CSV of networks measured on the target device: header ``arch,ms``, one architecture
    string (or preset name) and its latency in ms per line. Errors name the line and field."""
    import csv
    from pathlib import Path

    path = Path(path)
    archs, ms = [], []
    if not path.is_file():
        raise ValueError(f"{path}: expected a CSV file of measured networks (header 'arch,ms'), got "
                         f"{'a folder' if path.is_dir() else 'nothing'} there")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["arch", "ms"]:
            raise ValueError(f"{path}: line 1: header: expected 'arch,ms', got {','.join(header or [])!r}")
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            if len(row) != 2:
                raise ValueError(f"{where}: expected 2 fields (arch, ms), got {len(row)}")
            try:
                value = float(row[1])
            except ValueError:
                value = float("nan")
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{where}: ms: expected a latency in ms > 0, got {row[1]!r}")
            archs.append(row[0])
            ms.append(value)
    if not archs:
        raise ValueError(f"{path}: expected at least one measured network, got none")
    return archs, np.array(ms)


def check_in_space(base, archs: Sequence[Arch], source: str = "measured") -> None:
    """A base compiled for a space calibrates from networks of that space only: ValueError naming
    both spaces and the first network outside it (line numbers as in a CSV with a header)."""
    space = base.space
    if space is None:
        return
    from pynas.space import spaces_holding

    for line, arch in enumerate(archs, start=2):
        try:
            space.encode(arch)
        except ValueError as error:
            holders = spaces_holding(arch)
            theirs = f"an architecture of space {', '.join(holders)}" if holders else "an architecture outside it"
            raise ValueError(f"{source}: line {line}: base {base.name} is for space {space.name}@{space.resolution}, "
                             f"got {theirs} ({error})") from None


@dataclass
class Target:
    """What a calibrated bundle describes: the device (a name, or this machine's fingerprint), its
    runtime and version and thread count where known. Never the base's: a few-shot bundle is made
    for another device than its bases'."""
    device: dict
    backend: str = "unknown"
    backend_version: str = "unknown"
    threads: int = 0  # 0: not stated


def calibrated_bundle(bases, archs: Sequence[Arch], measured: Sequence[float], folder, target: Target, *,
                      method: str = "multibase", name: str | None = None, overwrite: bool = False):
    """Calibrate to a device from k measured networks and write the result as a table bundle in
    `folder`: method "multibase" (default; `pynas.predictor.multibase`: every base at once, cell by
    cell, never negative) from `bases` (loaded bundles with compiled tables of one space), or
    "scale" / "groups" from a single base (this module's per-op-group scales)."""
    from pynas.predictor import writers

    writers.check_writable(folder, overwrite)
    bases = list(bases)
    space = _common_space(bases)
    for base in bases:
        check_in_space(base, archs)
    y = np.asarray(measured, dtype=np.float64)
    if method == "multibase":
        from pynas.predictor import multibase

        cells = multibase.space_cells(space)
        used = [multibase.table_base(b.name, cells, b.table) for b in bases] + multibase.analytic_bases(cells)
        result = multibase.fit(cells, used, list(archs), y)
        table, calibration = result.table(), result.report()
        fitted = result.predict(list(archs))
    else:
        if len(bases) != 1:
            raise ValueError(f"method {method}: expected one base, got {len(bases)} ({', '.join(b.name for b in bases)})")
        cal = calibrate(bases[0], archs, y, method)
        table, calibration = rescaled_table(bases[0].table, cal), cal.to_json()
        fitted = cal.apply(breakdown(bases[0], list(archs)))
    report = {"calibration": calibration, "bases": [b.name for b in bases], "fit": accuracy(fitted, y)}
    return writers.save_table(folder, table, space, device=target.device, backend=target.backend,
                              backend_version=target.backend_version, threads=target.threads, report=report,
                              source=f"few-shot calibration ({method}) of {', '.join(b.name for b in bases)} on "
                                     f"{len(y)} networks", name=name, overwrite=overwrite)


def _common_space(bases):
    """The one space every base's compiled table covers (ValueError naming the odd one out)."""
    if not bases:
        raise ValueError("bases: expected at least one bundle with a compiled table, got none")
    for base in bases:
        if base.table is None:
            raise ValueError(f"bases: {base.name} has no compiled table (few-shot calibrates a space's table: "
                             f"calibrate the base with --space)")
    first = bases[0].manifest.space
    for base in bases[1:]:
        if base.manifest.space != first:
            raise ValueError(f"bases: expected tables of one space, got {bases[0].name} for "
                             f"{first['name']}@{first['resolution']} and {base.name} for "
                             f"{base.manifest.space['name']}@{base.manifest.space['resolution']}")
    return bases[0].table.space


def bases_for(archs: Sequence[Arch]) -> list:
    """Every bundle on the search path whose compiled table covers all of `archs` (the automatic
    choice of bases: the fit then weighs them, LitePred's most similar predictors)."""
    from pynas.predictor import bundle

    found = []
    for name, folder, manifest in bundle.list_bundles():
        if isinstance(manifest, Exception) or manifest.space is None or "table.npz" not in manifest.files:
            continue
        if any(f.name == name for f in found):  # an earlier folder on the search path wins
            continue
        base = bundle.load(folder)
        try:
            for arch in archs:
                base.table.space.encode(arch)
        except ValueError:
            continue
        found.append(base)
    if not found:
        raise ValueError("bases: no bundle on the search path has a compiled table of the measured networks' space "
                         "(name the bases, or calibrate one with --space)")
    layouts = [b.manifest.space["layout"] for b in found]
    layout = max(set(layouts), key=layouts.count)
    return [b for b in found if b.manifest.space["layout"] == layout]


def rescaled_table(table, cal: Calibration):
    """`table` (a CompiledTable with its space) with every cell priced as `cal` prices its segment:
    scale of the segment's group, plus the per-segment cost; overhead from `cal`."""
    from pynas.predictor.table import CompiledTable
    from pynas.space.catalogue import segment_by_id

    layout, space = table.layout, table.space
    first = [a.astype(np.float64).copy() for a in table.first]
    rest = [a.astype(np.float64).copy() for a in table.rest]
    head = table.head.astype(np.float64).copy()
    stem = None
    done = set()
    last, segs = None, {}
    for cell in space.table_layout().cells:
        if cell.arch is not last:
            last, segs = cell.arch, segment_by_id(cell.arch)
        seg = segs.get(cell.segment) if cell.segment is not None else None
        group = IDENTITY if seg is None else segment_group(seg.kind, seg.features())
        scale, extra = cal.scales.get(group, cal.scale), (0.0 if seg is None else cal.segment_ms)
        index = (cell.table, cell.block, cell.state, cell.chunk)
        if index in done:
            continue
        done.add(index)
        if cell.table == "first":
            first[cell.block][cell.state, cell.chunk] = scale * table.first[cell.block][cell.state, cell.chunk] + extra
        elif cell.table == "rest":
            rest[cell.block][cell.chunk] = scale * table.rest[cell.block][cell.chunk] + extra
        elif cell.table == "head":
            head[cell.state] = scale * table.head[cell.state] + extra
        else:
            stem = scale * table.stem_ms + extra
    if stem is None:
        raise ValueError("table: its space lists no constant cell (the stem)")
    return CompiledTable(layout, first, rest, head, stem, cal.overhead_ms, space)
