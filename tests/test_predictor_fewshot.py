"""Few-shot calibration (pynas.predictor.fewshot): recovering a device that differs from the base
per op type, the evaluation per k, calibrated bundles, the CSV of measured networks, the CLI.
A base table bundle on the FBNet space is priced with made-up latencies, so no data file is needed."""
import hashlib

import numpy as np
import pytest

from pynas.ir import lower
from pynas.ir.segments import segments
from pynas.predictor import bundle, fewshot
from pynas.predictor.table import compile_table
from pynas.space import FBNetSpace
from pynas.space.catalogue import space_items

# The "new device": per op-type group factors, a per-network and a per-segment cost.
TRUE_SCALES = {"stem": 1.3, "head": 1.1, "mbconv_k3": 1.6, "mbconv_k5": 0.9, "mbconv_k3_g": 2.2, "mbconv_k5_g": 1.9,
               "convblock_k1": 1.2, "identity": 1.0}
TRUE_OVERHEAD, TRUE_SEGMENT = 0.4, 0.02


def made_up_ms(key: str) -> float:
    return 0.05 + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2 ** 32


@pytest.fixture(scope="module")
def space():
    return FBNetSpace("cifar100")


@pytest.fixture(scope="module")
def base(space, tmp_path_factory):
    prices = {k: made_up_ms(k) for k in space_items(space)}
    table = compile_table(space, prices, overhead_ms=0.1, empty=lambda cell: 0.01)
    folder = bundle.save_table(tmp_path_factory.mktemp("b") / "base", table, space, device={"name": "made-up"},
                               backend="tflite", backend_version="test", threads=1, report={}, source="test")
    return bundle.load(folder)


def on_new_device(space, archs):
    """Latency on the made-up new device: each segment's base price scaled by its group's factor."""
    out = []
    for arch in archs:
        total = TRUE_OVERHEAD
        tokens = space.encode(arch)
        for layer in space.layers:
            if tokens[layer.index] == 8 and layer.keeps_shape:
                total += 0.01 * TRUE_SCALES["identity"]
        for seg in segments(lower(arch)):
            total += made_up_ms(seg.key) * TRUE_SCALES[fewshot.segment_group(seg.kind, seg.features())] + TRUE_SEGMENT
        out.append(total)
    return np.array(out)


def test_groups(space):
    feats = {s.id: s for s in segments(lower(space.decode([0, 1, 2, 3, 4, 5, 6, 7, 8] * 2 + [0] * 4)))}
    assert fewshot.segment_group("stem", feats["stem"].features()) == "stem"
    assert fewshot.segment_group("mbconv", feats["s0.0"].features()) == "mbconv_k3"
    assert fewshot.segment_group("mbconv", feats["s1.0"].features()) == "mbconv_k3_g"
    assert fewshot.segment_group("mbconv", feats["s5.0"].features()) == "mbconv_k5_g"


def test_breakdown_sums_to_the_base_prediction(space, base):
    archs = space.sample(20, seed=1)
    view = fewshot.breakdown(base, archs)
    np.testing.assert_allclose(view.matrix.sum(axis=1) + view.overhead, base.predict_batch(archs), rtol=1e-5)
    assert "identity" in view.groups and "stem" in view.groups
    # segments launched: an identity skip launches nothing
    for arch, count in zip(archs, view.counts):
        assert count == len(segments(lower(arch)))


def test_groups_recover_a_device_that_differs_per_op_type(space, base):
    train, test = space.sample(20, seed=2), space.sample(200, seed=3)
    y_train, y_test = on_new_device(space, train), on_new_device(space, test)
    errors = {}
    for method in fewshot.METHODS:
        cal = fewshot.calibrate(base, train, y_train, method)
        predicted = cal.predict_batch(base, test)
        errors[method] = float(np.sqrt(np.mean(np.square(predicted / y_test - 1))))
    assert errors["groups"] < 0.01 < errors["scale"] < errors["base"]  # exact model: near-exact fit
    cal = fewshot.calibrate(base, train, y_train, "groups")
    assert cal.scales["mbconv_k3"] == pytest.approx(1.6, rel=0.05)
    assert cal.scales["mbconv_k5"] == pytest.approx(0.9, rel=0.05)


def test_evaluate_per_k(space, base):
    archs = space.sample(60, seed=4)
    result = fewshot.evaluate(base, archs, on_new_device(space, archs), ks=(5, 10, 20), draws=5)
    assert set(result) == set(fewshot.METHODS)
    for k in (5, 10, 20):
        assert result["groups"][k]["heldout"] == 60 - k and result["groups"][k]["draws"] == 5
    assert result["groups"][20]["rmspe"] < result["scale"][20]["rmspe"] < result["base"][20]["rmspe"]
    with pytest.raises(ValueError, match="ks: expected values in 1..59"):
        fewshot.evaluate(base, archs, on_new_device(space, archs), ks=(60,))


def test_bad_measurements(space, base):
    archs = space.sample(3, seed=5)
    with pytest.raises(ValueError, match="measured: expected one latency per network"):
        fewshot.calibrate(base, archs, [1.0, 2.0])
    with pytest.raises(ValueError, match="measured: expected finite latencies in ms > 0"):
        fewshot.calibrate(base, archs, [1.0, -2.0, 3.0])
    with pytest.raises(ValueError, match="method: expected one of"):
        fewshot.calibrate(base, archs, [1.0, 2.0, 3.0], method="magic")


@pytest.mark.parametrize("text, message", [
    ("a,b\n", "line 1: header: expected 'arch,ms'"),
    ("arch,ms\nmnasnet-a1\n", "line 2: expected 2 fields"),
    ("arch,ms\nmnasnet-a1,fast\n", "line 2: ms: expected a latency in ms > 0, got 'fast'"),
    ("arch,ms\nmnasnet-a1,0\n", "line 2: ms: expected a latency in ms > 0"),
    ("arch,ms\n", "expected at least one measured network"),
])
def test_measured_csv_errors_name_line_and_field(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        fewshot.read_measured(path)


def test_cli_fewshot_writes_a_calibrated_table_bundle(space, base, tmp_path, capsys):
    from pynas.cli import main

    train, test = space.sample(12, seed=6), space.sample(100, seed=7)
    csv = tmp_path / "measured.csv"
    csv.write_text("arch,ms\n" + "".join(f"{a},{float(ms)!r}\n" for a, ms in zip(train, on_new_device(space, train))))
    out = tmp_path / "newphone"
    assert main(["fewshot", str(base.folder), str(csv), "-o", str(out), "--method", "groups"]) == 0
    text = capsys.readouterr().out
    assert "calibrated on 12 networks (groups) from base" in text and "group scales:" in text
    p = bundle.load(out)
    assert p.manifest.kind == "table" and p.manifest.extra["report"]["calibration"]["k"] == 12
    # The bundle describes the new device, not the base's (no base kernel names, no base device).
    assert p.manifest.device == {"name": "newphone"} and p.manifest.backend_version == "unknown"
    y = on_new_device(space, test)
    assert np.sqrt(np.mean(np.square(p.predict_batch(test) / y - 1))) < 0.02
    # The rescaled table agrees with the calibration it was made from.
    cal = fewshot.calibrate(base, train, on_new_device(space, train))
    np.testing.assert_allclose(p.predict_batch(test), cal.predict_batch(base, test), rtol=1e-4)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"arch,ms\n{train[0]},1.5\nnot-an-arch,3.0\n")
    assert main(["fewshot", str(base.folder), str(bad), "-o", str(tmp_path / "x")]) == 2
    assert f"{bad}: line 3: arch: unknown preset 'not-an-arch'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    before = (out / "manifest.json").read_bytes()
    assert main(["fewshot", str(base.folder), str(csv), "-o", str(out)]) == 2
    assert "a bundle is already there" in capsys.readouterr().err and (out / "manifest.json").read_bytes() == before


def test_cli_fewshot_multibase_by_default(space, base, tmp_path, capsys, monkeypatch):
    """The default method weighs every base cell by cell; without named bases, every bundle of the
    networks' space on the search path is one; the table it writes never prices a network <= 0."""
    from pynas.cli import main

    monkeypatch.setenv("PYNAS_PREDICTORS", str(base.folder.parent))
    train, test = space.sample(12, seed=6), space.sample(300, seed=7)
    csv = tmp_path / "measured.csv"
    csv.write_text("arch,ms\n" + "".join(f"{a},{float(ms)!r}\n" for a, ms in zip(train, on_new_device(space, train))))
    out = tmp_path / "phone"
    assert main(["fewshot", str(csv), "-o", str(out), "--backend", "tflite", "--threads", "4"]) == 0
    text = capsys.readouterr().out
    assert "calibrated on 12 networks (multibase) from base" in text and "bases' shares" in text
    p = bundle.load(out)
    assert (p.manifest.backend, p.manifest.threads) == ("tflite", 4)
    # every table of the space on the search path: this base and the shipped CIFAR-100 setting's
    assert set(p.manifest.extra["report"]["bases"]) == {"base", "pixel3-cifar100", "raspi4-cifar100",
                                                        "edgegpu-cifar100", "eyeriss-cifar100"}
    assert p.table.min_ms() > 0
    y = on_new_device(space, test)
    assert np.sqrt(np.mean(np.square(p.predict_batch(test) / y - 1))) < 0.05
