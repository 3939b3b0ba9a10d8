"""The two kinds of loaded predictor bundles that price pynas networks, and how.

* `Predictor` (kind "xgboost"): an XGBoost segment model trained on a device, its network term
  (`pynas.predictor.network_term`) and, when compiled for a space, that space's latency table.
* `TablePredictor` (kind "table"): a compiled table of one space priced from measurements made
  elsewhere (HW-NAS-Bench's devices) or by a few-shot calibration; no model.

Both answer `predict(arch)`, `predict_batch(archs or token rows)` and `explain(arch)`, and say
which device they describe (`device_note()`; `pynas.predictor.device` checks it against this
machine). `pynas.predictor.load` makes them from a bundle folder. The third kind, a lookup of one
latency per architecture (NAS-Bench-201's cells), is `pynas.predictor.lookup`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pynas.arch import Arch
from pynas.predictor.manifest import BundleError, Manifest
from pynas.store.errors import shown
from pynas.predictor.network_term import NetworkTerm, NetworkTermError
from pynas.predictor.train import Dataset, SegmentModel
from pynas.space.catalogue import segments_of
from pynas.space.nb201 import Cell

MEASUREMENTS = "measurements.jsonl.gz"  # optional: what an XGBoost bundle was trained on


def resolve_arch(arch: Arch | str) -> Arch:
    """An Arch from an Arch, a preset name or an architecture string; a NAS-Bench-201 cell (or its
    string) is refused by name: model and table bundles price pynas networks, not cells."""
    if isinstance(arch, Arch):
        return arch
    if isinstance(arch, Cell) or isinstance(arch, str) and arch.startswith("|"):
        text = str(arch) if len(str(arch)) <= 60 else str(arch)[:57] + "..."
        raise BundleError(f"arch: expected a pynas architecture (an Arch, a preset or an architecture string), got "
                          f"the NAS-Bench-201 cell {text}: price it with a lookup bundle of space nb201 "
                          f"(nb201-pixel3, nb201-raspi4, nb201-eyeriss, nb201-fpga)")
    if not isinstance(arch, str):
        raise BundleError(f"arch: expected an Arch, a preset or an architecture string, got {type(arch).__name__}")
    from pynas.presets import resolve

    return resolve(arch)


def _check_latencies(name: str, ms: np.ndarray) -> np.ndarray:
    """A latency model never returns <= 0 ms or a non-number: a bundle that would is refused."""
    bad = ~(np.isfinite(ms) & (ms > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise BundleError(f"bundle {name}: predicted {ms[i]!r} ms for row {i}: expected a latency > 0 (the bundle's "
                          f"numbers are corrupt)")
    return ms


class _Bundle:
    """What both kinds share: the folder, the manifest and what they say about the device."""

    def __init__(self, folder: Path, manifest: Manifest):
        self.folder, self.manifest = folder, manifest
        self._checked_device = False

    def device_differences(self) -> list[str]:
        """What differs between the machine the bundle was made on and this one (empty: this
        machine, or a bundle of another kind of device, such as a phone's table)."""
        from pynas.predictor.device import differences

        return differences(self.manifest)

    def _warn_if_elsewhere(self) -> None:
        """Once per loaded bundle: a DeviceMismatchWarning when it describes another machine."""
        if self._checked_device:
            return
        self._checked_device = True
        diffs = self.device_differences()
        if diffs:
            import warnings

            from pynas.predictor.device import DeviceMismatchWarning, mismatch_message

            warnings.warn(mismatch_message(self.manifest, diffs), DeviceMismatchWarning, stacklevel=3)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def space(self):
        """The space of the bundle's compiled table, or None."""
        table = getattr(self, "table", None)
        return table.space if table is not None else None


class Predictor(_Bundle):
    """An XGBoost bundle: segments priced by the model, composed by the network term."""

    def __init__(self, folder: Path, manifest: Manifest, model: SegmentModel, table=None,
                 term: NetworkTerm | None = None):
        super().__init__(folder, manifest)
        self.model, self.table = model, table
        self.term = term if term is not None else NetworkTerm.from_json(manifest.network_term)
        self.domain = _domain(manifest, table)

    def check_domain(self, arch: Arch, segs) -> None:
        """Refuse an architecture with a segment whose categorical features (kind, kernel, stride,
        activation, shortcut, grouped 1x1 convs) the model never saw: its price would be a guess."""
        if self.manifest.space is not None:
            from pynas.space import spaces_holding

            holders = spaces_holding(arch)
            mine = self.manifest.space["name"]
            if holders and not any(h.split(" ")[0] == mine for h in holders):
                raise BundleError(f"bundle {self.name} was made for space {mine}@{self.manifest.space['resolution']}, "
                                  f"got an architecture of space {', '.join(holders)}: use a bundle of that space")
        if not self.domain:
            return
        for seg in segs:
            features = seg.features()
            known = self.domain.get(seg.kind)
            problem = f"no {seg.kind} segment was measured for it" if known is None else next(
                (f"{name} {features[name]!r} was never measured in a {seg.kind} segment for it (it knows {values})"
                 for name, values in known.items() if features[name] not in values), None)
            if problem:
                made_for = (f"space {self.manifest.space['name']}@{self.manifest.space['resolution']}"
                            if self.manifest.space else "its measured segments")
                raise BundleError(f"bundle {self.name} cannot price segment {seg.id} ({seg.key}): {problem}; "
                                  f"made for {made_for}")

    @property
    def scale(self) -> float:
        return self.term.scale

    @property
    def overhead_ms(self) -> float:
        return self.term.overhead_ms

    def segment_ms(self, kinds: Sequence[str], features: Sequence[dict]) -> np.ndarray:
        """Predicted ms of segments (their kinds and features) as they count in a network: the
        model's price x its group's scale + its group's per-segment and weight terms."""
        if not features:
            return np.zeros(0)
        scales, offsets = self.term.segment_terms(kinds, features)
        return self.model.predict(list(features)) * scales + offsets

    def segment_terms(self, kinds: Sequence[str], features: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
        return self.term.segment_terms(kinds, features)

    def training_data(self) -> Dataset | None:
        """The Dataset this bundle was trained on, from the measurements it ships (`MEASUREMENTS`;
        None without them): to retrain it or re-check its report."""
        import tempfile

        from pynas.predictor.train import load_dataset
        from pynas.store import Store, import_jsonl

        path = self.folder / MEASUREMENTS
        if not path.is_file():
            return None
        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "m.sqlite") as store:
            import_jsonl(store, path)
            return load_dataset(store, backend=self.manifest.backend, threads=self.manifest.threads)

    def batched(self, space):
        """The XGBoost path over token rows of `space`, vectorised (`pynas.predictor.batched`)."""
        from pynas.predictor.batched import BatchedModel

        return BatchedModel(self, space)

    def explain(self, arch: Arch | str) -> list[dict]:
        """Per segment: id, key, kind, predicted ms (as counted in the network sum); then the overhead."""
        self._warn_if_elsewhere()
        arch = resolve_arch(arch)
        segs = segments_of(arch)
        self.check_domain(arch, segs)
        ms = self.segment_ms([s.kind for s in segs], [s.features() for s in segs])
        rows = [{"segment": s.id, "kind": s.kind, "key": s.key, "ms": float(m)} for s, m in zip(segs, ms)]
        return rows + [{"segment": "overhead", "kind": "network", "key": "", "ms": self.overhead_ms}]

    def predict(self, arch: Arch | str) -> float:
        return float(self.predict_batch([arch])[0])

    def predict_batch(self, archs_or_tokens: Sequence[Arch | str] | np.ndarray) -> np.ndarray:
        """ms per architecture. Token arrays (N x D) need the bundle's compiled table; a list of
        architectures is priced by XGBoost on all their distinct segments at once (any space)."""
        self._warn_if_elsewhere()
        if isinstance(archs_or_tokens, np.ndarray):
            if self.table is None:
                raise BundleError(f"bundle {self.name}: token arrays need a compiled table; this bundle has none "
                                  "(pass architectures, or calibrate with --space)")
            return _check_latencies(self.name, self.table.predict_batch(archs_or_tokens))
        archs = [resolve_arch(a) for a in archs_or_tokens]
        per_arch = [segments_of(a) for a in archs]
        for arch, segs in zip(archs, per_arch):
            self.check_domain(arch, segs)
        distinct = {s.key: s for segs in per_arch for s in segs}
        ms = dict(zip(distinct, self.segment_ms([s.kind for s in distinct.values()],
                                                [s.features() for s in distinct.values()])))
        out = np.array([sum(ms[s.key] for s in segs) + self.overhead_ms for segs in per_arch], dtype=np.float64)
        try:
            return self.term.check(out)
        except NetworkTermError as error:
            raise BundleError(f"bundle {self.name}: {error}") from None


def _domain(manifest: Manifest, table) -> dict[str, dict[str, list]] | None:
    """What the model has seen: the manifest's record of it, else (older bundles) the categorical
    values of its space's segments, else nothing to check against."""
    from pynas.predictor.train import DOMAIN_FEATURES, domain_of

    domain = manifest.extra.get("domain")
    if domain is not None:
        ok = isinstance(domain, dict) and all(
            isinstance(v, dict) and set(v) == set(DOMAIN_FEATURES) and all(isinstance(x, list) for x in v.values())
            for v in domain.values())
        if not ok:
            raise BundleError(f"bundle {manifest.name}: extra.domain: expected {{kind: {{feature: [values]}}}} for "
                              f"{', '.join(DOMAIN_FEATURES)}, got {shown(domain, 80)}")
        return domain
    if table is not None and table.space is not None:
        from pynas.space.catalogue import space_items

        return domain_of(i.features for i in space_items(table.space).values())
    return None


class TablePredictor(_Bundle):
    """A table bundle: latencies measured per block elsewhere (e.g. HW-NAS-Bench's phones) or
    calibrated to a device, only for the one space its compiled table covers."""

    def __init__(self, folder: Path, manifest: Manifest, table):
        super().__init__(folder, manifest)
        self.table = table

    def _rows(self, archs_or_tokens):
        if isinstance(archs_or_tokens, np.ndarray):
            return archs_or_tokens
        return [a if not isinstance(a, (Arch, str, Cell)) else resolve_arch(a) for a in archs_or_tokens]

    def explain(self, arch: Arch | str | Sequence[int]) -> list[dict]:
        """The table cells the architecture reads (stem, each layer, head, overhead)."""
        self._warn_if_elsewhere()
        row = resolve_arch(arch) if isinstance(arch, (Arch, str, Cell)) else arch
        return [{"segment": r["part"], "kind": r["cell"], "key": "", "ms": r["ms"]} for r in self.table.explain(row)]

    def predict(self, arch: Arch | str | Sequence[int]) -> float:
        return float(self.predict_batch([arch])[0])

    def predict_batch(self, archs_or_tokens) -> np.ndarray:
        self._warn_if_elsewhere()
        return _check_latencies(self.name, self.table.predict_batch(self._rows(archs_or_tokens)))
