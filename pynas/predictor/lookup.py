"""Lookup bundles (kind "lookup"): one latency per architecture of an indexed space, no model.

A benchmark that measured every architecture of its space (HW-NAS-Bench on NAS-Bench-201's 15,625
cells) needs no model and no segment table: the bundle is the measured latencies in the space's
index order (`space.index_of(tokens)`), and a prediction is an array lookup:

    p = predictor.load("nb201-pixel3")
    p.predict("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    model = predictor.latency_model("nb201-pixel3", "nb201")   # path "lookup": numpy fancy indexing
    model.predict_batch(tokens)

The bundle folder holds `lookup.npz` (one float64 array `ms`, one latency > 0 per architecture,
pickle-free), `report.json` and the manifest (kind "lookup", the space, the device the numbers
describe). `pynas.predictor.writers.save_lookup` writes one, and `save_nb201_bundle` in
`pynas.predictor.hwnasbench` NAS-Bench-201's from the benchmark data pynas ships.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from pynas.predictor.manifest import MANIFEST, BundleError, Manifest, space_of
from pynas.predictor.predictors import _Bundle, _check_latencies

LOOKUP = "lookup.npz"
KIND = "lookup"


def _indexed(space) -> bool:
    """Whether `space` numbers its architectures (what a lookup is laid out by)."""
    return hasattr(space, "index_of")


def read_lookup(path: Path, space) -> np.ndarray:
    """The latencies of a lookup file, checked: one array `ms`, float, one value per architecture
    of `space`, each finite and > 0. BundleError naming the file and field otherwise."""
    from pynas.predictor.table import TableFileError, _read_npz

    try:
        arrays = _read_npz(path)
    except TableFileError as error:
        raise BundleError(str(error)) from None
    if set(arrays) != {"ms"}:
        raise BundleError(f"{path}: arrays: expected ['ms'] (one latency per architecture), got {sorted(arrays)}")
    ms = arrays["ms"]
    if ms.dtype.kind != "f" or ms.ndim != 1 or len(ms) != space.size:
        raise BundleError(f"{path}: ms: expected {space.size} float latencies (one per architecture of "
                          f"{space.name}, in its index order), got {ms.dtype} with shape {ms.shape}")
    bad = ~(np.isfinite(ms) & (ms > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise BundleError(f"{path}: ms[{i}]: expected a latency > 0 ms, got {float(ms[i])!r}")
    ms = ms.astype(np.float64)
    ms.flags.writeable = False
    return ms


def write_lookup(path: Path, ms: np.ndarray) -> None:
    ms = np.asarray(ms, dtype=np.float64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, ms=ms)
    Path(path).write_bytes(buffer.getvalue())


def load_lookup(folder: Path, manifest: Manifest, space=None) -> "LookupPredictor":
    """A lookup bundle's predictor (its manifest and file hashes already checked by the caller)."""
    if LOOKUP not in manifest.files:
        raise BundleError(f"{folder}: kind '{KIND}': expected a {LOOKUP} listed in the manifest, got none")
    if manifest.space is None:
        raise BundleError(f"{folder / MANIFEST}: space: expected the space the lookup is indexed by, got null")
    if space is None:
        space = space_of(manifest.space)
    manifest.check_space(space)  # a space built from the manifest must name itself as the manifest does
    if not _indexed(space):
        raise BundleError(f"{folder / MANIFEST}: space: expected a space with indexed architectures (nb201), "
                          f"got {space.name}")
    return LookupPredictor(folder, manifest, space, read_lookup(folder / LOOKUP, space))


class LookupPredictor(_Bundle):
    """A lookup bundle: `ms[i]` is architecture i's latency (i: the space's index)."""

    model = None  # no segment model: `latency_model` never takes the XGBoost path
    table = None  # no compiled table either

    def __init__(self, folder: Path, manifest: Manifest, space, ms: np.ndarray):
        super().__init__(folder, manifest)
        self._space, self.ms = space, ms

    @property
    def space(self):
        return self._space

    def predict_tokens(self, tokens) -> np.ndarray:
        """ms (float64) of each row of an N x D token array: the latency model's path."""
        return self.ms[self._space.index_of(tokens)]

    def _tokens(self, archs_or_tokens) -> np.ndarray:
        if isinstance(archs_or_tokens, np.ndarray):
            return archs_or_tokens
        rows = []
        for item in archs_or_tokens:
            if isinstance(item, (Sequence, np.ndarray)) and not isinstance(item, (str, bytes)):
                rows.append(self._space.check_tokens(item))  # a token row
            else:
                rows.append(self._space.encode(item))  # a string or a cell; anything else: ValueError naming it
        return np.array(rows, dtype=np.int64).reshape(len(rows), len(self._space.decisions))

    def predict_batch(self, archs_or_tokens) -> np.ndarray:
        """ms per architecture: an N x D token array, or a list of cells, strings or token rows."""
        self._warn_if_elsewhere()
        return _check_latencies(self.name, self.predict_tokens(self._tokens(archs_or_tokens)))

    def predict(self, arch) -> float:
        return float(self.predict_batch([arch])[0])

    def explain(self, arch) -> list[dict]:
        """One row: the architecture's index and latency (a lookup has no parts)."""
        index = int(self._space.index_of(self._tokens([arch]))[0])
        return [{"segment": "network", "kind": KIND, "key": f"{self._space.name} index {index}",
                 "ms": float(self.ms[index])}]
