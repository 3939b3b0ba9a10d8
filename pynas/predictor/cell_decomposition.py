"""HW-NAS-Bench's NAS-Bench-201 latencies decomposed per op and per edge, and few-shot calibration
of a cell-space predictor to a new device from k <= 20 networks with those devices as bases.

HW-NAS-Bench timed (pixel3, raspi4) or simulated (eyeriss, fpga) each of NAS-Bench-201's 15,625
networks whole. The cell is the same in all 15 cells of the skeleton, so if a device were additive
a network's latency would be

    latency(cell) = base + sum over edges e of price[e, op(e)]                      ("additive")

(base: stem, the two ResNet blocks, head, and everything the cell costs whatever its ops; price: the
15 copies of edge e's op, in ms). `fit(tokens, ms)` fits it by non-negative least squares on
relative error (what RMSPE and "within 10 %" score) with every price and the base >= 0: each op
has a cost, none is a saving. The parametrisation (all 5 ops per edge plus a base) is redundant by
one constant per edge, so after the fit each edge's cheapest op is moved to 0 ms and the base takes
it: predictions are unchanged and the prices read as "ms more than this edge's cheapest op". (On
pixel3 and raspi4, which are not additive, the fit puts the base near 0 and prices the cheapest
connected cells at ~0 ms, pulled down by the many cheap networks whose dead branches were dropped;
`additivity` reports the least latency each model gives a cell of the regime.)

Networks whose cell disconnects input from output (every path crosses a ``none``: 341 of 15,625)
take 0.003-15 ms on the phones against 1-37 ms for connected ones, by other rules (the best
additive fit of them alone leaves 81 % of their RMS). They are a second *regime* with its own base
and prices, fitted on them alone and chosen by `connected(tokens)`; an op a regime never has on an
edge (edge0to3 is always none in a disconnected cell) has no price (NaN, null in JSON) and a cell
needing it is refused. The simulators (eyeriss, fpga) price them like any other.

How additive each device is (`additivity`, bench/nb201_decomposition.py, all 15,625 networks):
eyeriss and fpga exactly (their simulators sum per-layer costs: residual 0; their prices are even
the same on every edge), pixel3 and raspi4 far from it: the best additive fit in ms leaves 14 %
(pixel3) and 13 % (raspi4) of the connected cells' RMS latency unexplained (1 - R^2 0.094, 0.081);
the non-negative relative fit's RMSPE is 29 % and 31 %. The residuals of the two phones correlate
0.86: the non-additivity is structure of the converted networks both ran (dead branches dropped
or not), not timing noise. The ``pairwise`` variant adds to the connected regime one term per pair
of edges and pair of not-none ops (15 x 16 = 240 terms, any sign: an interaction saves as often as
it costs; ridge 1 % of each term's weight), fitted jointly with the prices, and brings the RMSPE
to 13.5 % and 14.0 % (Kendall tau 0.67-0.69 -> 0.86); what remains is neither additive nor pairwise.

Few-shot calibration (`calibrate`): a new device timed on k networks is modelled as

    t(cell) = sum_j w_j * B_j(cell) + c + sum_o d_o n_o(cell) + sum_e d_{e,op(e)}
              w_j >= 0, c >= 0; d: corrections of any sign, per op (n_o: its count) and per edge

over *bases* B_j: the HW-NAS-Bench devices' decompositions (`Basis.of_decomposition`: t is then
itself a decomposition, prices sum_j w_j price_j + d, base sum_j w_j base_j + c) or their measured
latencies (`Basis.of_measured`), or any NAS-Bench-201 lookup bundle (`Basis.of_bundle`). Each base is first put in the target's units (its best single
scale on the k networks); the weights are ridge-shrunk towards a prior: the *nearest* base (lowest
leave-one-out error of one scale; k = 2: in-sample; k = 1: nearest in magnitude) at weight 1 (k = 1:
all bases equally), the corrections towards 0 (per-op ones 10x less than per-edge ones); weights
and corrections are fitted jointly (the corrections eliminated in closed form, the weights by
NNLS). Method ``bases``: no corrections; ``bases+prices``: their strengths by leave-one-out over
the k networks (the combination alone among the candidates, and only strengths that leave every
one of the 15,625 cells > 0 ms); ``auto`` (the default): ``bases+prices`` or ``scratch`` (the
additive model from the k networks alone, per-edge prices shrunk towards per-op ones), whichever
has the lower leave-one-out error; ``scale``: the nearest base's latency times one factor.

Measured (bench/nb201_decomposition.py, leave-one-device-out, median over draws of k connected
cells, accuracy over all 15,284 connected cells): eyeriss and fpga, being additive, are learnt
from k = 10 (auto: RMSPE 0.4 %, all within 10 %; k = 5: 6 % and 11 %), where scaling the nearest
device stays at ~23 %; pixel3 and raspi4 are capped by how well the other phone ranks them (Kendall tau 0.84):
auto reaches RMSPE 16-20 % at k = 10-20, ~50 % within 10 %, as scaling raspi4 / pixel3 does; a
combination of the bases' additive price tables alone does worse (RMSPE 31-34 %).

`save_calibrated(folder, calibration, ...)` writes the calibrated latency of every cell as a
lookup bundle (`pynas.predictor.lookup`: what `latency_model("DIR", "nb201")` and a search load),
its report holding the calibration (weights, prices, corrections) and the k networks:

    from pynas.predictor import cell_decomposition as cd
    bases = cd.hwnasbench_bases(exclude="raspi4", source="pairwise")   # pixel3, eyeriss, fpga
    cal = cd.calibrate(bases, tokens, measured_ms)                     # tokens: k x 6, ms: k
    cal.predict(tokens_of_any_cells)
    cd.save_calibrated("predictors/my-board", cal, device={"name": "my-board"})

(`pynas cellfewshot MEASURED.csv -o DIR` does the same from a CSV.)
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

import numpy as np

from pynas.predictor.metrics import accuracy, kendall, nnls

VARIANTS = ("additive", "pairwise")
REGIMES = ("connected", "disconnected")
METHODS = ("auto", "bases+prices", "bases", "scale", "scratch")
RIDGE_GRID = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)  # relative to the k networks' squared relative error
PAIR_RIDGE = 1e-2  # the pairwise terms' ridge, relative to their diagonal of the normal equations
FORMAT, VERSION = "pynas.cell-decomposition", 1


def _space():
    from pynas.space import nb201

    return nb201


def check_tokens(tokens) -> np.ndarray:
    """`tokens` as an N x 6 int64 array of NAS-Bench-201 op indices (ValueError naming row and edge)."""
    return _space()._token_rows(tokens).astype(np.int64)


def connected(tokens) -> np.ndarray:
    """Whether each cell connects its input (node 0) to its output (node 3) through edges that are
    not ``none``: N booleans."""
    rows = check_tokens(tokens)
    nb = _space()
    reached = np.zeros((len(rows), nb.NODES), dtype=bool)
    reached[:, 0] = True
    for e, (i, j) in enumerate(nb.EDGES):  # edges are in topological order of their target
        reached[:, j] |= reached[:, i] & (rows[:, e] != 0)
    return reached[:, nb.NODES - 1]


def _onehot(rows: np.ndarray) -> np.ndarray:
    """N x 30: edge e's op o at column 5 e + o."""
    nb = _space()
    x = np.zeros((len(rows), len(nb.EDGES) * len(nb.OPS)))
    x[np.arange(len(rows))[:, None], np.arange(len(nb.EDGES)) * len(nb.OPS) + rows] = 1.0
    return x


PAIRS = tuple(itertools.combinations(range(6), 2))
PAIR_OPS = 4  # ops other than none: an interaction with a none edge is that edge's price


def _pairs(rows: np.ndarray) -> np.ndarray:
    """N x 240: edges (e, f) (PAIRS order) carrying ops (o, p), both not none."""
    x = np.zeros((len(rows), len(PAIRS) * PAIR_OPS * PAIR_OPS))
    for k, (e, f) in enumerate(PAIRS):
        both = (rows[:, e] > 0) & (rows[:, f] > 0)
        col = k * PAIR_OPS * PAIR_OPS + (rows[:, e] - 1) * PAIR_OPS + (rows[:, f] - 1)
        x[np.flatnonzero(both), col[both]] = 1.0
    return x


@dataclass
class Regime:
    """One regime's model: base (ms), prices (6 edges x 5 ops, ms), pairs (15 x 4 x 4 ms) or None."""
    base: float
    prices: np.ndarray
    pairs: np.ndarray | None = None
    networks: int = 0  # how many networks it was fitted on

    def predict(self, rows: np.ndarray) -> np.ndarray:
        unpriced = np.isnan(self.prices[np.arange(rows.shape[1]), rows])
        if unpriced.any():
            r, e = (int(v) for v in np.argwhere(unpriced)[0])
            nb = _space()
            raise ValueError(f"tokens: row {r}: {nb.EDGE_NAMES[e]} = {nb.OPS[rows[r, e]]}: no price (no cell of the fit "
                             f"had it in this regime)")
        out = self.base + _onehot(rows) @ np.nan_to_num(self.prices).ravel()
        if self.pairs is not None:
            out = out + _pairs(rows) @ self.pairs.ravel()
        return out

    def to_json(self) -> dict:
        prices = [[None if np.isnan(v) else float(v) for v in row] for row in self.prices]  # JSON has no NaN
        return {"base_ms": self.base, "prices_ms": prices, "networks": self.networks,
                "pairs_ms": None if self.pairs is None else self.pairs.tolist()}

    @classmethod
    def from_json(cls, data, where: str) -> Regime:
        if not isinstance(data, dict) or set(data) != {"base_ms", "prices_ms", "networks", "pairs_ms"}:
            raise ValueError(f"{where}: expected keys base_ms, networks, pairs_ms, prices_ms, got {_keys(data)}")
        base = _finite(data["base_ms"], f"{where}.base_ms", ())
        prices = _finite(data["prices_ms"], f"{where}.prices_ms", (6, 5), missing=True)
        pairs = None if data["pairs_ms"] is None else _finite(data["pairs_ms"], f"{where}.pairs_ms",
                                                              (len(PAIRS), PAIR_OPS, PAIR_OPS))
        networks = data["networks"]
        if not isinstance(networks, int) or isinstance(networks, bool) or networks < 0:
            raise ValueError(f"{where}.networks: expected a count >= 0, got {networks!r}")
        return cls(float(base), prices, pairs, networks)


def _keys(data) -> str:
    return ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__


def _finite(value, where: str, shape: tuple, missing: bool = False) -> np.ndarray:
    """`value` as a float array of `shape`, every entry finite (or null, read as NaN, if `missing`)."""
    try:
        array = np.array(value, dtype=np.float64)  # None -> nan
        if not missing and any(v is None for v in np.ravel(np.array(value, dtype=object))):
            array = None
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != shape or np.isinf(array).any() or (np.isnan(array).any() and not missing) or \
            (missing and np.isnan(array).any() and any(isinstance(v, float) and np.isnan(v)
                                                        for v in np.ravel(np.array(value, dtype=object)))):
        what = "finite numbers (or null: no price)" if missing else "finite numbers"
        raise ValueError(f"{where}: expected {what} of shape {shape}, got {str(value)[:60]}")
    return array


@dataclass
class Decomposition:
    """A device's per-op, per-edge latency model over NAS-Bench-201 cells, one `Regime` per
    connectivity (`connected`); `predict(tokens)` in ms."""
    device: str
    variant: str
    regimes: dict[str, Regime]

    def predict(self, tokens) -> np.ndarray:
        rows = check_tokens(tokens)
        out = np.empty(len(rows))
        joined = connected(rows)
        for name, mask in (("connected", joined), ("disconnected", ~joined)):
            if not mask.any():
                continue
            if name not in self.regimes:
                i = int(np.argmax(mask))
                raise ValueError(f"tokens: row {i}: a {name} cell, but decomposition {self.device!r} was fitted on no "
                                 f"{name} cells")
            out[mask] = self.regimes[name].predict(rows[mask])
        return out

    def prices_table(self, regime: str = "connected") -> list[dict]:
        """Rows {"edge", <op>: ms, ...} and a last row {"edge": "base", "ms": base}."""
        nb = _space()
        r = self.regimes[regime]
        rows = [{"edge": name, **{op: float(r.prices[e, o]) for o, op in enumerate(nb.OPS)}}
                for e, name in enumerate(nb.EDGE_NAMES)]
        return rows + [{"edge": "base", "ms": r.base}]

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "device": self.device, "variant": self.variant,
                "units": "ms", "ops": list(_space().OPS), "edges": list(_space().EDGE_NAMES),
                "regimes": {name: r.to_json() for name, r in self.regimes.items()}}

    @classmethod
    def from_json(cls, data) -> Decomposition:
        """Read strictly: ValueError naming the field and what was expected."""
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"decomposition: expected format {FORMAT!r} version {VERSION}, got "
                             f"{(data.get('format'), data.get('version')) if isinstance(data, dict) else data!r}")
        if data.get("variant") not in VARIANTS:
            raise ValueError(f"decomposition.variant: expected one of {', '.join(VARIANTS)}, got {data.get('variant')!r}")
        if data.get("ops") != list(_space().OPS) or data.get("edges") != list(_space().EDGE_NAMES):
            raise ValueError("decomposition.ops/edges: expected NAS-Bench-201's ops and edges in pynas's order")
        if not isinstance(data.get("device"), str) or data.get("units") != "ms":
            raise ValueError("decomposition.device/units: expected a device name and units 'ms'")
        regimes = data.get("regimes")
        if not isinstance(regimes, dict) or not regimes or not set(regimes) <= set(REGIMES):
            raise ValueError(f"decomposition.regimes: expected some of {', '.join(REGIMES)}, got {_keys(regimes)}")
        return cls(data["device"], data["variant"],
                   {name: Regime.from_json(value, f"decomposition.regimes.{name}") for name, value in regimes.items()})


def _check_measured(ms, n: int, what: str = "ms") -> np.ndarray:
    y = np.asarray(ms, dtype=np.float64)
    if y.shape != (n,):
        raise ValueError(f"{what}: expected one latency per cell ({n}), got shape {y.shape}")
    bad = ~(np.isfinite(y) & (y > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what}[{i}]: expected a latency in ms > 0, got {float(y[i])!r}")
    return y


def _fit_additive(rows: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Base and 6 x 5 prices, all >= 0, minimising the relative error; canonical (each edge's
    cheapest op 0). An op no fitted cell has on an edge gets no price (NaN: `Regime.predict`
    refuses a cell that needs it; in the disconnected regime edge0to3 is always none)."""
    onehot = _onehot(rows)
    seen = onehot.any(axis=0)
    a = np.hstack([np.ones((len(rows), 1)), onehot[:, seen]]) / y[:, None]
    # The one-hot columns of an edge sum to the intercept's: a tiny ridge makes the optimum unique
    # (Lawson-Hanson stalls on redundant columns); its bias is ~1e-9 of a price.
    theta = nnls(a, np.ones(len(y)), ridge=1e-12 * float(np.einsum("ij,ij->", a, a)) / a.shape[1])
    prices = np.full(onehot.shape[1], np.nan)
    prices[seen] = theta[1:]
    prices = prices.reshape(6, 5)
    cheapest = np.nanmin(prices, axis=1)  # every edge carries some op in every cell
    return float(theta[0] + cheapest.sum()), prices - cheapest[:, None]


def _fit_pairwise(rows: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Base, prices and pairwise terms jointly, least squares on relative error, a small ridge on
    the pairwise terms only. Unconstrained in sign: an interaction (two ops the converter fuses or
    prunes together) is a saving as often as a cost, and the prices absorb part of it; what must
    hold is that every cell's latency is > 0 (checked by `fit` over all 15,625)."""
    onehot = _onehot(rows)
    seen = onehot.any(axis=0)
    x = np.hstack([np.ones((len(rows), 1)), onehot[:, seen], _pairs(rows)]) / y[:, None]
    main = 1 + int(seen.sum())
    gram = x.T @ x
    scale = np.diag(gram)
    # Ridge relative to each term's own weight in the fit; a tiny one on the main terms too (the
    # one-hot columns are redundant by one per edge) and on pairs no cell has (kept at 0).
    penalty = np.r_[np.full(main, 1e-9), np.full(x.shape[1] - main, PAIR_RIDGE)] * scale + 1e-9 * scale.mean()
    theta = np.linalg.solve(gram + np.diag(penalty), x.T @ np.ones(len(y)))
    prices = np.full(onehot.shape[1], np.nan)
    prices[seen] = theta[1:main]
    prices = prices.reshape(6, 5)
    cheapest = np.nanmin(prices, axis=1)
    return (float(theta[0] + cheapest.sum()), prices - cheapest[:, None],
            theta[main:].reshape(len(PAIRS), PAIR_OPS, PAIR_OPS))


def fit(tokens, ms, variant: str = "additive", device: str = "") -> Decomposition:
    """Decompose `ms` (one latency per row of `tokens`, N x 6) into per-edge, per-op prices, one
    regime for connected cells and one for disconnected ones (the latter always additive: 341
    networks at most, fewer than the pairwise terms)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(VARIANTS)}, got {variant!r}")
    rows = check_tokens(tokens)
    if not len(rows):
        raise ValueError("tokens: expected at least one cell, got none")
    y = _check_measured(ms, len(rows))
    joined = connected(rows)
    regimes = {}
    for name, mask in (("connected", joined), ("disconnected", ~joined)):
        if not mask.any():
            continue
        if variant == "pairwise" and name == "connected":
            base, prices, pairs = _fit_pairwise(rows[mask], y[mask])
        else:
            (base, prices), pairs = _fit_additive(rows[mask], y[mask]), None
        regimes[name] = Regime(base, prices, pairs, int(mask.sum()))
        if pairs is not None:
            _check_positive(regimes[name], name)
    return Decomposition(device, variant, regimes)


def _check_positive(regime: Regime, name: str) -> None:
    """Every cell of the regime the model can price must cost > 0 ms (enumerated: 15,625 cells)."""
    every = _space().benchmark().tokens.astype(np.int64)
    every = every[connected(every) == (name == "connected")]
    every = every[~np.isnan(regime.prices[np.arange(every.shape[1]), every]).any(axis=1)]
    ms = regime.predict(every)
    if (ms <= 0).any():
        i = int(np.argmin(ms))
        raise ValueError(f"fit: the {name} regime's model prices cell {_space().NB201Space().decode(every[i])} at "
                         f"{ms[i]:.4g} ms (expected > 0): too few or too odd cells for the pairwise variant")


def fit_device(device: str, variant: str = "additive") -> Decomposition:
    """The decomposition of HW-NAS-Bench's latencies on `device` (pixel3, raspi4, eyeriss, fpga)
    over all 15,625 cells of the benchmark data pynas ships."""
    nb = _space()
    data = nb.benchmark()
    return fit(data.tokens, data.latency(device), variant, device)


def additivity(tokens, ms) -> dict:
    """How additive the latencies are, per regime and over all cells: the best additive fit in ms
    (unconstrained least squares) -> `rel_rms` (RMS residual / RMS latency) and `unexplained`
    (1 - R^2); and `fit`'s models (non-negative, relative error) -> accuracy (RMSPE %, within
    10 %, Kendall tau) for "additive" and "pairwise"."""
    rows = check_tokens(tokens)
    y = _check_measured(ms, len(rows))
    joined = connected(rows)
    out = {}
    models = {v: fit(rows, y, v) for v in VARIANTS}
    for name, mask in (("connected", joined), ("disconnected", ~joined), ("all", np.ones(len(y), dtype=bool))):
        if mask.sum() < 2:
            continue
        a = np.hstack([_onehot(rows[mask]), np.ones((int(mask.sum()), 1))])
        if name == "all":
            a = np.hstack([a, (~joined[mask])[:, None].astype(float)])  # a disconnected-cell offset
        theta, *_ = np.linalg.lstsq(a, y[mask], rcond=None)
        residual = y[mask] - a @ theta
        entry = {"networks": int(mask.sum()),
                 "rel_rms": float(np.sqrt(np.mean(residual ** 2) / np.mean(y[mask] ** 2))),
                 "unexplained": float(np.sum(residual ** 2) / max(np.sum((y[mask] - y[mask].mean()) ** 2), 1e-300))}
        every = _space().benchmark().tokens.astype(np.int64)
        if name != "all":
            every = every[connected(every) == (name == "connected")]
        for variant, model in models.items():
            entry[variant] = score(model.predict(rows[mask]), y[mask])
            try:  # the least latency the model gives any cell of the space in the regime
                entry[variant]["min_model_ms"] = float(model.predict(every).min())
            except ValueError:  # a cell needing a price the fitted cells never had
                entry[variant]["min_model_ms"] = None
        out[name] = entry
    return out


def score(predicted, measured) -> dict:
    """{'n', 'rmspe', 'within10', 'kendall', 'spearman', ...}: `metrics.accuracy` plus Kendall's tau."""
    result = accuracy(predicted, measured)
    result["kendall"] = kendall(predicted, measured)
    return result


# -- few-shot calibration ---------------------------------------------------------------------------

@dataclass
class Basis:
    """A base for calibration: its latency of every cell (`ms`, benchmark index order) and, when it
    is a decomposition, that (so a combination of bases is a decomposition too)."""
    name: str
    ms: np.ndarray
    decomposition: Decomposition | None = None

    @classmethod
    def of_decomposition(cls, model: Decomposition, name: str | None = None) -> Basis:
        return cls(name or model.device, model.predict(_space().benchmark().tokens), model)

    @classmethod
    def of_bundle(cls, name_or_path) -> Basis:
        """Any NAS-Bench-201 lookup bundle as a base (an `nb201-*` bundle, a calibrated one, one
        profiled on a machine): its latency of every cell. ValueError for another kind or space."""
        from pynas.predictor import bundle

        loaded = bundle.load(name_or_path)
        space = loaded.manifest.space or {}
        if loaded.manifest.kind != "lookup" or space.get("name") != "nb201":
            raise ValueError(f"base {name_or_path}: expected a lookup bundle of space nb201 (one latency per cell), "
                             f"got kind {loaded.manifest.kind!r} of space {space.get('name')!r}")
        return cls(loaded.name, np.asarray(loaded.ms, dtype=np.float64))

    @classmethod
    def of_measured(cls, device: str) -> Basis:
        """HW-NAS-Bench's measured latency of every cell on `device` (no decomposition)."""
        return cls(device, np.asarray(_space().benchmark().latency(device), dtype=np.float64))


def hwnasbench_bases(exclude: str | None = None, source: str = "pairwise") -> list[Basis]:
    """HW-NAS-Bench's devices (but `exclude`) as bases: `source` "additive" or "pairwise" (their
    decompositions) or "measured" (their latencies as HW-NAS-Bench gives them)."""
    nb = _space()
    if exclude is not None and exclude not in nb.DEVICES:
        raise ValueError(f"exclude: expected one of {', '.join(nb.DEVICES)}, got {exclude!r}")
    if source not in (*VARIANTS, "measured"):
        raise ValueError(f"source: expected additive, pairwise or measured, got {source!r}")
    devices = [d for d in nb.DEVICES if d != exclude]
    if source == "measured":
        return [Basis.of_measured(d) for d in devices]
    return [Basis.of_decomposition(fit_device(d, source)) for d in devices]


@dataclass
class CellCalibration:
    """t(cell) = sum_j weights[j] * base_j(cell) + overhead_ms (method "bases" and "scale"), or an
    additive model fitted from the k networks alone (method "scratch": `decomposition`)."""
    method: str
    bases: list[str]
    weights: list[float]
    overhead_ms: float
    k: int
    ms: np.ndarray  # the calibrated latency of every cell, benchmark index order
    decomposition: Decomposition | None = None  # the calibrated prices, where the model is one
    info: dict = field(default_factory=dict)

    def predict(self, tokens) -> np.ndarray:
        rows = check_tokens(tokens)
        return self.ms[_space().NB201Space().index_of(rows)]

    def report(self) -> dict:
        return {"method": self.method, "bases": self.bases, "weights": self.weights, "overhead_ms": self.overhead_ms,
                "k": self.k, **self.info,
                "decomposition": None if self.decomposition is None else self.decomposition.to_json()}


def _indices(tokens) -> np.ndarray:
    return _space().NB201Space().index_of(check_tokens(tokens))


def _single_scale(b: np.ndarray, y: np.ndarray) -> float:
    r = b / y  # argmin_s sum((s b / y - 1)^2); 0 for a base pricing every one of the cells at 0
    return float(r.sum() / (r @ r)) if r @ r > 0 else 0.0


def _scale_error(b: np.ndarray, y: np.ndarray) -> float:
    """How well one scale of base values `b` fits the k measurements `y`: RMS relative
    leave-one-out error for k >= 3, the in-sample error for k = 2 (one scale fits one network
    exactly, two only if the base has their ratio), and for k = 1, where nothing tells the shape,
    the distance in magnitude |log(b / y)|."""
    k = len(y)
    if b @ b == 0:
        return float("inf")  # a base pricing the cells at 0 ms says nothing of them
    if k == 1:
        return float(np.abs(np.log(b[0] / y[0])))
    if k == 2:
        return float(np.sqrt(np.mean(np.square(_single_scale(b, y) * b / y - 1))))
    errs = [_single_scale(b[np.arange(k) != i], y[np.arange(k) != i]) * b[i] / y[i] - 1 for i in range(k)]
    return float(np.sqrt(np.mean(np.square(errs))))


def nearest(bases: list[Basis], index: np.ndarray, y: np.ndarray) -> int:
    """The base one scale of which fits the k networks best (`_scale_error`)."""
    return int(np.argmin([_scale_error(b.ms[index], y) for b in bases]))


def _fit_weights(z: np.ndarray, y: np.ndarray, prior: np.ndarray, ridge: float) -> tuple[np.ndarray, float]:
    """u >= 0 (weights in units of each base's single scale, folded in z) and c >= 0 minimising
    sum((z u + c / y - 1)^2) + ridge (|u - prior|^2 + (c / ybar)^2)."""
    k, j = z.shape
    ybar = float(np.mean(y))
    a = np.vstack([np.hstack([z, (1.0 / y)[:, None]]),
                   np.sqrt(ridge) * np.diag(np.r_[np.ones(j), 1.0 / ybar])])
    b = np.r_[np.ones(k), np.sqrt(ridge) * prior, 0.0]
    sol = nnls(a, b)
    return sol[:j], float(sol[j])


def _check_bases(bases) -> list[Basis]:
    bases = list(bases)
    if not bases:
        raise ValueError("bases: expected at least one base, got none")
    nb = _space()
    for b in bases:
        if not isinstance(b, Basis):
            raise TypeError(f"bases: expected Basis objects (hwnasbench_bases()), got {type(b).__name__}")
        if b.ms.shape != (nb.SIZE,) or not (np.isfinite(b.ms) & (b.ms >= 0)).all():
            raise ValueError(f"bases: {b.name}: expected {nb.SIZE} latencies >= 0 ms (one per cell), got "
                             f"{'a negative or non-finite one' if b.ms.shape == (nb.SIZE,) else b.ms.shape}")
    return bases


def calibrate(bases, tokens, measured, method: str = "auto") -> CellCalibration:
    """Calibrate to a new device from k cells (`tokens`, k x 6) measured there (`measured`, ms).
    Methods: "auto" ("bases+prices" or "scratch", by leave-one-out on the k cells), "bases" (the bases' non-negative combination, ridge towards the nearest),
    "bases+prices" (that, plus additive per-op and per-edge corrections ridge-shrunk to 0: what the
    bases miss, learnt as k grows), "scale" (the nearest base times one scale), "scratch" (the
    additive model from the k cells alone)."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    rows = check_tokens(tokens)
    if not len(rows):
        raise ValueError("tokens: expected at least one measured cell, got none")
    y = _check_measured(measured, len(rows), "measured")
    index = _space().NB201Space().index_of(rows)
    if len(np.unique(index)) != len(index):
        raise ValueError("tokens: expected distinct cells (a cell measured twice: average its measurements)")
    k = len(y)
    if method == "scratch":
        return _scratch(rows, y)
    if method == "auto":
        return _auto(bases, rows, y)
    bases = _check_bases(bases)
    names = [b.name for b in bases]
    values = np.stack([b.ms[index] for b in bases], axis=1)  # k x J
    near = nearest(bases, index, y)
    if method == "scale":
        s = _single_scale(values[:, near], y)
        weights = [s if j == near else 0.0 for j in range(len(bases))]
        return _combined("scale", bases, weights, 0.0, k, {"nearest": names[near]})
    # One or two networks cannot tell bases of one shape apart: all of them equally at k = 1.
    prior = np.eye(len(bases))[near] if k >= 2 else np.full(len(bases), 1.0 / len(bases))
    ridge, loo = RIDGE_GRID[-1], None
    if k >= 3:
        errors = {r: _loo(lambda keep, r=r: _combination(values[keep], y[keep], prior, r), values, y)
                  for r in RIDGE_GRID}
        ridge = min(errors, key=errors.get)
        loo = 100 * errors[ridge]
    weights, overhead = _combination(values, y, prior, ridge)
    info = {"nearest": names[near], "ridge": ridge, "loo_rmspe": loo, "prior": prior.tolist()}
    if method == "bases":
        return _combined("bases", bases, list(map(float, weights)), overhead, k, info)
    return _with_corrections(bases, rows, values, y, prior, ridge, info)


def _auto(bases, rows: np.ndarray, y: np.ndarray) -> CellCalibration:
    """"bases+prices" or "scratch", whichever has the lower leave-one-out error over the k networks
    (each with its own strengths chosen by leave-one-out, so both errors are a little optimistic,
    alike); "bases+prices" for k <= 2, where there is no leave-one-out."""
    with_bases = calibrate(bases, rows, y, "bases+prices")
    return pick_auto(with_bases, _scratch(rows, y) if len(y) >= 3 else None)


def pick_auto(with_bases: CellCalibration, alone: CellCalibration | None) -> CellCalibration:
    """Method "auto" from the two calibrations it chooses between (fitted on the same k cells;
    `alone` None for k <= 2): a new CellCalibration, the inputs unchanged."""
    if alone is None:
        pick, errors = with_bases, None
    else:
        errors = {"bases+prices": with_bases.info["correction_loo_rmspe"], "scratch": alone.info["loo_rmspe"]}
        pick = alone if errors["scratch"] < errors["bases+prices"] else with_bases
    return dataclasses.replace(pick, method="auto",
                               info={**pick.info, "auto": {"loo_rmspe": errors, "picked": pick.method}})


def _loo(fit_on, values: np.ndarray, y: np.ndarray, extra=None) -> float:
    """RMS relative leave-one-out error of a combination refitted without each network in turn;
    `fit_on(keep)` -> (weights, overhead[, correction function of the left-out row])."""
    errs = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        fitted = fit_on(keep)
        predicted = values[i] @ fitted[0] + fitted[1] + (fitted[2](i) if len(fitted) > 2 else 0.0)
        errs.append(predicted / y[i] - 1)
    return float(np.sqrt(np.mean(np.square(errs))))


def _combination(values: np.ndarray, y: np.ndarray, prior: np.ndarray, ridge: float) -> tuple[np.ndarray, float]:
    """Weights w >= 0 (ms per base ms) and overhead c >= 0 of t = values @ w + c: each base in the
    target's units first (its single scale), the weights ridge-shrunk towards `prior` there."""
    scales = np.array([_single_scale(values[:, j], y) for j in range(values.shape[1])])
    u, c = _fit_weights(values * scales / y[:, None], y, prior, ridge)
    return u * scales, c


# Per-op corrections are shared by the 6 edges: shrunk 10x less than per-edge ones.
CORRECTION_OP_WEIGHT = 0.1
JOINT_WEAK_RIDGE = 0.01  # the weak pull of the weights towards the prior tried with corrections


def _correction_design(rows: np.ndarray) -> np.ndarray:
    """N x 35: count of each op in the cell, then the edge x op one-hot."""
    nb = _space()
    counts = np.stack([(rows == o).sum(axis=1) for o in range(len(nb.OPS))], axis=1).astype(float)
    return np.hstack([counts, _onehot(rows)])


def _joint(values: np.ndarray, x: np.ndarray, y: np.ndarray, prior: np.ndarray, ridge: float, strength: float
           ) -> tuple[np.ndarray, float, np.ndarray]:
    """Weights w >= 0, overhead c >= 0 and corrections delta (ms per feature of x, any sign) of
    t = values @ w + c + x @ delta, jointly, on relative error: the weights ridge-shrunk towards
    `prior` (`ridge`, in units of each base's single scale), the corrections towards 0
    (`strength`, in units of a typical network). delta is eliminated in closed form (for given
    w, c the residual's best correction leaves r^T M r, M = I - A (A^T A + strength W)^-1 A^T),
    so the constrained part is one small NNLS in the metric M."""
    nb = _space()
    k = len(y)
    ybar = float(np.mean(y))
    scales = np.array([_single_scale(values[:, j], y) for j in range(values.shape[1])])
    design = np.hstack([values * scales / y[:, None], (1.0 / y)[:, None]])  # (w / scales, c)
    a = x * (ybar / y)[:, None]  # corrections in units of ybar
    penalty = np.r_[np.full(len(nb.OPS), CORRECTION_OP_WEIGHT), np.ones(x.shape[1] - len(nb.OPS))]
    h = a.T @ a + strength * np.diag(penalty) + 1e-12 * np.eye(a.shape[1])
    m = np.eye(k) - a @ np.linalg.solve(h, a.T)
    eigenvalues, vectors = np.linalg.eigh((m + m.T) / 2)
    root = (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T  # M^(1/2)
    j = values.shape[1]
    rows = np.vstack([root @ design, np.sqrt(ridge) * np.diag(np.r_[np.ones(j), 1.0 / ybar])])
    target = np.r_[root @ np.ones(k), np.sqrt(ridge) * prior, 0.0]
    sol = nnls(rows, target)
    delta = np.linalg.solve(h, a.T @ (1.0 - design @ sol))
    return sol[:j] * scales, float(sol[j]), delta * ybar


def _with_corrections(bases, rows, values, y, prior, ridge, info) -> CellCalibration:
    """The combination plus additive corrections, fitted jointly (`_joint`: the bases' weights can
    give way to the corrections where those explain the k cells better); the corrections' strength
    by leave-one-out over the k networks, "none" (the combination alone) included, and only among
    strengths whose calibrated latency of every one of the 15,625 cells is > 0 (a correction must
    not price a cell at <= 0 ms; rejected ones are listed in the report)."""
    nb = _space()
    k = len(y)
    x = _correction_design(rows)
    every = _correction_design(_space().benchmark().tokens.astype(np.int64))
    stacked = np.stack([b.ms for b in bases], axis=1)
    # (weights' ridge, corrections' strength); None: no correction, the combination alone at the
    # ridge its own leave-one-out chose. With corrections the weights' ridge is searched too
    # (that one, or weak: the weights then give way to the corrections where those fit better).
    candidates = [None] + ([(r, s) for r in sorted({ridge, JOINT_WEAK_RIDGE}) for s in RIDGE_GRID] if k >= 3 else [])

    def fold(pair):
        def fit_on(keep):
            if pair is None:
                return _combination(values[keep], y[keep], prior, ridge)
            w, c, delta = _joint(values[keep], x[keep], y[keep], prior, *pair)
            return w, c, lambda i: float(x[i] @ delta)
        return fit_on

    errors = {pair: _loo(fold(pair), values, y) for pair in candidates} if k >= 3 else {None: np.nan}
    rejected = []
    for pair in sorted(errors, key=lambda p: (errors[p], p is None)):
        if pair is None:
            weights, overhead = _combination(values, y, prior, ridge)
            delta = None
            break
        weights, overhead, delta = _joint(values, x, y, prior, *pair)
        if (stacked @ weights + overhead + every @ delta > 0).all():
            break
        rejected.append(list(pair))
    info = {**info, "joint_ridge": None if pair is None else pair[0], "correction_ridge": None if pair is None else pair[1],
            "correction_loo_rmspe": None if k < 3 else 100 * errors[pair],
            "corrections_rejected_nonpositive": rejected}
    cal = _combined("bases+prices", bases, list(map(float, weights)), overhead, k, info)
    if delta is not None:
        cal.ms = cal.ms + every @ delta
        if cal.decomposition is not None:
            per_edge = delta[:len(nb.OPS)][None, :] + delta[len(nb.OPS):].reshape(len(nb.EDGES), len(nb.OPS))
            for regime in cal.decomposition.regimes.values():
                regime.prices = regime.prices + per_edge
        info["corrections_ms"] = {"per_op": dict(zip(nb.OPS, map(float, delta[:len(nb.OPS)]))),
                                  "per_edge_op": delta[len(nb.OPS):].reshape(len(nb.EDGES), len(nb.OPS)).tolist()}
    return cal


def _combined(method, bases, weights, overhead, k, info) -> CellCalibration:
    ms = sum(w * b.ms for w, b in zip(weights, bases)) + overhead
    decomposition = None
    models = [b.decomposition for b in bases]
    if all(m is not None for m in models) and len({m.variant for m in models}) == 1:
        decomposition = _combine_decompositions(models, weights, overhead)
    return CellCalibration(method, [b.name for b in bases], [float(w) for w in weights], float(overhead), k,
                           np.asarray(ms, dtype=np.float64), decomposition, info)


def _combine_decompositions(models: list[Decomposition], weights, overhead: float) -> Decomposition:
    regimes = {}
    for name in REGIMES:
        if not all(name in m.regimes for m in models):
            continue
        parts = [m.regimes[name] for m in models]
        pairs = None
        if any(p.pairs is not None for p in parts):
            pairs = sum(w * (p.pairs if p.pairs is not None else 0.0) for w, p in zip(weights, parts))
        regimes[name] = Regime(float(sum(w * p.base for w, p in zip(weights, parts)) + overhead),
                               sum(w * p.prices for w, p in zip(weights, parts)), pairs, 0)
    return Decomposition("calibrated", models[0].variant, regimes)


def _scratch(rows: np.ndarray, y: np.ndarray) -> CellCalibration:
    """The additive model from the k cells alone: base, per-op prices (shared by the edges) and
    per-edge deviations, on relative error; the deviations ridge-shrunk (strength by leave-one-out
    for k >= 3, else the strongest), the per-op prices lightly (1 % of it)."""
    nb = _space()
    k = len(y)
    counts = np.stack([(rows == o).sum(axis=1) for o in range(len(nb.OPS))], axis=1).astype(float)
    x = np.hstack([np.ones((k, 1)), counts, _onehot(rows)])
    a = x / y[:, None]
    weights = np.r_[0.0, np.full(len(nb.OPS), 0.01), np.ones(len(nb.EDGES) * len(nb.OPS))]

    def solve(a_, ridge):
        lhs = a_.T @ a_ + ridge * np.diag(weights) + 1e-9 * np.eye(a_.shape[1])
        return np.linalg.solve(lhs, a_.T @ np.ones(len(a_)))

    ridge, best = RIDGE_GRID[-1], None
    if k >= 3:
        best = np.inf
        for candidate in RIDGE_GRID:
            errs = [a[i] @ solve(a[np.arange(k) != i], candidate) - 1 for i in range(k)]
            err = float(np.sqrt(np.mean(np.square(errs))))
            if err < best:
                ridge, best = candidate, err
        best *= 100
    theta = solve(a, ridge)
    prices = theta[1:1 + len(nb.OPS)][None, :] + theta[1 + len(nb.OPS):].reshape(len(nb.EDGES), len(nb.OPS))
    model = Decomposition("calibrated", "additive", {"connected": Regime(float(theta[0]), prices, None, k)})
    every = nb.benchmark().tokens.astype(np.int64)
    ms = theta[0] + _onehot(every) @ prices.ravel()  # one model for every cell: k cells say nothing about regimes
    return CellCalibration("scratch", [], [], 0.0, k, ms, model, {"ridge": ridge, "loo_rmspe": best})


def save_calibrated(folder, calibration: CellCalibration, *, device: dict, backend: str = "unknown",
                    backend_version: str = "unknown", threads: int = 0, measured: list | None = None,
                    name: str | None = None, overwrite: bool = False):
    """Write `calibration`'s latency of every cell as a lookup bundle (kind "lookup", space nb201:
    `pynas.predictor.lookup`); its report holds the calibration (method, bases, weights, prices)
    and the k measured cells (`measured`: [{"arch", "ms"}]). A calibrated latency <= 0 ms (method
    "scratch" can extrapolate below 0) is refused naming the cell, never clipped."""
    from pynas.predictor.writers import check_writable, save_lookup

    check_writable(folder, overwrite)
    nb = _space()
    if not isinstance(device, dict) or not isinstance(device.get("name"), str) or not device["name"]:
        raise ValueError(f"device: expected a dict with the new device's name, got {device!r}")
    bad = ~(np.isfinite(calibration.ms) & (calibration.ms > 0))
    if bad.any():
        i = int(np.argmax(bad))
        cell = nb.NB201Space().decode(nb.benchmark().tokens[i])
        raise ValueError(f"calibration: cell {cell} (index {i}): calibrated latency {calibration.ms[i]:.4g} ms, "
                         f"expected > 0 (method {calibration.method} extrapolates below 0 there: use method bases)")
    report = {"source": f"few-shot calibration ({calibration.method}) on {calibration.k} NAS-Bench-201 cells, "
                        f"bases {', '.join(calibration.bases) or 'none'} (pynas.predictor.cell_decomposition)",
              "calibration": calibration.report(), "measured": measured or [],
              "min_ms": float(calibration.ms.min()), "max_ms": float(calibration.ms.max())}
    return save_lookup(folder, calibration.ms, nb.NB201Space(), device=device, backend=backend,
                       backend_version=backend_version, threads=threads, report=report, name=name,
                       source=f"few-shot calibration ({calibration.method}) of {', '.join(calibration.bases) or 'nothing'}"
                              f" on {calibration.k} cells", overwrite=overwrite)


def read_calibration(folder) -> tuple[dict, Decomposition | None]:
    """A calibrated bundle's calibration report and its prices (None for a network-level
    combination), read strictly through the bundle's manifest (hashes checked)."""
    from pynas.predictor import bundle

    predictor = bundle.load(folder)
    report = predictor.manifest.extra.get("report") if isinstance(predictor.manifest.extra, dict) else None
    cal = report.get("calibration") if isinstance(report, dict) else None
    if not isinstance(cal, dict) or cal.get("method") not in METHODS:
        raise ValueError(f"{folder}: report.calibration: expected a few-shot calibration of NAS-Bench-201 cells, "
                         f"got {str(cal)[:60]}")
    model = None if cal.get("decomposition") is None else Decomposition.from_json(cal["decomposition"])
    return cal, model


# -- evaluation -------------------------------------------------------------------------------------

def _calibrated(done: dict, method: str, used, tokens: np.ndarray, y: np.ndarray) -> CellCalibration:
    """`calibrate(used, tokens, y, method)`, memoised in `done` for one draw; "auto" from the draw's
    "bases+prices" and "scratch" calibrations (what it chooses between)."""
    key = (method, id(used) if method != "scratch" else None)
    if key not in done:
        if method == "auto":
            alone = _calibrated(done, "scratch", [], tokens, y) if len(y) >= 3 else None
            done[key] = pick_auto(_calibrated(done, "bases+prices", used, tokens, y), alone)
        else:
            done[key] = calibrate(used, tokens, y, method)
    return done[key]


def evaluate(target_ms: np.ndarray, bases: list[Basis], ks=(1, 2, 5, 10, 20), draws: int = 10, seed: int = 0,
             methods=None, pool: np.ndarray | None = None) -> dict:
    """Few-shot accuracy on one target device: for each k, `draws` seeded draws of k calibration
    cells (connected ones, from `pool` or all), each method scored on every connected cell
    (RMSPE, within 10 %, Kendall tau) and on all cells (RMSPE). `methods`: {label: (method, bases)}.
    `target_ms` has one entry per benchmark network; NaN where the device was not measured (a
    machine that timed a sample of the space): draws and scores are then over the measured ones.
    Returns {label: {k: {"rmspe", "within10", "kendall", "kendall_p10", "kendall_p90", "rmspe_all"}}}
    (medians over the draws)."""
    nb = _space()
    tokens = nb.benchmark().tokens.astype(np.int64)
    y = np.asarray(target_ms, dtype=np.float64)
    if y.shape != (len(tokens),):
        raise ValueError(f"target_ms: expected {len(tokens)} values (NaN where not measured), got shape {y.shape}")
    known = np.isfinite(y)
    if np.any(y[known] <= 0):
        raise ValueError("target_ms: expected positive latencies (or NaN where not measured)")
    joined = connected(tokens) & known
    pool = np.flatnonzero(joined) if pool is None else np.asarray(pool)
    if not np.all(known[pool]):
        raise ValueError("pool: expected measured networks only (target_ms is NaN at some)")
    methods = methods or {m: (m, [] if m == "scratch" else bases) for m in METHODS}
    rng = np.random.default_rng(seed)
    out = {label: {} for label in methods}
    for k in ks:
        if not 1 <= k <= min(20, len(pool)):
            raise ValueError(f"ks: expected values in 1..{min(20, len(pool))}, got {k}")
        runs = {label: [] for label in methods}
        for _ in range(draws):
            chosen = rng.choice(pool, k, replace=False)
            done: dict = {}  # (method, bases) -> calibration: "auto" reuses what it chooses between
            for label, (method, used) in methods.items():
                cal = _calibrated(done, method, used, tokens[chosen], y[chosen])
                s = score(cal.ms[joined], y[joined])
                s["rmspe_all"] = float(100 * np.sqrt(np.mean(((cal.ms[known] - y[known]) / y[known]) ** 2)))
                runs[label].append(s)
        for label, scores in runs.items():
            taus = [s["kendall"] for s in scores]
            out[label][k] = {"rmspe": float(np.median([s["rmspe"] for s in scores])),
                             "within10": float(np.median([s["within10"] for s in scores])),
                             "kendall": float(np.median(taus)), "kendall_p10": float(np.percentile(taus, 10)),
                             "kendall_p90": float(np.percentile(taus, 90)),
                             "rmspe_all": float(np.median([s["rmspe_all"] for s in scores])), "draws": draws}
    return out
