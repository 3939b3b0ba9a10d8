"""Latency of whole cell networks on a machine pynas profiles (NAS-Bench-201 on `native`), fitted on
networks timed whole (`pynas profile --space nb201`), and its bundles:

    pynas profile --space nb201 --networks 800 --pin 1                    # whole networks, ratio-timed
    pynas profile --space nb201 --networks 800 --pin 1 --again --session pass2   # another pass
    pynas calibrate STORE --space nb201 -o predictors/NAME                # this module: fit, hold out, write

Why whole networks. NAS-Bench-201's networks are tiny (3-9 ms at 32x32, a few MB of weights) and
stay in cache: a segment (a cell, timed alone in a loop) finds its inputs and weights warm and its
neighbours absent, so it is not what it costs in place. Summed segments over-predicted whole
networks by ~30%, with placement effects up to 1.6x, and only 57% of held-out networks came within
10% (RMSPE 14%). The space has only 15,625 networks, so a seeded sample of them is timed whole
(the same spell-robust timing as every network: interleaved with a reference network, ratios,
passes) and a model of whole networks is fitted on their cells' features.

Features (`FEATURE_NAMES`; `cell_features(space, tokens)`, one row per cell):

* ``<edge>_<op>``: the op on each of the 6 edges, one-hot (30); ``n_<op>``: edges per op (5);
* ``connected``: whether the cell's input reaches its output (`cell_decomposition.connected`);
  ``indeg1..3``: non-none edges into each node; how its nodes' sums run (`SUM_FEATURES`, as
  `pynas.ir.fusion` fuses them): inside a conv's kernel as its residual (``res_conv3``,
  ``res_conv1``), as add kernels of two or three inputs (``add2``, ``add3``), or as a zero tensor
  (``zeros``): on this machine's runner a sum fused into a 3x3 conv cost as much as a 1x1 conv;
* from the lowered network (`pynas.ir`): ``macs_m``, ``params_k``, ``weight_kb`` (MACs, parameters,
  weight bytes). Every edge of an op lowers to the same ops at a stage's width wherever it is, so
  these are the skeleton's plus a per-op size per edge (`_op_sizes`, from five lowerings; exact,
  and vectorised: all 15,625 cells in milliseconds where lowering each takes half a minute).

Model (`CellModel`), in one of two forms (`FORMS`) whose features differ:

* ``cells``: the features above;
* ``litert-ops``: the ops LiteRT's converter leaves in the network, counted by shape
  (`pynas.predictor.litert_ops`: dead code removed, zeros folded, common ops merged, ReLUs fused).
  On LiteRT the cell's edges are not what runs: a cell that cuts its input off from its output runs
  only its last cell, one without an output edge nothing, and the cells form held out 52-61% within
  10%; the executed ops held out 99.3% (mean of 20 splits of 600 networks).

A series is fitted in every form its backend has (`forms_for`: litert both, the others ``cells``);
with two, the form is chosen on a seeded fifth of the fitted networks (`VALIDATION`, lowest RMSPE),
then refitted on all of them; the report keeps both forms' validation scores. In either form: a
linear base over the structure features (least squares on relative error), times exp of XGBoost
(depth-3 trees, 200 rounds) on the log residual over every feature. With the branch-free ReLU step
(cpp/network/cell_steps.cc) this machine's runner is nearly additive per op and per sum: on 160
networks timed on a shared core the linear base alone held out 4.5% RMSPE where XGBoost alone on log
latency held out 10-12%; the trees take what the base misses. Held out: a seeded `holdout` share of
the measured networks is never fitted on (the shipped model is fitted without them); their accuracy
is the bundle's report (RMSPE, share within 5% / 10%, Spearman), kept with their keys so
`bench/predictor.py --sections cells` checks the bundle against them again.

Bundle: a lookup bundle (`pynas.predictor.lookup`, kind "lookup"): the model's prediction for
every cell of the space (15,625; what `predictor.latency_model(bundle, "nb201")`, `pynas predict`
and `pynas search` index, as the HW-NAS-Bench bundles), the model itself (`model.ubj`, portable
UBJ, and `linear.json`; never pickle; `CellModel.load`), the measurements it was fitted on
(`measurements.jsonl.gz`), the report, and a manifest naming this machine's fingerprint, backend,
version and threads (so a search's verification measures its picks here), `features` the model's.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pynas.predictor.metrics import accuracy
from pynas.store.errors import shown

ROUNDS = 200
XGB_PARAMS = {"max_depth": 3, "eta": 0.05, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 2.0,
              "tree_method": "hist", "nthread": 1, "objective": "reg:squarederror"}
LINEAR_RIDGE = 1e-3  # on relative-error rows: enough for the one-hot's collinearity, nothing more
MODEL = "model.ubj"
LINEAR = "linear.json"
HOLDOUT = 0.2  # of the measured networks, never fitted on: the report's accuracy
MIN_NETWORKS = 50  # fewer cannot fit 47 features and hold a fifth out


def _token_feature_names(space) -> list[str]:
    ops = [d.choices for d in space.decisions]
    names = [f"{d.name}_{op}" for d, choices in zip(space.decisions, ops) for op in choices]
    return names + [f"n_{op}" for op in ops[0]] + ["connected", "indeg1", "indeg2", "indeg3"] + list(SUM_FEATURES)


# How the nodes' sums run (`pynas.ir.fusion`): a two-edge sum whose first edge (lowest source) is a
# conv runs inside that conv's kernel (a residual), any other two-edge sum and every three-edge sum
# as add kernels, a node without edges that something reads as a zero tensor.
SUM_FEATURES = ("res_conv3", "res_conv1", "add2", "add3", "zeros")


IR_FEATURES = ("macs_m", "params_k", "weight_kb")


FORMS = ("cells", "litert-ops")
FORM_MODELS = {
    "cells": "linear base x xgboost residual on whole networks' cell features (pynas.predictor.cellnet)",
    "litert-ops": "linear base x xgboost residual on the ops LiteRT runs, by shape (pynas.predictor.litert_ops)"}
VALIDATION = 0.2  # of the fitted networks, when a backend has two forms: the choice's


def forms_for(backend: str) -> tuple[str, ...]:
    """The model forms a series of `backend` is fitted in: LiteRT's also as the ops its converter
    leaves (`pynas.predictor.litert_ops` emulates that converter, no other runtime's)."""
    return FORMS if backend == "litert" else ("cells",)


def _check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"form: expected one of {', '.join(FORMS)}, got {form!r}")


def feature_names(space, form: str = "cells") -> list[str]:
    """The model's features for `space` (nb201) in `form`, in column order."""
    from pynas.predictor import litert_ops

    _check_space(space)
    _check_form(form)
    if form == "litert-ops":
        return list(litert_ops.space_signatures(space.name))
    return _token_feature_names(space) + list(IR_FEATURES)


def features(space, tokens, form: str = "cells") -> np.ndarray:
    """N x len(feature_names(space, form)) features of the networks of an N x 6 token array."""
    from pynas.predictor import litert_ops
    from pynas.predictor.cell_decomposition import check_tokens

    _check_form(form)
    if form == "litert-ops":
        _check_space(space)
        return litert_ops.op_counts(space, check_tokens(tokens))
    return cell_features(space, tokens)


def _check_space(space) -> None:
    if not getattr(space, "profiled_whole", False) or space.name != "nb201":
        raise ValueError(f"space: expected nb201 (the cell space whose networks are profiled and predicted whole), "
                         f"got {getattr(space, 'name', space)!r}")


def cell_features(space, tokens) -> np.ndarray:
    """N x len(feature_names(space)) float64 features of the cells of an N x 6 token array."""
    from pynas.predictor.cell_decomposition import check_tokens, connected
    from pynas.space.nb201 import EDGES

    _check_space(space)
    rows = check_tokens(tokens)  # an N x 6 integer array of valid tokens, or a ValueError naming row and edge
    n_ops = space.decisions[0].cardinality
    onehot = np.zeros((len(rows), len(space.decisions) * n_ops))
    for e in range(len(space.decisions)):
        onehot[np.arange(len(rows)), e * n_ops + rows[:, e]] = 1
    counts = np.stack([(rows == o).sum(axis=1) for o in range(n_ops)], axis=1)
    indeg = np.stack([sum((rows[:, e] != 0) for e, (_, target) in enumerate(EDGES) if target == j)
                      for j in (1, 2, 3)], axis=1)
    base, per_op = _op_sizes()
    ir = base + counts @ per_op
    return np.hstack([onehot, counts, connected(rows)[:, None], indeg, _sums(rows, indeg), ir]).astype(np.float64)


def _sums(rows: np.ndarray, indeg: np.ndarray) -> np.ndarray:
    """SUM_FEATURES per cell: how many of its nodes' sums run each way (see SUM_FEATURES)."""
    from pynas.space.nb201 import EDGES, OPS

    conv3, conv1 = OPS.index("nor_conv_3x3"), OPS.index("nor_conv_1x1")
    out = np.zeros((len(rows), len(SUM_FEATURES)))
    for j in (1, 2, 3):
        into = [e for e, (_, target) in enumerate(EDGES) if target == j]  # by source, as the node sums them
        first = np.full(len(rows), -1)
        for e in reversed(into):
            first = np.where(rows[:, e] != 0, rows[:, e], first)
        two, k = indeg[:, j - 1] == 2, indeg[:, j - 1]
        read = np.ones(len(rows), dtype=bool) if j == 3 else \
            np.any(rows[:, [e for e, (source, _) in enumerate(EDGES) if source == j]] != 0, axis=1)
        out[:, 0] += two & (first == conv3)
        out[:, 1] += two & (first == conv1)
        out[:, 2] += two & (first != conv3) & (first != conv1)
        out[:, 3] += k == 3
        out[:, 4] += (k == 0) & read
    return out


@functools.lru_cache(maxsize=None)
def _op_sizes() -> tuple[np.ndarray, np.ndarray]:
    """(the skeleton's IR_FEATURES without any edge, each op's IR_FEATURES per edge it fills), from
    the lowered networks of the cells whose six edges all carry one op (`pynas.ir`): every edge of
    an op lowers to the same ops at a stage's width, in each of the network's cells, and none, skip
    and the zero tensors and sums lower to nothing counted here, so a network's totals are the base
    plus its edges' sizes (exact: tests/test_predictor_cellnet.py checks it against full lowerings)."""
    from pynas.ir import lower
    from pynas.space.nb201 import EDGES, OPS, NB201Space

    space = NB201Space()

    def totals(op_index: int) -> np.ndarray:
        graph = lower(space.network((op_index,) * len(EDGES)))
        return np.array([graph.macs / 1e6, graph.params / 1e3, graph.weight_bytes / 1e3])

    base = totals(OPS.index("none"))
    return base, np.stack([(totals(o) - base) / len(EDGES) for o in range(len(OPS))])


class CellModel:
    """A cell network's latency: a linear base over the structure features (`linear_names`; in the
    ``cells`` form one-hot ops, counts, connectivity, in-degrees, how the sums run, in the
    ``litert-ops`` form the counts of executed ops; least squares on relative error, a little ridge
    for the one-hot's collinearity), times exp of an XGBoost model of the log residual over every
    feature (what the base misses: interactions, cache effects).
    predict() returns ms. Files: `model.ubj` (the XGBoost part, UBJ) and `linear.json` (the base:
    its feature names, coefficients, intercept and floor, plain JSON)."""

    def __init__(self, space, params: dict | None = None, booster=None, linear: dict | None = None,
                 form: str = "cells"):
        self.space, self.form, self.features = space, form, feature_names(space, form)
        self.linear_names = [n for n in self.features if n not in IR_FEATURES]
        self.params = dict(XGB_PARAMS, **(params or {}))
        self.booster, self.linear = booster, linear

    def _base(self, x: np.ndarray) -> np.ndarray:
        columns = [self.features.index(n) for n in self.linear["features"]]
        base = x[:, columns] @ np.asarray(self.linear["coef"]) + self.linear["intercept"]
        return np.maximum(base, self.linear["floor_ms"])

    def fit(self, tokens, ms, seed: int = 0) -> "CellModel":
        import xgboost as xgb

        x, ms = features(self.space, tokens, self.form), np.asarray(ms, dtype=np.float64)
        columns = [self.features.index(n) for n in self.linear_names]
        design = np.hstack([x[:, columns], np.ones((len(x), 1))]) / ms[:, None]  # rows scaled: relative error
        solution = np.linalg.solve(design.T @ design + LINEAR_RIDGE * np.eye(design.shape[1]), design.T @ np.ones(len(x)))
        # The floor keeps the base of a cell far from every measured one > 0: the residual model
        # scales it, and a latency is never <= 0 ms.
        self.linear = {"features": list(self.linear_names), "coef": [float(c) for c in solution[:-1]],
                       "intercept": float(solution[-1]), "floor_ms": float(ms.min()) / 4}
        train = xgb.DMatrix(x, label=np.log(ms / self._base(x)), feature_names=self.features)
        params = {k: v for k, v in self.params.items() if k != "rounds"}
        self.booster = xgb.train(dict(params, seed=seed), train, num_boost_round=self.params.get("rounds", ROUNDS))
        return self

    def predict(self, tokens) -> np.ndarray:
        import xgboost as xgb

        if self.booster is None or self.linear is None:
            raise ValueError("model: not trained (fit() or load() first)")
        x = features(self.space, tokens, self.form)
        residual = self.booster.predict(xgb.DMatrix(x, feature_names=self.features)).astype(np.float64)
        return self._base(x) * np.exp(residual)

    def files(self) -> dict[str, bytes]:
        """The bundle files of the model (name -> bytes)."""
        return {MODEL: bytes(self.booster.save_raw(raw_format="ubj")),
                LINEAR: (json.dumps(self.linear, indent=1) + "\n").encode()}

    @classmethod
    def load(cls, folder: Path, space) -> "CellModel":
        """The model saved in bundle `folder`; BundleError naming the file and field if a file is not
        one, or if its features are not this pynas's."""
        from pynas.predictor.manifest import BundleError, read_json
        from pynas.predictor.train import SegmentModel

        folder = Path(folder)
        booster = SegmentModel.load(folder / MODEL, {}).booster  # the same UBJ reading and errors
        names = list(booster.feature_names or [])
        form = next((f for f in FORMS if names == feature_names(space, f)), None)  # the form is its features
        if form is None:
            expected = " or ".join(f"{len(feature_names(space, f))} ({f})" for f in FORMS)
            raise BundleError(f"{folder / MODEL}: feature_names: expected this pynas's features of a form, {expected}, "
                              f"got {len(names)}: {shown(names, 60)}")
        model = cls(space, booster=booster, form=form)
        linear = read_json(folder / LINEAR, "linear model")
        problem = _linear_problem(linear, model.linear_names)
        if problem:
            raise BundleError(f"{folder / LINEAR}: {problem}")
        model.linear = linear
        return model


def _linear_problem(linear, names: list[str]) -> str | None:
    """What is wrong with a linear base read from JSON (None: nothing)."""
    if not isinstance(linear, dict) or set(linear) != {"features", "coef", "intercept", "floor_ms"}:
        return "expected an object {features, coef, intercept, floor_ms}"
    if linear["features"] != names:
        return f"features: expected this pynas's {len(names)} structure features, got {shown(linear['features'], 60)}"
    numbers = linear["coef"] if isinstance(linear["coef"], list) else [None]
    if len(numbers) != len(names) or not all(_finite(v) for v in numbers + [linear["intercept"]]):
        return f"coef, intercept: expected {len(names)} finite numbers and one"
    if not _finite(linear["floor_ms"]) or not linear["floor_ms"] > 0:
        return f"floor_ms: expected a latency > 0, got {shown(linear['floor_ms'], 40)}"
    return None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class CellData:
    """The whole networks of one measured series that are networks of `space`, as cells."""
    series: object  # the pynas.predictor.train.Dataset they came from (device, backend, version, threads)
    keys: list[str]  # their architecture strings (the store's keys)
    tokens: np.ndarray  # N x 6
    ms: np.ndarray
    other_networks: int = 0  # networks of the series that are not networks of the space (left out)


def load_cells(store, space, *, backend: str = "native", threads: int = 1, device_id: str | None = None) -> CellData:
    """The measured networks of `space` in one series of `store` (as `train.load_dataset` chooses
    and scales it: ratio-timed, each key's median over passes)."""
    from pynas.cell import CellNet, is_cellnet_string, parse
    from pynas.predictor.train import load_dataset

    _check_space(space)
    data = load_dataset(store, backend=backend, threads=threads, device_id=device_id)
    keys, tokens, ms, other = [], [], [], 0
    for key, value in sorted(data.networks.items()):
        try:
            net = parse(key) if is_cellnet_string(key) else None
            if not isinstance(net, CellNet):
                raise ValueError(key)
            tokens.append(space.encode(net))  # refuses a network of another width, depth or classes
        except ValueError:
            other += 1
            continue
        keys.append(key)
        ms.append(value)
    return CellData(data, keys, np.array(tokens, dtype=np.int64).reshape(len(keys), len(space.decisions)),
                    np.array(ms, dtype=np.float64), other)


def choose_form(space, forms, tokens, ms, *, seed: int = 0, params: dict | None = None) -> tuple[str, dict]:
    """The form of `forms` that predicts a seeded `VALIDATION` share of these networks best when
    fitted on the rest (lowest RMSPE), and each form's scores there ({} with one form: no choice)."""
    if len(forms) == 1:
        return forms[0], {}
    order = np.random.default_rng([seed, 1]).permutation(len(ms))  # its own stream: not the holdout's
    n_val = max(1, int(round(VALIDATION * len(ms))))
    val, fit = np.sort(order[:n_val]), np.sort(order[n_val:])
    scores = {form: accuracy(CellModel(space, params, form=form).fit(tokens[fit], ms[fit], seed).predict(tokens[val]),
                             ms[val]) for form in forms}
    return min(forms, key=lambda form: scores[form]["rmspe"]), scores


@dataclass
class TrainedCells:
    model: CellModel
    report: dict
    heldout_keys: list[str] = field(default_factory=list)


def train_cells(data: CellData, space, *, holdout: float = HOLDOUT, seed: int = 0, params: dict | None = None
                ) -> TrainedCells:
    """Fit on all but a seeded `holdout` share of the networks and report on those (the shipped
    model never saw them)."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout: expected a share in (0, 1), got {holdout!r}")
    n = len(data.keys)
    if n < MIN_NETWORKS:
        raise ValueError(f"networks: expected at least {MIN_NETWORKS} measured networks of space {space.name} to fit "
                         f"and hold out, got {n}: measure more with `pynas profile --space {space.name} --networks N`")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(holdout * n)))
    test, fit = np.sort(order[:n_test]), np.sort(order[n_test:])
    form, validation = choose_form(space, forms_for(data.series.backend), data.tokens[fit], data.ms[fit],
                                   seed=seed, params=params)
    model = CellModel(space, params, form=form).fit(data.tokens[fit], data.ms[fit], seed)
    heldout = accuracy(model.predict(data.tokens[test]), data.ms[test])
    report = {"model": FORM_MODELS[form], "form": form,
              "networks_measured": n, "networks_fitted": int(len(fit)), "heldout_networks": heldout,
              "fitted_networks": accuracy(model.predict(data.tokens[fit]), data.ms[fit]),
              "holdout": holdout, "seed": seed, "timing": data.series.timing,
              "measured_ms": {"min": float(data.ms.min()), "median": float(np.median(data.ms)),
                              "max": float(data.ms.max())}}
    if validation:
        report["form_validation"] = validation
    if data.series.repeatability:
        report["repeatability"] = data.series.repeatability
    if data.other_networks:
        report["other_networks_left_out"] = data.other_networks
    keys = [data.keys[i] for i in test]
    report["heldout_keys"] = keys
    return TrainedCells(model, report, keys)


def save_cells(folder, trained: TrainedCells, data: CellData, space, *, name: str | None = None, source: str = "",
               overwrite: bool = False, measurements: bytes | None = None) -> Path:
    """Write the bundle (see the module docstring): every cell of `space` predicted, as a lookup."""
    from pynas.predictor.predictors import MEASUREMENTS
    from pynas.predictor.writers import save_lookup

    every = space.tokens_of(np.arange(space.size))  # the lookup's order: the space's index
    ms = trained.model.predict(every)
    files = trained.model.files()
    if measurements is not None:
        files[MEASUREMENTS] = measurements
    series = data.series
    return save_lookup(folder, ms, space, device={"device_id": series.device_id, **series.device},
                       backend=series.backend, backend_version=series.backend_version, threads=series.threads,
                       report=trained.report, source=source, name=name, overwrite=overwrite,
                       features=trained.model.features, extra_files=files, extra={"caches": series.caches})
