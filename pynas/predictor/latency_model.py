"""One latency model per space: what a search calls, thousands of times a second.

    from pynas.predictor import latency_model
    model = latency_model("x86-avx512-native", "mnasnet", resolution=224)
    ms = model.predict_batch(space.sample_tokens(100_000))     # float64 ms, one per token row

`latency_model(bundle, space, resolution)` picks the fastest valid path for that (bundle, space,
resolution) once, and the search has no other way to a latency:

* a lookup bundle's per-architecture latencies (`pynas.predictor.lookup`: NAS-Bench-201's
  HW-NAS-Bench numbers; numpy fancy indexing, tens of millions of rows/s) for its own space only;
* the bundle's compiled table (C++, ~30M rows/s) when it was compiled for exactly this space;
* else, for an XGBoost bundle, the vectorised model over the space's cells (`BatchedModel`,
  ~1M rows/s at large batches), priced at query time;
* else it refuses: a table or lookup bundle of another space, a bundle whose model never saw the
  space's segments (another space's op types), or a space pynas does not lower to segments
  (NAS-Bench-201) asked of a model or table bundle, with the space expected vs got.

Every path returns latencies > 0 (the fits behind them are constrained; a corrupt bundle that
would not is refused) and warns once (`DeviceMismatchWarning`) when the bundle describes another
machine than this one.
"""
from __future__ import annotations

import numpy as np

from pynas.predictor.manifest import BundleError, space_info


class LatencyModel:
    """`predict_batch(tokens) -> ms` for one space, by one path (`path`: "lookup", "table" or "xgboost")."""

    def __init__(self, predictor, space, path: str, predict):
        self.predictor, self.space, self.path = predictor, space, path
        self._predict = predict

    @property
    def name(self) -> str:
        return self.predictor.name

    def predict_batch(self, tokens) -> np.ndarray:
        """Predicted ms (float64) of each row of an N x D integer token array of the space."""
        ms = np.asarray(self._predict(tokens), dtype=np.float64)
        bad = ~(np.isfinite(ms) & (ms > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise BundleError(f"bundle {self.name}: predicted {ms[i]!r} ms for row {i}: expected a latency > 0")
        return ms

    def __repr__(self) -> str:
        return f"LatencyModel({self.name!r}, {self.space.name}@{self.space.resolution}, path={self.path!r})"


def latency_model(bundle, space, resolution: int | None = None, **space_options) -> LatencyModel:
    """The latency model of `bundle` (a name, a folder or a loaded bundle) over `space` (a name or a
    SearchSpace; `resolution` and other options build it from a name)."""
    from pynas.predictor import bundle as bundles
    from pynas.space import get_space

    if isinstance(space, str):
        if resolution is not None:
            space_options["resolution"] = resolution
        space = get_space(space, **space_options)
    elif resolution is not None and resolution != space.resolution:
        raise ValueError(f"resolution: expected the space's own ({space.resolution}) or none, got {resolution}")
    predictor = bundles.load(bundle) if isinstance(bundle, (str, bytes)) or hasattr(bundle, "__fspath__") else bundle
    predictor._warn_if_elsewhere()
    want, have = space_info(space), predictor.manifest.space
    got = "no space" if have is None else f"{have['name']}@{have['resolution']} {have['options']}"
    expected = f"space: expected {want['name']}@{want['resolution']} {want['options']} (asked for)"
    if predictor.manifest.kind == "lookup":
        if have != want:
            raise BundleError(f"bundle {predictor.name}: {expected}, got a lookup of {got}: a lookup prices only its "
                              f"own space's architectures")
        return LatencyModel(predictor, space, "lookup", predictor.predict_tokens)
    if have == want and predictor.table is not None:
        return LatencyModel(predictor, space, "table", predictor.table.predict_batch)
    if getattr(predictor, "model", None) is None:
        raise BundleError(f"bundle {predictor.name}: {expected}, got a table of {got}: a table prices only its own "
                          f"space")
    if not space.lowerable:
        raise BundleError(f"bundle {predictor.name}: {expected}, got an XGBoost bundle made for {got}: it prices "
                          f"segments of pynas networks, and {space.name}'s architectures are not lowered to any "
                          f"(use a lookup bundle of the space, e.g. nb201-pixel3)")
    batched = predictor.batched(space)
    _check_domain(predictor, space, want, got)
    return LatencyModel(predictor, space, "xgboost", batched.predict_batch)


def _check_domain(predictor, space, want: dict, got: str) -> None:
    """An XGBoost bundle prices another space (or resolution) only if it has seen every kind of
    segment that space has (its categorical features): otherwise its prices there are guesses."""
    from pynas.space.catalogue import space_items

    unseen = []
    for item in space_items(space).values():
        try:
            predictor.check_domain(item.arch, [_segment(item)])
        except BundleError as error:
            unseen.append(str(error))
            break
    if unseen:
        raise BundleError(f"bundle {predictor.name}: space: expected a bundle that has measured "
                          f"{want['name']}@{want['resolution']}'s segments, got one made for {got} ({unseen[0]})")


def _segment(item):
    from pynas.space.catalogue import segment_by_id

    return segment_by_id(item.arch)[item.segment]
