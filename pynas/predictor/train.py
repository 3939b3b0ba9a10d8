"""Train a latency predictor for one (device, backend, threads) series from the measurement store.

Model: an XGBoost regressor on log(latency) of segments (a relative-error objective: a 10% miss
costs the same on a 20 us head as on a 2 ms block), features from `pynas.predictor.features`.
A network's latency is the sum of its segments' predictions, corrected by a per-network term
fitted from whole-network measurements (`pynas.predictor.network_term`): latency = scale * sum +
weight_ms_per_mb * (MB of weights) + overhead_ms (least squares on relative error, every
coefficient >= 0, so no network is ever predicted at <= 0 ms). Why not the bare sum: a segment timed alone runs
with its weights warm in L2, inside a network the other segments have evicted them, so they come
from L3 or DRAM (a cost per byte of weights: on this machine it halves the held-out network error
of scale + overhead alone), other effects scale with the work, and a network pays dispatch between
steps (a fixed cost). With fewer than 10 networks one parameter is fitted (the overhead, or a scale).

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
from pynas.predictor.network_term import NetworkTerm, fit_for_space
from pynas.store import NETWORK_KIND, Store

# The categorical features of segments: a bundle prices only segments of kinds it has measured,
# with values of these it has seen for that kind (`Dataset.domain`, `Predictor.check_domain`): a
# model that never saw a grouped 1x1 conv or an h-swish has no idea what one costs.
DOMAIN_FEATURES = ("kernel", "stride", "act", "skip", "pw_groups")

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
    networks: dict[str, float] = field(default_factory=dict)  # architecture string -> ms
    timing: str = "raw"  # 'ratio' where the series has ratio-timed measurements: then only those count
    ignored: int = 0  # measurements of the series left out (older, raw-timed ones beside ratio-timed ones)
    # 'networks' / 'segments' -> n, median, p90 of the relative difference between a key's first two times
    repeatability: dict[str, dict] = field(default_factory=dict)

    def domain(self) -> dict[str, dict[str, list]]:
        """Per measured segment kind, the values of each categorical feature (DOMAIN_FEATURES) seen."""
        return domain_of(f for _, f, _ in self.segments.values())


def domain_of(features) -> dict[str, dict[str, list]]:
    """{kind: {feature: sorted values}} of segments' features (DOMAIN_FEATURES)."""
    seen: dict[str, dict[str, set]] = {}
    for f in features:
        kind = seen.setdefault(f["kind"], {name: set() for name in DOMAIN_FEATURES})
        for name in DOMAIN_FEATURES:
            kind[name].add(f[name])
    return {k: {name: sorted(v, key=str) for name, v in values.items()} for k, values in sorted(seen.items())}


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
            # Priced from its architecture string (the key), not from the stored features: records
            # written by pynas-profile, over adb or by an older pynas describe a network otherwise.
            data.networks[key] = statistics.median(ms)
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

    @classmethod
    def load(cls, path, caches: dict) -> "SegmentModel":
        """A model saved by `booster.save_model` (UBJ); BundleError naming the file if it is not one."""
        import xgboost as xgb

        from pynas.predictor.manifest import BundleError

        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
        except xgb.core.XGBoostError as error:  # its message is a C++ stack trace: keep the first line
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise BundleError(f"{path}: expected an XGBoost model (UBJ), got a file XGBoost cannot read ({reason})") \
                from None
        return cls(caches, booster=booster)

    def predict(self, features: list[dict]) -> np.ndarray:
        import xgboost as xgb

        if self.booster is None:
            raise ValueError("model: not trained (fit() or a loaded bundle first)")
        x = feature_matrix(features, self.caches)
        return np.exp(self.booster.predict(xgb.DMatrix(x, feature_names=list(FEATURE_NAMES))))


@dataclass
class Trained:
    model: SegmentModel
    term: NetworkTerm
    report: dict


def network_segments(arch: str) -> list[tuple[str, dict]]:
    """(key, features) of each segment of a network given by its architecture string."""
    from pynas.arch import parse
    from pynas.space.catalogue import segments_of

    return [(seg.key, seg.features()) for seg in segments_of(parse(arch))]


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


def train(data: Dataset, *, holdout: float = 0.2, seed: int = 0, params: dict | None = None, folds: int = 5,
          space=None) -> Trained:
    """Fit on all but `holdout` of the segments and report on the rest; then refit on every segment
    (the shipped model). The network term is scored by `folds`-fold cross-validation over the
    measured networks (each network's prediction uses a term fitted without it, so every network
    counts as held out) and then fitted on all of them; with `space` (what the bundle's table will
    cover) bounded so that no network of the space is predicted from less than half its work
    (`pynas.predictor.network_term.fit_for_space`)."""
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
    term = NetworkTerm()
    if archs:
        measured = np.array([data.networks[a] for a in archs])
        per_arch = [network_segments(a) for a in archs]  # lowered once, priced by both models below
        sums, weight_mb = network_sums(model, per_arch), network_weight_mb(per_arch)
        term = NetworkTerm.fit(sums, measured, weight_mb) if space is None else \
            fit_for_space(sums, measured, weight_mb, _space_work(model, space))
        report.update(scale=term.scale, overhead_ms=term.overhead_ms, weight_ms_per_mb=term.weight_ms_per_mb,
                      network_term_fit_networks=len(archs))
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
    return Trained(model, term, report)


def _space_work(model: SegmentModel, space):
    """min_work_ms(scale, weight) for `fit_for_space`: the least scale x (summed model prices) +
    weight x (MB of weights) over every network of `space`."""
    from pynas.predictor.batched import SpaceCells

    cells = SpaceCells(space)
    prices, constants = model.predict(cells.features), model.predict(cells.constant_features)
    mb = np.array([f["weight_bytes"] for f in cells.features]) / 1e6
    constant_mb = np.array([f["weight_bytes"] for f in cells.constant_features]) / 1e6
    return lambda scale, weight: cells.cheapest(scale * prices + weight * mb, scale * constants + weight * constant_mb)


def cross_validated(sums: np.ndarray, weight_mb: np.ndarray | None, measured: np.ndarray, folds: int, rng
                    ) -> np.ndarray:
    """Each network's predicted latency with the network term fitted on the other folds only."""
    fold_of = rng.permutation(len(sums)) % folds
    out = np.empty(len(sums))
    for f in range(folds):
        test = fold_of == f
        term = NetworkTerm.fit(sums[~test], measured[~test], None if weight_mb is None else weight_mb[~test])
        out[test] = term.network_ms(sums[test], np.zeros(int(test.sum())) if weight_mb is None else weight_mb[test])
    return out
