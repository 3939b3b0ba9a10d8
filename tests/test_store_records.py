"""A measurement's parts: every field checked when made, records round-trip, errors name the field."""
import math

import pytest

from pynas.store import Context, FieldError, Measurement, OpKey, Stats, this_device

UUID = "0b7e2f8a-5c1d-4e7f-9a3b-2c4d6e8f0a1b"


def test_stats_from_samples():
    stats = Stats.from_samples([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (stats.median_ms, stats.mad_ms, stats.runs) == (3.0, 1.0, 5)
    assert 1.0 <= stats.p10_ms < stats.median_ms < stats.p90_ms <= 100.0
    assert Stats.from_samples([2.5]) == Stats(2.5, 0.0, 2.5, 2.5, 1)
    with pytest.raises(FieldError, match="field 'samples_ms': expected at least one sample"):
        Stats.from_samples([])
    with pytest.raises(FieldError, match=r"field 'samples_ms\[1\]': expected a finite number >= 0 and <= 1e\+06, "
                                         r"got nan"):
        Stats.from_samples([1.0, math.nan])


@pytest.mark.parametrize("values, message", [
    ((math.nan, 0, 1, 1, 3), "field 'median_ms': expected a finite number >= 0 and <= 1e\\+06, got nan"),
    ((1, -0.5, 1, 1, 3), "field 'mad_ms': expected a finite number >= 0 and <= 1e\\+06, got -0.5"),
    ((1, 0, 1, math.inf, 3), "field 'p90_ms': expected a finite number >= 0 and <= 1e\\+06, got inf"),
    ((1, 0, 2, 1, 3), r"field 'p10_ms': expected <= p90_ms \(1.0\), got 2.0"),
    ((1, 0, 1, 1, 0), "field 'runs': expected an integer >= 1, got 0"),
    ((1, 0, 1, 1, True), "field 'runs': expected an integer >= 1, got True"),
    (("1", 0, 1, 1, 3), "field 'median_ms': expected a finite number >= 0 and <= 1e\\+06, got '1'"),
])
def test_bad_stats(values, message):
    with pytest.raises(FieldError, match=message):
        Stats(*values)


def test_op_key():
    op = OpKey("pw_i32x28x28_o64", "pwconv", {"shape": (1, 32, 28, 28), "macs": 1605632})
    assert op.features == {"shape": [1, 32, 28, 28], "macs": 1605632}  # JSON's types: reads back equal
    with pytest.raises(FieldError, match="field 'key': expected a non-empty string without whitespace"):
        OpKey("pw 1", "pwconv")
    with pytest.raises(FieldError, match="field 'kind': expected a non-empty string without whitespace, got ''"):
        OpKey("pw_1", "")
    with pytest.raises(FieldError, match="field 'features': expected a JSON object of JSON values"):
        OpKey("pw_1", "pwconv", {"macs": math.nan})
    with pytest.raises(FieldError, match="field 'features': expected a JSON object, got"):
        OpKey("pw_1", "pwconv", [1, 2])


@pytest.mark.parametrize("change, message", [
    ({"threads": 0}, r"field 'threads': expected an integer in \[1, 4096\], got 0"),
    ({"threads": True}, r"field 'threads': expected an integer in \[1, 4096\], got True"),
    ({"threads": 4097}, r"field 'threads': expected an integer in \[1, 4096\], got 4097"),
    ({"backend": "onnx runtime"}, "field 'backend': expected a non-empty string without whitespace"),
    ({"backend_version": ""}, "field 'backend_version': expected a non-empty string"),
    ({"session": ""}, "field 'session': expected a non-empty string, got ''"),
    ({"cpu_mhz": -1}, "field 'cpu_mhz': expected a finite number > 0 or null, got -1"),
    ({"device": "pixel"}, "field 'device': expected a DeviceFingerprint, got 'pixel'"),
])
def test_bad_context(make_context, change, message):
    with pytest.raises(FieldError, match=message):
        make_context(**change)


def test_context_here():
    context = Context.here("native", "0.1.0", threads=2)
    assert context.device == this_device() and context.threads == 2
    assert context.pynas_version == "0.1.0" and context.kernel and "@" in context.session
    assert context.series == (this_device().device_id, "native", "0.1.0", 2)
    assert Context.here("native", "0.1.0", 1, session="nightly").session == "nightly"


def _measurement(make_context, **changes):
    values = dict(measurement_id=UUID, measured_at="2026-01-02T03:04:05.5Z", context=make_context(),
                  op=OpKey("pw_1", "pwconv", {"macs": 10}), stats=Stats(1.5, 0.1, 1.4, 1.7, 50), harness={"warmup": 5})
    values.update(changes)
    return Measurement(**values)


def test_record_round_trip(make_context):
    measurement = _measurement(make_context)
    assert measurement.measured_at == "2026-01-02T03:04:05.500000Z"  # fixed width: text order is time order
    record = measurement.to_record()
    assert list(record) == ["measurement_id", "measured_at", "session", "device", "kernel", "cpu_mhz", "backend",
                            "backend_version", "threads", "pynas_version", "key", "kind", "features", "stats",
                            "harness"]
    assert Measurement.from_record(record) == measurement
    fresh = Measurement.new(make_context(), measurement.op, measurement.stats)
    assert fresh.measurement_id != Measurement.new(make_context(), measurement.op, measurement.stats).measurement_id
    assert fresh.harness == {} and fresh.measured_at.endswith("Z")


@pytest.mark.parametrize("change, message", [
    ({"measurement_id": UUID.upper()}, "field 'measurement_id': expected a UUID in lowercase 8-4-4-4-12 hex form"),
    ({"measurement_id": "42"}, "field 'measurement_id': expected a UUID"),
    ({"measured_at": "2026-01-02 03:04:05"}, "field 'measured_at': expected a UTC 'YYYY-MM-DDTHH:MM:SS"),
    ({"measured_at": "2026-02-30T03:04:05Z"}, "field 'measured_at': expected a valid UTC .*day is out of range"),
    ({"measured_at": "2026-01-02T03:04:05+01:00"}, "field 'measured_at': expected a UTC"),
    ({"harness": {"pin": {1, 2}}}, "field 'harness': expected a JSON object of JSON values"),
])
def test_bad_measurement(make_context, change, message):
    with pytest.raises(FieldError, match=message):
        _measurement(make_context, **change)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("threads"), "field 'threads': expected a value, got nothing"),
    (lambda r: r.update(host="x"), "field 'host': expected no such field"),
    (lambda r: r["device"].update(logical_cores="8"), "field 'device.logical_cores': expected an integer >= 1"),
    (lambda r: r["device"].pop("os"), "field 'device.os': expected a value, got nothing"),
    (lambda r: r.update(device=[1]), "field 'device': expected a JSON object, got \\[1\\]"),
    (lambda r: r["stats"].update(median_ms="fast"), "field 'stats.median_ms': expected a finite number >= 0"),
    (lambda r: r["stats"].update(runs=2.0), "field 'stats.runs': expected an integer >= 1, got 2.0"),
    (lambda r: r.update(features=None), "field 'features': expected a JSON object, got None"),
])
def test_bad_record_names_the_field(make_context, edit, message):
    record = _measurement(make_context).to_record()
    edit(record)
    with pytest.raises(FieldError, match=message):
        Measurement.from_record(record)


def test_kinds_are_the_ones_pynas_measures():
    """One list of kinds (records.KINDS): a whole network, the IR's segments, ops and fused
    kernels; a typo, another string or one with a NUL byte is refused."""
    from pynas.ir.fusion import BLOCK_KERNELS
    from pynas.ir.ops import KINDS as OP_KINDS
    from pynas.ir.segments import SEGMENT_KINDS
    from pynas.store.records import KINDS

    assert set(KINDS) == {"network"} | set(SEGMENT_KINDS) | set(OP_KINDS) | set(BLOCK_KERNELS.values())
    assert len(KINDS) == len(set(KINDS))
    for kind in KINDS:
        assert OpKey("k", kind).kind == kind
    for kind, message in (("lstm", "field 'kind': expected one of network, stem, mbconv"),
                          ("pw\x00conv", "field 'kind': expected a string without control characters"),
                          ("Network", "field 'kind': expected one of")):
        with pytest.raises(FieldError, match=message):
            OpKey("k", kind)
    with pytest.raises(FieldError, match="field 'key': expected a string without control characters"):
        OpKey("pw_1\x07", "pwconv")


def test_latencies_are_bounded(make_context):
    assert Stats(1e6, 0, 1e6, 1e6, 1).median_ms == 1e6
    for value in (1e308, 1e6 + 1, 10 ** 400):
        with pytest.raises(FieldError, match=r"field 'median_ms': expected a finite number >= 0 and <= 1e\+06"):
            Stats(value, 0, 0, 1, 1)
    with pytest.raises(FieldError, match=r"field 'samples_ms\[0\]': expected a finite number >= 0 and <= 1e\+06"):
        Stats.from_samples([2e6])
