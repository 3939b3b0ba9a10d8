"""What one measurement is: where it was taken (Context), of what (OpKey), its statistics (Stats),
and the whole self-contained record (Measurement), each validated when made."""
from __future__ import annotations

import socket
import statistics
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from pynas.ir.ops import KINDS as OP_KINDS
from pynas.ir.segments import SEGMENT_KINDS
from pynas.store import fields
from pynas.store.errors import FieldError
from pynas.store.fingerprint import DeviceFingerprint, current_mhz, kernel_release, this_device

NETWORK_KIND = "network"  # a whole network, keyed by its architecture string
# What a measurement can be of, the one list: a whole network, a segment of one (what profiling
# measures: pynas.ir.segments), or one op or fused kernel (pynas.ir.ops: what op-level harnesses and
# pynas-profile's op lists time). Anything else is a typo or a corrupt record, never a new kind.
KINDS = (NETWORK_KIND,) + SEGMENT_KINDS + tuple(k for k in OP_KINDS if k not in SEGMENT_KINDS)
MAX_THREADS = 4096  # as a bundle manifest's threads


@dataclass(frozen=True)
class Stats:
    """Latency statistics of one measurement, in milliseconds, over `runs` timed runs."""

    median_ms: float
    mad_ms: float  # median absolute deviation from the median
    p10_ms: float
    p90_ms: float
    runs: int

    def __post_init__(self):
        for name in ("median_ms", "mad_ms", "p10_ms", "p90_ms"):
            object.__setattr__(self, name, fields.latency(name, getattr(self, name)))
        fields.integer("runs", self.runs, 1)
        if self.p10_ms > self.p90_ms:
            raise FieldError("p10_ms", f"<= p90_ms ({self.p90_ms})", self.p10_ms)

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> "Stats":
        """Statistics of per-run times in ms; p10/p90 by linear interpolation between samples
        (statistics.quantiles' 'inclusive' method), so they lie within the samples' range."""
        samples = list(samples_ms)
        if not samples:
            raise FieldError("samples_ms", "at least one sample", samples)
        for i, sample in enumerate(samples):
            fields.latency(f"samples_ms[{i}]", sample)
        median = statistics.median(samples)
        mad = statistics.median(abs(s - median) for s in samples)
        deciles = statistics.quantiles(samples, n=10, method="inclusive") if len(samples) > 1 else [samples[0]] * 9
        return cls(median, mad, deciles[0], deciles[-1], len(samples))

    def to_dict(self) -> dict[str, Any]:
        return {"median_ms": self.median_ms, "mad_ms": self.mad_ms, "p10_ms": self.p10_ms,
                "p90_ms": self.p90_ms, "runs": self.runs}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Stats":
        fields.exact_keys("", data, STATS_FIELDS)
        return cls(**data)


STATS_FIELDS = ("median_ms", "mad_ms", "p10_ms", "p90_ms", "runs")


@dataclass(frozen=True)
class OpKey:
    """What was timed: the IR's canonical key of an op or fused kernel (or an architecture string
    for a whole network, kind 'network'), its kind, and features (shapes, kernel, stride, MACs,
    bytes...) as a JSON object. Identical work has one key; a key's features never change, but a
    later pynas may add features (see Store.record)."""

    key: str
    kind: str
    features: dict = field(default_factory=dict)

    def __post_init__(self):
        fields.text("key", self.key, spaces=False)
        fields.text("kind", self.kind, spaces=False)
        if self.kind not in KINDS:
            raise FieldError("kind", f"one of {', '.join(KINDS)}", self.kind)
        object.__setattr__(self, "features", fields.json_object("features", self.features))


@dataclass(frozen=True)
class Context:
    """Where and how measurements are taken. The first four fields are the measurement context
    that Store.missing() matches on (a key measured there is not measured again); the others are
    facts of the run, stored with each measurement."""

    device: DeviceFingerprint
    backend: str  # e.g. 'native', 'onnxruntime', 'litert', 'torch'
    backend_version: str
    threads: int
    session: str  # origin tag of a run, e.g. 'pixel7 nightly'; kept through export and import
    pynas_version: str
    kernel: str  # OS kernel release
    cpu_mhz: float | None  # cpu0's clock when the run started; None where not readable

    def __post_init__(self):
        if not isinstance(self.device, DeviceFingerprint):
            raise FieldError("device", "a DeviceFingerprint", self.device)
        fields.text("backend", self.backend, spaces=False)
        fields.text("backend_version", self.backend_version, spaces=False)
        fields.integer("threads", self.threads, 1, MAX_THREADS)
        fields.text("session", self.session)
        fields.text("pynas_version", self.pynas_version, spaces=False)
        fields.text("kernel", self.kernel)
        object.__setattr__(self, "cpu_mhz", fields.optional_number("cpu_mhz", self.cpu_mhz, positive=True))

    @classmethod
    def here(cls, backend: str, backend_version: str, threads: int, session: str | None = None) -> "Context":
        """A context on this machine, with this pynas; session defaults to 'HOSTNAME@UTC-START-TIME'."""
        import pynas

        if session is None:
            session = f"{socket.gethostname()}@{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
        return cls(this_device(), backend, backend_version, threads, session, pynas.__version__, kernel_release(),
                   current_mhz())

    @property
    def series(self) -> tuple[str, str, str, int]:
        """(device_id, backend, backend_version, threads): what Store.missing() matches on."""
        return (self.device.device_id, self.backend, self.backend_version, self.threads)


@dataclass(frozen=True)
class Measurement:
    """One measurement, self-contained: the unit of the store and of portable files."""

    measurement_id: str  # UUID; the same measurement imported twice is stored once
    measured_at: str  # UTC 'YYYY-MM-DDTHH:MM:SS.ffffffZ'
    context: Context
    op: OpKey
    stats: Stats
    harness: dict  # how it was timed: warm-up, runs, pinning, ... as a JSON object

    def __post_init__(self):
        fields.measurement_id("measurement_id", self.measurement_id)
        object.__setattr__(self, "measured_at", fields.timestamp("measured_at", self.measured_at))
        for name, kind in (("context", Context), ("op", OpKey), ("stats", Stats)):
            if not isinstance(getattr(self, name), kind):
                raise FieldError(name, f"a {kind.__name__}", getattr(self, name))
        object.__setattr__(self, "harness", fields.json_object("harness", self.harness))

    @classmethod
    def new(cls, context: Context, op: OpKey, stats: Stats, harness: Mapping[str, Any] | None = None,
            measured_at: str | None = None) -> "Measurement":
        """A measurement with a fresh random UUID, taken now unless `measured_at` says when."""
        when = measured_at if measured_at is not None else fields.format_timestamp(datetime.now(timezone.utc))
        return cls(str(uuid.uuid4()), when, context, op, stats, dict(harness or {}))

    def to_record(self) -> dict[str, Any]:
        """The portable record (see pynas.store.portable for the field list)."""
        c = self.context
        return {"measurement_id": self.measurement_id, "measured_at": self.measured_at, "session": c.session,
                "device": c.device.to_dict(), "kernel": c.kernel, "cpu_mhz": c.cpu_mhz, "backend": c.backend,
                "backend_version": c.backend_version, "threads": c.threads, "pynas_version": c.pynas_version,
                "key": self.op.key, "kind": self.op.kind, "features": self.op.features,
                "stats": self.stats.to_dict(), "harness": self.harness}

    @classmethod
    def from_record(cls, record: Any) -> "Measurement":
        """From a portable record; FieldError names the bad field by its dotted path."""
        fields.exact_keys("", record, RECORD_FIELDS)
        device = _nested("device", DeviceFingerprint.from_dict, record["device"])
        stats = _nested("stats", Stats.from_dict, record["stats"])
        context = Context(device, record["backend"], record["backend_version"], record["threads"], record["session"],
                          record["pynas_version"], record["kernel"], record["cpu_mhz"])
        op = OpKey(record["key"], record["kind"], record["features"])
        return cls(record["measurement_id"], record["measured_at"], context, op, stats, record["harness"])


RECORD_FIELDS = ("measurement_id", "measured_at", "session", "device", "kernel", "cpu_mhz", "backend",
                 "backend_version", "threads", "pynas_version", "key", "kind", "features", "stats", "harness")


def _nested(name: str, parse, value: Any):
    """parse(value) for the object in field `name`, its errors naming 'name.field'."""
    if not isinstance(value, Mapping):
        raise FieldError(name, "a JSON object", value)
    try:
        return parse(value)
    except FieldError as error:
        raise error.within(name) from None
