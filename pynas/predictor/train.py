"""Train a latency predictor for one (device, backend, threads) series from the measurement store.

Model: an XGBoost regressor on log(latency) of segments (a relative-error objective: a 10% miss
costs the same on a 20 us head as on a 2 ms block), features from `pynas.predictor.features`.
A network's latency is the sum of its segments' predictions, corrected by a per-network term
fitted from whole-network measurements: latency = scale * sum + weight_ms_per_mb * (MB of weights)
+ overhead_ms (least squares on relative error). Why not the bare sum: a segment timed alone runs
with its weights warm in L2, inside a network the other segments have evicted them, so they come
from L3 or DRAM (a cost per byte of weights: on this machine it halves the held-out network error
of scale + overhead alone), other effects scale with the work, and a network pays dispatch between
steps (a fixed cost). With fewer than 10 networks only the fixed term is fitted (scale 1).

Evaluation, both held out: segments the model never saw (a random `holdout` share of the measured
segments), and whole networks measured end to end, each predicted with a network term fitted
without it (k-fold cross-validation), also with the segment model that never saw the held-out
segments (`heldout_networks_segment_holdout_model`).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import numpy as np

from pynas.predictor.features import FEATURE_NAMES, feature_matrix
from pynas.predictor.metrics import accuracy
from pynas.store import NETWORK_KIND, Store

# xgboost.train's parameters (its native API: no scikit-learn needed); ROUNDS boosting rounds.
XGB_PARAMS = {"max_depth": 7, "eta": 0.05, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 1.0,
              "tree_method": "hist", "nthread": 1, "objective": "reg:squarederror"}
ROUNDS = 800  # override per call with params={"rounds": N}


@dataclass
class Dataset:
    device_id: str
    backend: str
    backend_version: str
    threads: int
    caches: dict  # {'l1d', 'l2', 'l3'}: bytes or None
    device: dict  # the store's device fingerprint (DeviceFingerprint.to_dict())
    segments: dict[str, tuple[str, dict, float]] = field(default_factory=dict)  # key -> (kind, features, ms)
    networks: dict[str, tuple[list[str], float]] = field(default_factory=dict)  # arch -> (segment keys, ms)
    timing: str = "raw"  # 'ratio' where the series has ratio-timed measurements: then only those count
    ignored: int = 0  # measurements of the series left out (older, raw-timed ones beside ratio-timed ones)
    # 'networks' / 'segments' -> n, median, p90 of the relative difference between a key's first two times
    repeatability: dict[str, dict] = field(default_factory=dict)


def load_dataset(store: Store, *, backend: str, threads: int = 1, device_id: str | None = None,
                 backend_version: str | None = None) -> Dataset:
    """Measurements of one series; a key measured more than once counts with its median (of the
    measurements not taken in a slow spell, if it has any). Without
    device_id / backend_version: the series with the most measurements for backend and threads.

    Ratio-timed and older measurements do not mix: where the series has ratio-timed measurements
    (harness `timing` 'ratio', `pynas.profiling.steady`), only those count, each as its ratio times
    the series' fast state of its reference (every run and pass on one scale), and the older ones
    are left out (`Dataset.ignored`), since their times carry the machine's state with them. The
    series' repeatability (`Dataset.repeatability`): keys timed twice or more, the relative
    difference between their first two ratios, networks and segments apart."""
    from pynas.profiling.steady import TIMING, fast_state, relative_differences, series_reference_times

    # One read of the store: every measurement of this backend and thread count, grouped by series.
    by_series: dict[tuple[str, str], list] = {}
    for m in store.measurements(backend=backend, threads=threads):
        if device_id in (None, m.context.device.device_id) and backend_version in (None, m.context.backend_version):
            by_series.setdefault((m.context.device.device_id, m.context.backend_version), []).append(m)
    if not by_series:
        raise ValueError(f"store {store.path}: no measurements for backend={backend!r} threads={threads}"
                         + (f" device_id={device_id!r}" if device_id else "")
                         + (f" backend_version={backend_version!r}" if backend_version else ""))
    (device_id, backend_version), chosen = max(by_series.items(), key=lambda item: len(item[1]))
    device = chosen[0].context.device
    data = Dataset(device_id, backend, backend_version, threads,
                   {"l1d": device.l1d_bytes, "l2": device.l2_bytes, "l3": device.l3_bytes}, device.to_dict())
    ratio_rows = [m for m in chosen if m.harness.get("timing") == TIMING]
    if ratio_rows:
        data.timing, data.ignored = TIMING, len(chosen) - len(ratio_rows)
        fast = {key: fast_state(times) for key, times in series_reference_times(ratio_rows).items()}
        rows = [(m, m.harness["ratio"] * fast[m.harness["reference"]]) for m in ratio_rows]
    else:
        rows = [(m, m.stats.median_ms) for m in chosen]
    # key -> ([clean ms], [ms taken in a slow spell]): the slow ones count only for a key without clean ones.
    times: dict[str, tuple[list[float], list[float]]] = {}
    meta: dict[str, tuple[str, dict]] = {}
    for m, ms in rows:
        times.setdefault(m.op.key, ([], []))[1 if m.harness.get("slow_spell") else 0].append(ms)
        meta[m.op.key] = (m.op.kind, m.op.features)
    pairs: dict[str, list[tuple[float, float]]] = {"networks": [], "segments": []}
    for key, (clean, slow) in times.items():
        kind, features = meta[key]
        ms = clean or slow
        if len(clean) >= 2:
            pairs["networks" if kind == NETWORK_KIND else "segments"].append((clean[0], clean[1]))
        if kind == NETWORK_KIND:
            data.networks[key] = (list(features["segments"]), statistics.median(ms))
        else:
            data.segments[key] = (kind, features, statistics.median(ms))
    data.repeatability = {kind: relative_differences(p) for kind, p in pairs.items() if p}
    return data


class SegmentModel:
    """XGBoost on log(ms) of segments; predict() returns ms."""

    def __init__(self, caches: dict, params: dict | None = None, booster=None):
        self.caches = dict(caches)
        self.params = dict(XGB_PARAMS, **(params or {}))
        self.booster = booster

    def fit(self, features: list[dict], ms: np.ndarray, seed: int = 0) -> "SegmentModel":
        import xgboost as xgb

        x = feature_matrix(features, self.caches)
        train = xgb.DMatrix(x, label=np.log(np.asarray(ms, dtype=np.float64)), feature_names=list(FEATURE_NAMES))
        params = {k: v for k, v in self.params.items() if k != "rounds"}
        self.booster = xgb.train(dict(params, seed=seed), train, num_boost_round=self.params.get("rounds", ROUNDS))
        return self

    def predict(self, features: list[dict]) -> np.ndarray:
        import xgboost as xgb

        if self.booster is None:
            raise ValueError("model: not trained (fit() or a loaded bundle first)")
        x = feature_matrix(features, self.caches)
        return np.exp(self.booster.predict(xgb.DMatrix(x, feature_names=list(FEATURE_NAMES))))


@dataclass
class Trained:
    model: SegmentModel
    scale: float
    overhead_ms: float
    report: dict
    weight_ms_per_mb: float = 0.0

    @property
    def network_term(self) -> dict:
        return {"scale": self.scale, "overhead_ms": self.overhead_ms, "weight_ms_per_mb": self.weight_ms_per_mb}


def fit_network_term(sums: np.ndarray, measured: np.ndarray, weight_mb: np.ndarray | None = None
                     ) -> tuple[float, float, float]:
    """(scale, overhead_ms, weight_ms_per_mb) minimising the relative error of
    scale * sums + weight_ms_per_mb * weight_mb + overhead vs measured. The weight term (>= 0):
    a segment timed alone finds its weights in L2 after the first run, inside a network they
    were evicted by the other layers' and come from L3 or DRAM, a cost that grows with their bytes.
    Below 10 networks only the overhead is fitted (scale 1, no weight term)."""
    sums, measured = np.asarray(sums, float), np.asarray(measured, float)
    if len(sums) < 10:
        return 1.0, float(np.median(measured - sums)), 0.0
    # Weighted least squares, weights 1/measured: residuals in relative terms.
    columns = [sums / measured, 1.0 / measured]
    if weight_mb is not None:
        columns.append(np.asarray(weight_mb, float) / measured)
    a = np.stack(columns, axis=1)
    solution, *_ = np.linalg.lstsq(a, np.ones_like(measured), rcond=None)
    if weight_mb is not None and solution[2] < 0:  # a physical cost is >= 0: without it, then
        solution, *_ = np.linalg.lstsq(a[:, :2], np.ones_like(measured), rcond=None)
        solution = np.r_[solution, 0.0]
    scale, overhead = float(solution[0]), float(solution[1])
    return scale, overhead, float(solution[2]) if weight_mb is not None else 0.0


def network_segments(arch: str) -> list[tuple[str, dict]]:
    """(key, features) of each segment of a network given by its architecture string."""
    from pynas.arch import parse
    from pynas.ir import lower
    from pynas.ir.segments import segments

    return [(seg.key, seg.features()) for seg in segments(lower(parse(arch)))]


def network_sums(model: SegmentModel, per_arch: list[list[tuple[str, dict]]]) -> np.ndarray:
    """Summed segment predictions of networks, given as their `network_segments`; each distinct
    segment is priced once."""
    distinct = {key: feats for segs in per_arch for key, feats in segs}
    keys = sorted(distinct)
    predicted = dict(zip(keys, model.predict([distinct[k] for k in keys]))) if keys else {}
    return np.array([sum(predicted[k] for k, _ in segs) for segs in per_arch])


def network_weight_mb(per_arch: list[list[tuple[str, dict]]]) -> np.ndarray:
    """The weights of each network's segments (given as their `network_segments`), in MB: what a
    network run fetches cold."""
    return np.array([sum(f["weight_bytes"] for _, f in segs) / 1e6 for segs in per_arch])


def train(data: Dataset, *, holdout: float = 0.2, seed: int = 0, params: dict | None = None, folds: int = 5
          ) -> Trained:
    """Fit on all but `holdout` of the segments and report on the rest; then refit on every segment
    (the shipped model). The network term is scored by `folds`-fold cross-validation over the
    measured networks (each network's prediction uses a term fitted without it, so every network
    counts as held out) and then fitted on all of them."""
    if len(data.segments) < 20:
        raise ValueError(f"dataset: expected at least 20 measured segments, got {len(data.segments)}")
    rng = np.random.default_rng(seed)
    keys = sorted(data.segments)
    order = rng.permutation(len(keys))
    n_test = int(round(holdout * len(keys)))
    test_keys = [keys[i] for i in order[:n_test]]
    train_keys = [keys[i] for i in order[n_test:]]
    feats = lambda ks: [data.segments[k][1] for k in ks]  # noqa: E731
    ms = lambda ks: np.array([data.segments[k][2] for k in ks])  # noqa: E731
    report: dict = {"segments_measured": len(keys), "networks_measured": len(data.networks), "timing": data.timing}
    if data.repeatability:
        report["repeatability"] = data.repeatability
    held = None
    if test_keys:
        held = SegmentModel(data.caches, params).fit(feats(train_keys), ms(train_keys), seed)
        report["heldout_segments"] = accuracy(held.predict(feats(test_keys)), ms(test_keys))
        report["heldout_segment_keys"] = len(test_keys)
    model = SegmentModel(data.caches, params).fit(feats(keys), ms(keys), seed)
    archs = sorted(data.networks)
    scale, overhead, per_mb = 1.0, 0.0, 0.0
    if archs:
        measured = np.array([data.networks[a][1] for a in archs])
        per_arch = [network_segments(a) for a in archs]  # lowered once, priced by both models below
        sums, weight_mb = network_sums(model, per_arch), network_weight_mb(per_arch)
        scale, overhead, per_mb = fit_network_term(sums, measured, weight_mb)
        report.update(scale=scale, overhead_ms=overhead, weight_ms_per_mb=per_mb, network_term_fit_networks=len(archs))
        if len(archs) >= 2:
            k = min(folds, len(archs))
            report["heldout_networks"] = accuracy(cross_validated(sums, weight_mb, measured, k, rng), measured)
            report["heldout_networks_no_weight_term"] = accuracy(cross_validated(sums, None, measured, k, rng),
                                                                 measured)
            report["heldout_networks_bare_sum"] = accuracy(sums, measured)
            if held is not None:
                # Stricter: segments priced by the model that never saw the held-out 20% of segments.
                report["heldout_networks_segment_holdout_model"] = accuracy(
                    cross_validated(network_sums(held, per_arch), weight_mb, measured, k, rng), measured)
    return Trained(model, scale, overhead, report, per_mb)


def cross_validated(sums: np.ndarray, weight_mb: np.ndarray | None, measured: np.ndarray, folds: int, rng
                    ) -> np.ndarray:
    """Each network's predicted latency with the network term fitted on the other folds only."""
    fold_of = rng.permutation(len(sums)) % folds
    out = np.empty(len(sums))
    for f in range(folds):
        test = fold_of == f
        scale, overhead, per_mb = fit_network_term(sums[~test], measured[~test],
                                                   None if weight_mb is None else weight_mb[~test])
        out[test] = scale * sums[test] + overhead + (0.0 if weight_mb is None else per_mb * weight_mb[test])
    return out
