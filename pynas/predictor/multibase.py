"""Few-shot calibration from several bases at once, per table cell, never negative.

A new device is timed on k <= 20 networks of a space. Several *bases* price every cell of the
space's compiled table (`pynas.predictor.table`): the other devices' tables (e.g. HW-NAS-Bench's
phones, GPU and accelerators for FBNet; pynas's native kernels for MnasNet) and three *analytic*
bases read off the IR, the same for every device: kernels launched (ops other than activations,
which fuse), multiply-accumulates, and bytes moved (input, output, weights, expanded tensor).
The device is modelled per cell c of the table as

    t(c) = sum_j  w_j(c) * s_j * P_j(c)                 P_j(c) >= 0: base j's price of cell c
    w_j(c) = mu_j + sum_l delta_{j,l}[part_l(c)]        w_j(c) >= 0 (a constraint of the fit)
    T(net) = sum_{c read by net} t(c) + c0              c0 >= 0: per-network overhead

s_j puts base j in the target's units (the single scale fitting the k networks best on relative
error), so every weight is ~1 when one base alone explains the device. The deviations are per
*level* of granularity, each a partition of the cells: ``total`` (one part: the base's mixing
weight), ``op`` (`op_group`: kind, kernel, expansion, 1x1 groups, SE, pooling skip; identity,
stem and head apart),
``pos`` (layer position: the table's block slot, stem, head) and ``pos_op`` (position x op: per
cell). With the kernels base, ``total`` is a per-kernel launch cost and ``op`` one per op group.
Prior (Bayesian, so hierarchical shrinkage): delta_{j,l} ~ N(0, tau_{j,l}^2) independently,
c0 ~ N(0, (tau_c * mean(y))^2), mu_j = 1 for one *prior base* and 0 for the others; relative
errors (T - y) / y ~ N(0, sigma^2). The fit is then a Gaussian process over the k networks: with
Z_{j,l}[i, p] = s_j * sum of base j's prices of the cells of part p in network i / y_i,

    K = sum_{j,l} tau_{j,l}^2 Z_{j,l} Z_{j,l}^T + tau_c^2 ybar^2 (1/y)(1/y)^T,  C = K + sigma^2 I

its posterior mean (ridge towards the prior, shrinkage per level) needs only k x k matrices, and
so do its leave-one-out residuals and its evidence (marginal likelihood)
-log p(y) = r^T C^-1 r / 2 + log det C / 2 + const, r = 1 - m (m: the prior base's prediction).

Constraints: the posterior mean is the constrained MAP estimate once the cell weights that would
be negative are pinned at 0: each pin is a noise-free pseudo-observation "w_j(c) = 0" added to the
GP (a (k + a) x (k + a) system), its coefficient being the constraint's Lagrange multiplier; pins
are added (most violated first) and released (negative multiplier) until every w_j(c) >= 0 and
c0 >= 0 (a dual active-set method). So every cell price is >= 0 and every network > 0: the
cheapest network of the whole space is found exactly (`min_network`, dynamic programming over the
table layout) and, should it price below 1e-5 of the cheapest measured network (all its cells
pinned at 0 and c0 too), c0 is raised to make it 1% of that.

Automatic choice (bases, granularity, strengths): a grid of hyperparameters (`Grid`: prior base;
tau of the bases' mixing, of op / position / per-cell deviations, of per-op kernel costs; analytic
bases in or out; sigma^2) is scored by evidence (times the prior base's prior probability: 20%
for the analytic ones together, 80% for the device bases) and the calibrated tables of the models
carrying 99% of the posterior weight (at most `Grid.keep`) are averaged with those weights
(Bayesian model averaging; a convex combination of non-negative tables is one). Which base is the prior base is
LitePred's "most similar predictor" step, made soft: `similarity()` ranks the bases by how well
one scale of each fits the k networks (leave-one-out) and by Spearman's rho, and the fit reports
each base's share of the averaged weight. `select="loo"` instead keeps the one model of lowest
leave-one-out error: noisier at k <= 10 (bench/fewshot.py --loo measures it; choosing among
hundreds of models by k leave-one-out residuals overfits the choice, the evidence's Occam factor
and the averaging do not as much).

Why a GP and not NNLS on a design matrix: per cell and base there are hundreds of weights for
k <= 20 networks; in kernel form the fit, its leave-one-out and its evidence for every one of the
~1,700 models (288 settings of the default grid x the prior bases) cost one batched k x k
Cholesky each, and only the few averaged models need the constrained solve: ~0.1-0.3 s a fit
(FBNet, 7 bases), ~0.2-0.5 s on MnasNet (3,895 cells; `space_cells` lowers them once, ~6 s).

Measured (bench/fewshot.py, leave-one-device-out on HW-NAS-Bench, 30 draws): Spearman at k = 10
0.986 pixel3, 0.983 raspi4, 0.931 edgegpu, 0.984 eyeriss, 0.973 fpga, against 0.983, 0.982,
0.855, 0.971, 0.927 for the best single base with per-group scales (`fewshot`, method "groups").

API: `space_cells(space)` -> `Cells` (the reachable cells of the space's table, how token rows
read them, their parts and analytic prices); `table_base(name, cells, compiled)` /
`analytic_bases(cells)` make `Base`s (HW-NAS-Bench's devices: `hwnasbench.compile_device_table`); `fit(cells, bases, tokens,
measured)` -> `Fit` (`.predict(tokens)`, `.table()` a `CompiledTable`, `.report()`);
`similarity(...)`; `min_network(...)`.
"""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pynas.arch import Arch

LEVELS = ("total", "op", "pos", "pos_op")
ANALYTIC = ("kernels", "macs", "bytes")
IDENTITY = "identity"
STEM, HEAD = "stem", "head"
SELECT = ("bma", "evidence", "loo")


class MultiBaseError(ValueError):
    """Bad input to the multi-base calibration: `field` names what is wrong."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


# ---------------------------------------------------------------------------------------------
# The cells of a space's table


def op_group(kind: str, features: dict) -> str:
    """A segment's op group: kind, kernel, expansion, 1x1 groups, SE, pooling skip (e.g.
    'mbconv_k5_e6', 'mbconv_k3_e1_g2', 'dsconv_k3_e1_se_poolproj', 'convblock_k1_e1'); the stem
    and head by name. A residual add is not a group of its own (it costs little anywhere)."""
    if kind in (STEM, HEAD):
        return kind
    group = f"{kind}_k{int(features.get('kernel', 0))}_e{float(features.get('expansion', 1)):g}"
    if int(features.get("pw_groups", 1)) > 1:
        group += f"_g{int(features['pw_groups'])}"
    if features.get("se"):
        group += "_se"
    if features.get("skip") in ("pool", "poolproj"):  # an extra path (pool, 1x1 projection): its own cost
        group += f"_{features['skip']}"
    return group


@dataclass(frozen=True, eq=False)
class Cells:
    """The reachable cells of a space's compiled table, numbered 0..n-1: every ``first[b][state,
    chunk]``, ``rest[b][chunk]``, ``head[state]`` some token vector reads, and one ``stem`` cell
    (the segments every network has). Per cell: its table, indices, position (block slot name,
    'stem', 'head'), op group (`op_group`; 'identity' for a choice that lowers to nothing) and
    analytic prices (`ANALYTIC`). `reads(tokens)` gives the cells each token row reads and how
    often (a block's later repeats read its ``rest`` cell repeats - 1 times)."""

    space: object
    layout: object  # the space's TableLayout
    table: tuple[str, ...]
    block: np.ndarray
    state: np.ndarray
    chunk: np.ndarray
    position: tuple[str, ...]
    op: tuple[str, ...]
    analytic: dict  # name -> per-cell price (kernels, MACs, bytes)
    first_id: tuple[np.ndarray, ...]  # per slot: states x chunks -> cell id (-1: unreachable)
    rest_id: tuple[np.ndarray, ...]  # per slot: chunks -> cell id
    head_id: np.ndarray  # states -> cell id
    stem_id: int
    _parts: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.table)

    def parts(self, level: str) -> tuple[np.ndarray, list[str]]:
        """(part index of every cell, part names) of a level of `LEVELS`."""
        if level in self._parts:
            return self._parts[level]
        if level == "total":
            labels = ["all"] * len(self)
        elif level == "op":
            labels = list(self.op)
        elif level == "pos":
            labels = list(self.position)
        elif level == "pos_op":
            labels = [f"{p}:{o}" for p, o in zip(self.position, self.op)]
        else:
            raise MultiBaseError("level", f"expected one of {', '.join(LEVELS)}, got {level!r}")
        names = list(dict.fromkeys(labels))
        index = {n: i for i, n in enumerate(names)}
        self._parts[level] = (np.array([index[n] for n in labels], dtype=np.int64), names)
        return self._parts[level]

    def tokens(self, archs_or_tokens, field_name: str = "tokens") -> np.ndarray:
        """An N x D int64 array of valid token rows (Arch objects are encoded with the space)."""
        if isinstance(archs_or_tokens, np.ndarray):
            rows = archs_or_tokens
        else:
            items = list(archs_or_tokens)
            if items and all(isinstance(a, Arch) for a in items):
                try:
                    rows = np.array([self.space.encode(a) for a in items], dtype=np.int64)
                except ValueError as error:
                    raise MultiBaseError(field_name, str(error)) from None
            else:
                rows = np.asarray(items) if items else np.zeros((0, len(self.layout.cardinalities)), np.int64)
        cards = np.asarray(self.layout.cardinalities)
        if rows.ndim != 2 or rows.shape[1] != len(cards):
            raise MultiBaseError(field_name, f"expected an N x {len(cards)} array of token rows (or Arch objects "
                                             f"of {self.layout.space}), got shape {rows.shape}")
        if rows.dtype.kind not in "iu":
            raise MultiBaseError(field_name, f"expected integer decision indices, got dtype {rows.dtype}")
        rows = rows.astype(np.int64)
        bad = np.argwhere((rows < 0) | (rows >= cards[None, :]))
        if len(bad):
            i, d = map(int, bad[0])
            raise MultiBaseError(f"{field_name}[{i}][{d}] ({self.layout.decision_names[d]})",
                                 f"expected a value in 0..{cards[d] - 1}, got {rows[i, d]}")
        return rows

    def reads(self, archs_or_tokens) -> tuple[np.ndarray, np.ndarray]:
        """(ids, mult), both N x (2 * slots + 2): the cells each row reads and how many times
        (0 for an unused slot, whose id is then 0)."""
        rows = self.tokens(archs_or_tokens)
        layout = self.layout
        n = len(rows)
        state = np.full(n, layout.initial_state, dtype=np.int64)
        ids, mult = [np.full(n, self.stem_id, dtype=np.int64)], [np.ones(n)]
        for b, slot in enumerate(layout.blocks):
            chunk = np.zeros(n, dtype=np.int64)
            for t in slot.chunk_tokens:
                chunk = chunk * layout.cardinalities[t] + rows[:, t]
            reps = np.asarray(slot.repeats)[rows[:, slot.repeats_token] if slot.repeats_token is not None else 0]
            reps = np.broadcast_to(reps, (n,)).astype(np.int64)
            on = reps > 0
            first = self.first_id[b][state, chunk]
            later = self.rest_id[b][chunk]
            if np.any(on & (first < 0)) or np.any((reps > 1) & (later < 0)):
                raise MultiBaseError("tokens", f"a row reads a cell of slot {slot.name} the space's table does not "
                                               "have (table and space disagree)")
            ids += [np.where(on, first, 0), np.where(reps > 1, later, 0)]
            mult += [on.astype(float), np.maximum(reps - 1, 0).astype(float)]
            nxt = np.asarray(slot.next_state)[rows[:, slot.state_token] if slot.state_token is not None else 0]
            state = np.where(on, nxt, state)
        head = self.head_id[state]
        ids.append(head)
        mult.append(np.ones(n))
        return np.stack(ids, 1), np.stack(mult, 1)

    def sums(self, reads: tuple[np.ndarray, np.ndarray], prices: np.ndarray) -> np.ndarray:
        """Per row, the sum of `prices` (one per cell) over the cells it reads."""
        ids, mult = reads
        return (np.asarray(prices, dtype=np.float64)[ids] * mult).sum(1)

    def part_sums(self, reads: tuple[np.ndarray, np.ndarray], prices: np.ndarray, part: np.ndarray,
                  n_parts: int) -> np.ndarray:
        """N x n_parts: per row, the sum of `prices` over the cells it reads in each part."""
        ids, mult = reads
        n = len(ids)
        out = np.zeros(n * n_parts)
        np.add.at(out, (np.arange(n)[:, None] * n_parts + part[ids]).ravel(), (prices[ids] * mult).ravel())
        return out.reshape(n, n_parts)

    def prices_of(self, table) -> np.ndarray:
        """A CompiledTable's price of every cell (float64; stem = the table's stem_ms)."""
        if table.layout != self.layout:
            raise MultiBaseError("bases", f"expected a table of {self.layout.space}, got one of {table.layout.space}")
        out = np.empty(len(self))
        for i, (kind, b, s, c) in enumerate(zip(self.table, self.block, self.state, self.chunk)):
            out[i] = (table.first[b][s, c] if kind == "first" else table.rest[b][c] if kind == "rest"
                      else table.head[s] if kind == "head" else table.stem_ms)
        return out

    def arrays(self, prices: np.ndarray):
        """(first, rest, head, stem ms) of the space's table with these cell prices (NaN: unreachable)."""
        layout = self.layout
        n_states = len(layout.states)
        first = [np.full((n_states, layout.chunk_count(b)), np.nan) for b in range(len(layout.blocks))]
        rest = [np.full(layout.chunk_count(b), np.nan) for b in range(len(layout.blocks))]
        head = np.full(n_states, np.nan)
        stem = 0.0
        for i, (kind, b, s, c) in enumerate(zip(self.table, self.block, self.state, self.chunk)):
            if kind == "first":
                first[b][s, c] = prices[i]
            elif kind == "rest":
                rest[b][c] = prices[i]
            elif kind == "head":
                head[s] = prices[i]
            else:
                stem = float(prices[i])
        return first, rest, head, stem

    def compiled(self, prices: np.ndarray, overhead_ms: float = 0.0):
        """The CompiledTable of the space with these cell prices (float64 -> the table's float32)."""
        from pynas.predictor.table import CompiledTable

        first, rest, head, stem = self.arrays(prices)
        return CompiledTable(self.layout, first, rest, head, stem, float(overhead_ms), self.space)


def space_cells(space) -> Cells:
    """The `Cells` of `space`'s table (cached per table layout: MnasNet lowers ~2900
    architectures once, a few seconds)."""
    return _space_cells(space.table_layout().layout.space, space)


@functools.lru_cache(maxsize=8)
def _space_cells(_layout_name: str, space) -> Cells:
    from pynas.ir.ops import FLOAT_BYTES
    from pynas.space.catalogue import segment_by_id

    spec = space.table_layout()
    layout = spec.layout
    order: dict[tuple, int] = {}
    rows: list[dict] = []
    stem_features: dict[str, dict] = {}
    last, segs = None, {}
    for cell in spec.cells:
        if cell.arch is not last:
            last, segs = cell.arch, segment_by_id(cell.arch)
        seg = segs.get(cell.segment) if cell.segment is not None else None
        if cell.segment is not None and seg is None:
            raise MultiBaseError("space", f"{cell.where(layout)}: segment {cell.segment} not in {cell.arch}")
        if seg is None:
            analytic, group = {"kernels": 0.0, "macs": 0.0, "bytes": 0.0}, IDENTITY
        else:
            f = seg.features()
            analytic = {"kernels": float(sum(op.kind != "act" for op in seg.ops)), "macs": float(f["macs"]),
                        "bytes": float(f["bytes_in"] + f["bytes_out"] + f["weight_bytes"]
                                       + FLOAT_BYTES * f["mid"] * f["h"] * f["w"])}
            group = op_group(seg.kind, f)
        if cell.table == "constant":
            stem_features[cell.segment] = analytic  # summed below: the stem cell is every constant
            continue
        index = (cell.table, cell.block, cell.state, cell.chunk)
        if index in order:
            continue
        order[index] = len(rows)
        position = layout.blocks[cell.block].name if cell.table in ("first", "rest") else HEAD
        rows.append({"table": cell.table, "block": -1 if cell.block is None else cell.block,
                     "state": -1 if cell.state is None else cell.state,
                     "chunk": -1 if cell.chunk is None else cell.chunk,
                     "position": position, "op": HEAD if cell.table == "head" else group, **analytic})
    if not stem_features:
        raise MultiBaseError("space", f"{layout.space}: its table lists no constant cell (the stem)")
    rows.append({"table": "stem", "block": -1, "state": -1, "chunk": -1, "position": STEM, "op": STEM,
                 **{a: sum(v[a] for v in stem_features.values()) for a in ANALYTIC}})
    n_states = len(layout.states)
    first_id = [np.full((n_states, layout.chunk_count(b)), -1, dtype=np.int64) for b in range(len(layout.blocks))]
    rest_id = [np.full(layout.chunk_count(b), -1, dtype=np.int64) for b in range(len(layout.blocks))]
    head_id = np.full(n_states, -1, dtype=np.int64)
    for (kind, b, s, c), i in order.items():
        if kind == "first":
            first_id[b][s, c] = i
        elif kind == "rest":
            rest_id[b][c] = i
        else:
            head_id[s] = i
    return Cells(space=space, layout=layout, table=tuple(r["table"] for r in rows),
                 block=np.array([r["block"] for r in rows]), state=np.array([r["state"] for r in rows]),
                 chunk=np.array([r["chunk"] for r in rows]), position=tuple(r["position"] for r in rows),
                 op=tuple(r["op"] for r in rows), analytic={a: np.array([r[a] for r in rows]) for a in ANALYTIC},
                 first_id=tuple(first_id), rest_id=tuple(rest_id), head_id=head_id, stem_id=len(rows) - 1)


def min_network(cells: Cells, prices: np.ndarray, overhead_ms: float = 0.0) -> float:
    """The cheapest network of the whole space under these cell prices (exact:
    `pynas.predictor.table.cheapest_network`)."""
    from pynas.predictor.table import cheapest_network

    first, rest, head, stem = cells.arrays(prices)
    return cheapest_network(cells.layout, first, rest, head) + stem + overhead_ms


# ---------------------------------------------------------------------------------------------
# Bases


@dataclass(frozen=True)
class Base:
    """One base: a price >= 0 per cell (ms for a device's table; a count for an analytic base).
    `analytic`: read off the IR (`ANALYTIC`), not measured on a device."""

    name: str
    prices: np.ndarray
    analytic: bool = False
    layout: str = ""  # the table layout (space) the prices are for


def table_base(name: str, cells: Cells, table) -> Base:
    """A base from a device's CompiledTable (a table bundle's `.table`, an XGBoost bundle's
    compiled table): its cell prices. Its per-network overhead is not a cell: the fit's own c0
    takes that part."""
    prices = cells.prices_of(table)
    if not np.all(np.isfinite(prices)) or np.any(prices < 0):
        raise MultiBaseError(f"bases[{name}]", "expected every reachable cell priced >= 0")
    return Base(name, prices, False, cells.layout.space)


def analytic_bases(cells: Cells) -> list[Base]:
    """The analytic bases of the space: kernels launched, MACs, bytes moved, per cell."""
    return [Base(a, cells.analytic[a].astype(np.float64), True, cells.layout.space) for a in ANALYTIC]


# ---------------------------------------------------------------------------------------------
# The fit


@dataclass(frozen=True)
class Grid:
    """Hyperparameters scored by evidence (each tuple a set of values, all combinations).

    own: tau of the prior base's ``total`` deviation (how far its scale may move from the one
    fitted, down to 0); mix: of the other bases' ``total`` (how much of each may be mixed in);
    op, pos, pos_op: tau of the op-group, position
    and per-cell deviations of every (non-kernel) base; kernel: tau of the per-kernel launch cost
    (the kernels base's ``total``); kernel_op: of its per-op-group deviations; analytic: whether
    the MACs and bytes bases take part; noise: sigma^2 (relative error variance); const: tau_c of
    the per-network overhead in units of the mean measured network. Prior base: one of the
    analytic bases taking part with prior probability analytic_prior (split evenly among them; 0:
    never), else one of the device bases (1 - analytic_prior, split evenly): a device is more
    likely explained by another device than by a count. keep: at most this many models averaged;
    mass: the posterior weight they must carry."""

    own: tuple = (0.3,)
    mix: tuple = (0.3, 1.0)
    op: tuple = (0.0, 0.03, 0.1)
    pos: tuple = (0.0, 0.03)
    pos_op: tuple = (0.0, 0.03)
    kernel: tuple = (1.0,)
    kernel_op: tuple = (0.0, 0.1)
    kernel_pos: tuple = (0.0,)
    analytic: tuple = (False, True)
    noise: tuple = (1e-4, 1e-3, 1e-2)
    const: tuple = (0.3,)
    analytic_prior: float = 0.2
    keep: int = 8
    mass: float = 0.99

    def __post_init__(self):
        for name in ("own", "mix", "op", "pos", "pos_op", "kernel", "kernel_op", "kernel_pos", "noise", "const"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                    for v in values):
                raise MultiBaseError(f"grid.{name}", f"expected a non-empty tuple of numbers >= 0, got {values!r}")
        if min(self.noise) <= 0:
            raise MultiBaseError("grid.noise", f"expected variances > 0, got {self.noise!r}")
        if not self.analytic or not all(isinstance(v, bool) for v in self.analytic):
            raise MultiBaseError("grid.analytic", f"expected a non-empty tuple of booleans, got {self.analytic!r}")
        if not 0 <= self.analytic_prior < 1:
            raise MultiBaseError("grid.analytic_prior",
                                 f"expected a probability in [0, 1), got {self.analytic_prior!r}")
        if not isinstance(self.keep, int) or self.keep < 1:
            raise MultiBaseError("grid.keep", f"expected an integer >= 1, got {self.keep!r}")
        if not 0 < self.mass <= 1:
            raise MultiBaseError("grid.mass", f"expected a share in (0, 1], got {self.mass!r}")

    def settings(self) -> list[dict]:
        names = ("own", "mix", "op", "pos", "pos_op", "kernel", "kernel_op", "kernel_pos", "analytic", "noise",
                 "const")
        return [dict(zip(names, values)) for values in itertools.product(*(getattr(self, n) for n in names))]


DEFAULT_GRID = Grid()


@dataclass
class Fit:
    """A calibration: `prices` (ms per cell of `cells`, all >= 0) and `overhead_ms` (>= 0), so
    a network is the sum of the cells it reads + overhead_ms; `models` the averaged models
    (hyperparameters, weight, evidence, leave-one-out RMSPE %), `base_weight` each base's share
    of the calibrated latency of the k networks, `similarity` the bases ranked (`similarity`)."""

    cells: Cells
    prices: np.ndarray
    overhead_ms: float
    k: int
    bases: list[str]
    models: list[dict] = field(default_factory=list)
    base_weight: dict = field(default_factory=dict)
    similarity: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def predict(self, archs_or_tokens) -> np.ndarray:
        """ms per network (token rows or Arch objects of the space), float64."""
        return self.cells.sums(self.cells.reads(archs_or_tokens), self.prices) + self.overhead_ms

    def table(self):
        """The calibrated CompiledTable (the 30M archs/s path; save it in a table bundle)."""
        return self.cells.compiled(self.prices, self.overhead_ms)

    def report(self) -> dict:
        """JSON-ready summary for a bundle's report."""
        def plain(value):  # JSON has no inf / nan
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            if isinstance(value, float) and not math.isfinite(value):
                return None
            return value

        return plain({"method": "multibase", "k": self.k, "bases": self.bases, "overhead_ms": self.overhead_ms,
                      "base_weight": self.base_weight, "similarity": self.similarity, "models": self.models,
                      **self.info})


def _check_measured(measured, k_rows: int) -> np.ndarray:
    y = np.asarray(measured, dtype=np.float64) if not isinstance(measured, np.ndarray) else measured.astype(np.float64)
    if y.ndim != 1 or len(y) != k_rows:
        raise MultiBaseError("measured", f"expected one latency per network ({k_rows}), got shape {y.shape}")
    bad = np.flatnonzero(~np.isfinite(y) | (y <= 0))
    if len(bad):
        raise MultiBaseError(f"measured[{bad[0]}]", f"expected a finite latency in ms > 0, got {y[bad[0]]!r}")
    return y


def _check_bases(cells: Cells, bases: Sequence[Base]) -> list[Base]:
    bases = list(bases)
    if not bases:
        raise MultiBaseError("bases", "expected at least one base")
    for b in bases:
        if not isinstance(b, Base):
            raise MultiBaseError("bases", f"expected Base objects, got {type(b).__name__}")
    names = [b.name for b in bases]
    if len(set(names)) != len(names):
        raise MultiBaseError("bases", f"expected distinct names, got {names}")
    for b in bases:
        if b.layout and b.layout != cells.layout.space:
            raise MultiBaseError(f"bases[{b.name}]", f"expected a base of {cells.layout.space}, got one of {b.layout}")
        p = np.asarray(b.prices)
        if p.shape != (len(cells),):
            raise MultiBaseError(f"bases[{b.name}]", f"expected {len(cells)} cell prices ({cells.layout.space}), "
                                                     f"got shape {p.shape}")
        if not np.all(np.isfinite(p)) or np.any(p < 0):
            raise MultiBaseError(f"bases[{b.name}]", "expected finite cell prices >= 0")
    if all(b.analytic for b in bases):
        raise MultiBaseError("bases", "expected at least one device base (all are analytic)")
    return bases


def _loo_scale(r: np.ndarray) -> np.ndarray:
    """Leave-one-out relative errors of t = s * base (s fitted on relative error without the row)."""
    s1, s2 = r.sum(), r @ r
    den = s2 - r * r
    s = np.where(den > 0, (s1 - r) / np.where(den > 0, den, 1), 0.0)
    return s * r - 1


def similarity(cells: Cells, bases: Sequence[Base], archs_or_tokens, measured) -> list[dict]:
    """The bases ranked by how well each alone fits the k networks (LitePred's "most similar
    predictor"): leave-one-out RMSPE % of one fitted scale, and Spearman's rho of its prices
    with the measurements. Best first."""
    from pynas.predictor.metrics import spearman

    reads = cells.reads(archs_or_tokens)
    y = _check_measured(measured, len(reads[0]))
    out = []
    for b in bases:
        tot = cells.sums(reads, b.prices)
        loo = float(100 * np.sqrt(np.mean(_loo_scale(tot / y) ** 2))) if len(y) > 1 and tot.any() else math.inf
        rho = spearman(tot, y) if len(y) > 2 else float("nan")
        out.append({"base": b.name, "analytic": b.analytic, "loo_rmspe": loo, "spearman": rho})
    return sorted(out, key=lambda d: d["loo_rmspe"])


@dataclass
class _Terms:
    """Per (base, level) term: the normalised part sums Z (k x P), their Gram matrix, the cell ->
    part map; per base its scale s and prior-mean prediction m = s * total / y."""

    base: list[int]
    level: list[str]
    Z: list[np.ndarray]
    gram: np.ndarray  # T x k x k
    part: list[np.ndarray]
    scale: np.ndarray
    m: np.ndarray  # bases x k


def _terms(cells: Cells, bases: list[Base], reads, y: np.ndarray, levels) -> _Terms:
    w = 1.0 / y
    scale, m = [], []
    out = _Terms([], [], [], np.zeros(0), [], np.zeros(0), np.zeros(0))
    grams = []
    for j, b in enumerate(bases):
        r = cells.sums(reads, b.prices) * w
        s = float(r.sum() / (r @ r)) if r @ r > 0 else 0.0
        scale.append(s)
        m.append(s * r)
        for level in levels:
            part, names = cells.parts(level)
            Z = cells.part_sums(reads, s * b.prices, part, len(names)) * w[:, None]
            out.base.append(j)
            out.level.append(level)
            out.Z.append(Z)
            out.part.append(part)
            grams.append(Z @ Z.T)
    out.gram = np.stack(grams)
    out.scale, out.m = np.array(scale), np.stack(m)
    return out


def _setting_taus(settings: list[dict], bases: list[Base], terms: _Terms) -> np.ndarray:
    """tau of every term (columns) under each grid setting (rows), before the prior base's own
    ``total`` tau is set (0: the term is off). The kernels base has its own taus; the MACs and
    bytes bases are off unless the setting's `analytic`."""
    out = np.zeros((len(settings), len(terms.base)))
    for t, (j, level) in enumerate(zip(terms.base, terms.level)):
        b = bases[j]
        if b.analytic and b.name == "kernels":
            name = {"total": "kernel", "op": "kernel_op", "pos": "kernel_pos"}.get(level)
            out[:, t] = [s[name] if name else 0.0 for s in settings]
        else:
            name = "mix" if level == "total" else level
            out[:, t] = [s[name] if (s["analytic"] or not b.analytic) else 0.0 for s in settings]
    return out


def _constrained(cells: Cells, bases: list[Base], terms: _Terms, taus: np.ndarray, prior: int, noise: float,
                 const: float, y: np.ndarray, max_iter: int = 400, tol: float = 1e-7
                 ) -> tuple[np.ndarray, float, dict]:
    """The MAP cell weights w_j(c) >= 0 and overhead c0 >= 0 of one model (module docstring: a
    dual active set of noise-free pseudo-observations w_j(c) = 0, most violated added first, one
    with a negative multiplier released). Returns (cell prices, c0, info)."""
    k, n = len(y), len(cells)
    w = 1.0 / y
    var_c = (const * float(y.mean())) ** 2
    on = [t for t in range(len(taus)) if taus[t] > 0]
    K = np.einsum("t,tij->ij", taus[on] ** 2, terms.gram[on]) if on else np.zeros((k, k))
    K = K + var_c * np.outer(w, w) + noise * np.eye(k)
    js = sorted({terms.base[t] for t in on} | {prior})  # bases with a weight
    # Every constraint functional g, stacked: w_j(c) for j in js, c in cells (block b = js.index(j)),
    # then c0. Prior means, Cov(g, f) with the k data rows, which ones are constraints at all.
    mean = np.r_[np.repeat([1.0 if j == prior else 0.0 for j in js], n), 0.0]
    cov_f = np.zeros((len(js) * n + 1, k))
    for b, j in enumerate(js):
        for t in on:
            if terms.base[t] == j:
                cov_f[b * n:(b + 1) * n] += taus[t] ** 2 * terms.Z[t][:, terms.part[t]].T
    cov_f[-1] = var_c * w
    own = {j: [t for t in on if terms.base[t] == j] for j in js}
    # One constraint per distinct functional: cells of a base with the same part at every level
    # of its have the same weight (pinning one pins all; two pins of one functional would make
    # the system singular), and a cell the base prices at 0 needs none.
    checked = np.zeros(len(mean), dtype=bool)
    checked[-1] = True
    for b, j in enumerate(js):
        priced = np.flatnonzero(bases[j].prices > 0)
        signature = np.stack([terms.part[t][priced] for t in own[j]], 1) if own[j] else np.zeros((len(priced), 1))
        _, first = np.unique(signature, axis=0, return_index=True)
        checked[b * n + priced[first]] = True

    def column(g: int) -> np.ndarray:  # Cov(every functional, functional g)
        col = np.zeros(len(mean))
        if g == len(mean) - 1:
            col[-1] = var_c
            return col
        b, c = divmod(g, n)
        for t in own[js[b]]:
            part = terms.part[t]
            col[b * n:(b + 1) * n] += taus[t] ** 2 * (part == part[c])
        return col

    active: list[int] = []
    cols = np.zeros((len(mean), 0))
    iterations = released = 0
    while True:
        iterations += 1
        a = len(active)
        C = np.empty((k + a, k + a))
        C[:k, :k] = K
        C[:k, k:] = cov_f[active].T
        C[k:, :k] = cov_f[active]
        C[k:, k:] = cols[active] + 1e-10 * np.eye(a)
        rhs = np.r_[1.0 - terms.m[prior], -mean[active]]
        try:
            alpha = np.linalg.solve(C, rhs)
        except np.linalg.LinAlgError:
            alpha = np.linalg.lstsq(C, rhs, rcond=None)[0]
        if a and alpha[k:].min() < -tol and iterations < max_iter:
            drop = int(np.argmin(alpha[k:]))
            active.pop(drop)
            cols = np.delete(cols, drop, axis=1)
            released += 1
            continue
        g = mean + cov_f @ alpha[:k] + cols @ alpha[k:]
        worst = np.where(checked, g, np.inf)
        worst[active] = np.inf
        add = int(np.argmin(worst))
        if worst[add] >= -tol or iterations >= max_iter:
            break
        active.append(add)
        cols = np.column_stack([cols, column(add)])
    prices = np.zeros(n)
    weights = {}
    for b, j in enumerate(js):
        wj = np.maximum(g[b * n:(b + 1) * n], 0.0) * terms.scale[j]
        weights[bases[j].name] = wj
        prices += wj * bases[j].prices
    info = {"pinned": len(active), "iterations": iterations, "released": released,
            "converged": iterations < max_iter, "weights": weights}
    return prices, max(float(g[-1]), 0.0), info


def fit(cells: Cells, bases: Sequence[Base], archs_or_tokens, measured, *, grid: Grid | None = None,
        select: str = "bma", levels: Sequence[str] = LEVELS) -> Fit:
    """Calibrate to k >= 2 networks measured on the target device (module docstring).

    cells: `space_cells(space)`; bases: device bases (`table_base`) and, optionally, the analytic
    ones (`analytic_bases`; the kernels base carries the per-kernel launch cost); archs_or_tokens:
    the k networks (token rows or Arch objects of the space); measured: their ms (finite, > 0);
    grid: the hyperparameters scored (`Grid`); select: "bma" (evidence-weighted average of the
    best models), "evidence" (the single most probable model) or "loo" (the single model of
    lowest leave-one-out error). Errors: `MultiBaseError` naming the field."""
    if select not in SELECT:
        raise MultiBaseError("select", f"expected one of {', '.join(SELECT)}, got {select!r}")
    grid = DEFAULT_GRID if grid is None else grid
    for level in levels:
        if level not in LEVELS:
            raise MultiBaseError("levels", f"expected a subset of {', '.join(LEVELS)}, got {level!r}")
    if "total" not in levels:
        raise MultiBaseError("levels", "expected 'total' among the levels (the bases' own scales)")
    bases = _check_bases(cells, bases)
    reads = cells.reads(archs_or_tokens)
    k = len(reads[0])
    if k < 2:
        raise MultiBaseError("measured", f"expected at least 2 measured networks, got {k}")
    y = _check_measured(measured, k)
    sims = similarity(cells, bases, archs_or_tokens if isinstance(archs_or_tokens, np.ndarray) else
                      cells.tokens(archs_or_tokens), y)
    terms = _terms(cells, bases, reads, y, levels)
    usable = [j for j, b in enumerate(bases) if terms.scale[j] > 0]
    if not any(not bases[j].analytic for j in usable):
        raise MultiBaseError("bases", "expected a device base that prices the measured networks above 0")
    # Every model (grid setting x prior base), batched: K, Cholesky, alpha, evidence, leave-one-out.
    settings = [s for s in grid.settings() if all(s[l] == 0 for l in ("op", "pos", "pos_op") if l not in levels)
                and (s["kernel_op"] == 0 or "op" in levels) and (s["kernel_pos"] == 0 or "pos" in levels)]
    # Which base is the prior one: a device base, or (prior probability grid.analytic_prior in all)
    # an analytic one taking part in the model.
    n_analytic = sum(1 for j in usable if bases[j].analytic)
    n_device = sum(1 for j in usable if not bases[j].analytic)
    p_a = grid.analytic_prior if n_analytic else 0.0
    log_prior = np.array([math.log((1 - p_a) / n_device) if not b.analytic else
                          math.log(p_a / n_analytic) if p_a > 0 else -math.inf for b in bases])
    base_taus = _setting_taus(settings, bases, terms)
    own_term = {j: t for t, (j, level) in enumerate(zip(terms.base, terms.level)) if level == "total"}
    rows, priors = [], []
    for si, s in enumerate(settings):
        for j in usable:
            b = bases[j]
            if np.isfinite(log_prior[j]) and (not b.analytic or b.name == "kernels" or s["analytic"]):
                rows.append(si)
                priors.append(j)
    if not rows:
        raise MultiBaseError("grid", "expected at least one setting compatible with the levels")
    tau = base_taus[rows]
    tau[np.arange(len(rows)), [own_term[j] for j in priors]] = [settings[si]["own"] for si in rows]
    # One model written two ways (e.g. analytic on and off without MACs/bytes bases) counts once.
    key = np.column_stack([tau, priors, [settings[si]["noise"] for si in rows], [settings[si]["const"] for si in rows]])
    _, first = np.unique(key, axis=0, return_index=True)
    first = np.sort(first)
    models_sj = [(settings[rows[i]], priors[i]) for i in first]
    tau = tau[first]
    prior = np.array([j for _, j in models_sj])
    w = 1.0 / y
    ybar = float(y.mean())
    const = np.array([s["const"] for s, _ in models_sj])
    noise = np.array([s["noise"] for s, _ in models_sj])
    Cs = (np.einsum("mt,tij->mij", tau ** 2, terms.gram) + (const ** 2)[:, None, None] * ybar ** 2 * np.outer(w, w)
          + noise[:, None, None] * np.eye(k))
    L = np.linalg.cholesky(Cs)
    logdet = 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
    Ci = np.linalg.inv(Cs)
    R = 1.0 - terms.m[prior]  # M x k: what the prior base leaves to explain, relative
    alpha = np.einsum("mij,mj->mi", Ci, R)
    evidence = 0.5 * np.einsum("mi,mi->m", R, alpha) + 0.5 * logdet
    loo = np.sqrt(np.mean((alpha / np.diagonal(Ci, axis1=1, axis2=2)) ** 2, axis=1))
    score = evidence - log_prior[prior] if select != "loo" else loo
    order = np.argsort(score)
    if select == "bma":
        e = score[order]
        weights = np.exp(-(e - e[0]))
        weights /= weights.sum()
        n = min(grid.keep, int(np.searchsorted(np.cumsum(weights), grid.mass) + 1))
        chosen, pi = order[:n], weights[:n] / weights[:n].sum()
    else:
        chosen, pi = order[:1], np.ones(1)
    prices = np.zeros(len(cells))
    c0 = 0.0
    models, base_weight = [], {b.name: 0.0 for b in bases}
    net_total = 0.0
    for m, p in zip(chosen, pi):
        s, j = models_sj[m]
        cp, cc, info = _constrained(cells, bases, terms, tau[m], j, s["noise"], s["const"], y)
        prices += p * cp
        c0 += p * cc
        for name, cw in info.pop("weights").items():
            share = float(p * np.mean(cells.sums(reads, cw * bases[[b.name for b in bases].index(name)].prices) / y))
            base_weight[name] += share
            net_total += share
        hyper = {name: bool(v) if isinstance(v, (bool, np.bool_)) else float(v) for name, v in s.items()}
        models.append({"weight": float(p), "prior_base": bases[j].name, **hyper, "evidence": float(evidence[m]),
                       "loo_rmspe": float(100 * loo[m]), **info})
    base_weight = {n: v / net_total for n, v in base_weight.items()} if net_total > 0 else base_weight
    floor = 0.01 * float(y.min())
    low = min_network(cells, prices, c0)
    info = {"select": select, "models_scored": len(models_sj), "min_network_ms": low}
    if not low > 0 or low < floor * 1e-3:
        c0 += floor - low
        info["overhead_raised_ms"] = floor - low
        info["min_network_ms"] = min_network(cells, prices, c0)
    return Fit(cells, prices, float(c0), k, [b.name for b in bases], models, base_weight, sims, info)
