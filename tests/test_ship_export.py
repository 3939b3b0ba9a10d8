"""`pynas.ship.export`: BatchNorm folding, the torch file (bit-exact round trip, its checks), ONNX
and TFLite round trips within their tolerances, a check that fails on a wrong file, and the weights'
sources: initialised (seeded), a search folder, a supernet's sub-network (a search's pick and
--weights)."""
import copy
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pynas.arch import parse  # noqa: E402
from pynas.ship import export as ex  # noqa: E402
from pynas.torch_builder import randomise_batchnorm  # noqa: E402

# Small archs covering what a folding or a converter could get wrong: SE (MnasNet style, sigmoid), a
# pooling shortcut with a 1x1 conv + BN (channels change), hard-swish and MobileNetV3's SE (hard
# sigmoid), a ds block, grouped 1x1 convs with a channel shuffle, a pool-first head (conv with bias).
ARCHS = {
    "se-poolskip": "net_res32_cls10:stem_k3_s2_c16:ds_r1_k3_s1_c16:ir_r2_k5_s2_e6_c24_se0.25:"
                   "ir_r1_k3_s1_e3_c32_poolskip:head_c64",
    "hswish-sev3": "net_res32_cls10_sev3:stem_k3_s2_c16_nhs:ir_r1_k3_s2_e4_c24_se0.25_nhs:"
                   "cn_r1_k3_s1_c32_nhs:head_c64_nhs_poolfirst",
    "grouped-relu6": "net_res24_cls7_in1:stem_k3_s1_c16_nr6:ir_r2_k3_s2_e3_c32_g2_nr6:id_r1_s2_c48:head_c32_nr6",
}


def randomised(text: str, seed: int = 1):
    """`build_torch` with non-trivial BatchNorm statistics and affine terms (a fresh BN is the
    identity, which any fold would get right)."""
    arch = parse(text)
    return arch, randomise_batchnorm(ex.initialised(arch, seed=0), seed=seed)


def inputs(arch, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, arch.in_channels, arch.resolution, arch.resolution, generator=g) for _ in range(n)]


def torch_export_of(tmp_path, text, name="model.pt"):
    """A torch export holding a randomised-BN network (what --weights then reads)."""
    arch, net = randomised(text)
    path = tmp_path / name
    ex.write_torch(path, ex.Source(arch, net, "randomised BatchNorm (test)", text))
    return arch, net, path


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_fold_batchnorm_keeps_outputs(name):
    arch, net = randomised(ARCHS[name])
    folded, count = ex.fold_batchnorm(net)
    assert count == ex.count_batchnorm(net) > 0 and ex.count_batchnorm(folded) == 0
    assert ex.count_batchnorm(net) == count  # the original is left as it was
    with torch.no_grad():
        for x in inputs(arch):
            want, got = net(x), folded(x)
            assert (got - want).abs().max() <= 1e-5 * want.abs().max()
            # ... and not because BN did nothing: with BN reset to the identity the output moves a lot.
            plain = ex.initialised(arch, seed=0)(x)
            assert (plain - want).abs().max() > 0.05 * want.abs().max()


def test_fold_batchnorm_refuses_a_batchnorm_it_cannot_fold():
    from torch import nn

    with pytest.raises(ValueError, match="expected every BatchNorm after a conv, got 1 of 1 left unfolded"):
        ex.fold_batchnorm(nn.Sequential(nn.BatchNorm2d(3)))


def test_torch_round_trip_is_bit_exact_and_plain_data(tmp_path):
    arch, net, path = torch_export_of(tmp_path, ARCHS["se-poolskip"])
    blob = torch.load(path, weights_only=True)  # no pickled objects
    assert blob["format"] == "pynas-export" and blob["version"] == 1 and blob["arch"] == str(arch)
    assert blob["meta"]["weights"] == "randomised BatchNorm (test)" and len(blob["meta"]["weights_sha256"]) == 64
    loaded = ex.load_torch_export(path)
    assert loaded.arch == arch and not loaded.training
    with torch.no_grad():
        for x in inputs(arch):
            assert torch.equal(loaded(x), net(x))


def test_a_changed_torch_export_is_refused(tmp_path):
    _, _, path = torch_export_of(tmp_path, ARCHS["se-poolskip"])
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["stem.0.weight"][0, 0, 0, 0] += 1
    torch.save(blob, path)
    with pytest.raises(ValueError, match="weights_sha256: expected .* the tensors changed since the export"):
        ex.load_torch_export(path)
    torch.save({"format": "something"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="expected format pynas-export version 1, got something"):
        ex.load_torch_export(tmp_path / "other.pt")


def test_initialised_weights_are_seeded(tmp_path):
    text = ARCHS["hswish-sev3"]
    a = ex.export(text, "torch", tmp_path / "a.pt", seed=3)
    b = ex.export(text, "torch", tmp_path / "b.pt", seed=3)
    c = ex.export(text, "torch", tmp_path / "c.pt", seed=4)
    sha = [torch.load(d.path, weights_only=True)["meta"]["weights_sha256"] for d in (a, b, c)]
    assert sha[0] == sha[1] != sha[2]
    assert a.check.passed and a.check.max_abs == 0 and a.folded is None
    assert "initialised weights (no trained weights), seed 3" in a.report()
    assert f"time it    pynas verify {a.path} (in torch;" in a.report()  # the file itself, in its runtime


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_onnx_round_trip_within_tolerance(tmp_path, name):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    arch, net, weights = torch_export_of(tmp_path, ARCHS[name])
    done = ex.export(None, "onnx", tmp_path / "model.onnx", weights=weights)
    assert done.check.passed, done.check.describe()
    assert done.folded == ex.count_batchnorm(net) > 0 and done.source.arch == arch
    assert 0 < done.check.max_rel <= ex.TOLERANCE["onnx"]
    model = onnx.load(str(done.path))
    assert [i.name for i in model.graph.input] == ["x"] and model.opset_import[0].version == 17
    assert {p.key: p.value for p in model.metadata_props}["pynas.arch"] == str(arch)
    assert "BatchNorm" not in {n.op_type for n in model.graph.node}
    assert not list(tmp_path.glob(".*tmp*"))  # the staging file was renamed


def test_tflite_round_trip_within_tolerance(tmp_path):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    arch, net, weights = torch_export_of(tmp_path, ARCHS["hswish-sev3"])
    done = ex.export(None, "tflite", tmp_path / "model.tflite", weights=weights)
    assert done.check.passed, done.check.describe()
    assert 0 < done.check.max_rel <= ex.TOLERANCE["tflite"] and done.folded == ex.count_batchnorm(net)


def test_a_wrong_file_fails_its_check_and_is_kept(tmp_path, monkeypatch):
    """A fold that forgets the running mean: the file is written, the check fails, the report says so."""
    pytest.importorskip("onnxruntime")
    import pynas.torch_builder as builder

    _, _, weights = torch_export_of(tmp_path, ARCHS["se-poolskip"])
    right = builder.fold_batchnorm

    def forgetful(model):
        model = copy.deepcopy(model)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.zero_()
        return right(model)

    monkeypatch.setattr(builder, "fold_batchnorm", forgetful)
    done = ex.export(None, "onnx", tmp_path / "wrong.onnx", weights=weights)
    assert not done.check.passed and done.check.max_rel > 100 * ex.TOLERANCE["onnx"]
    assert done.path.is_file() and "FAILED" in done.report() and "the file is kept" in done.report()


def test_a_failed_conversion_loses_nothing(tmp_path, monkeypatch):
    """--force over an existing file: a conversion that fails leaves the old file as it was."""
    pytest.importorskip("onnxruntime")
    from pynas import runtimes

    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous export")

    def broken(name, module, example, path):
        path.write_bytes(b"half a model")
        raise RuntimeError("conversion failed: boom")

    monkeypatch.setattr(runtimes, "convert_to_file", broken)
    with pytest.raises(RuntimeError, match="boom"):
        ex.export(ARCHS["se-poolskip"], "onnx", out, force=True)
    assert out.read_bytes() == b"the previous export" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


# -- search folders -----------------------------------------------------------------------------
class MacsLatency:
    """A stand-in latency model (MACs / 1e6 ms) so that a tiny search needs no bundle."""
    name, path = "macs", None
    predictor = type("P", (), {"manifest": type("M", (), {"files": {}})()})()

    def __init__(self, space):
        self.space = space

    def predict_batch(self, tokens):
        from pynas.ir import lower

        return np.array([lower(self.space.decode(t)).macs / 1e6 for t in tokens])


def tiny_search(folder, space, evaluator, monkeypatch, options=None):
    from pynas import search
    from pynas.search import loop
    from pynas.search.workers import Execution

    monkeypatch.setattr(loop, "target_model", lambda predictor, space: MacsLatency(space))
    search.run(space, None, 1e6, evaluator, 4, folder, strategy="random", seed=0, check_range=False,
               evaluator_options=options, execution=Execution("serial"))
    search.report(folder)
    return json.loads((folder / "summary.json").read_text())


def test_a_search_folder_without_trained_weights_is_initialised(tmp_path, monkeypatch):
    from pynas.space import get_space

    summary = tiny_search(tmp_path / "run", get_space("mnasnet", resolution=32, num_classes=10),
                          "zero-cost:params", monkeypatch)
    done = ex.export(str(tmp_path / "run"), "torch", tmp_path / "pick.pt")
    assert str(done.source.arch) == summary["best"]["arch"] == (tmp_path / "run" / "best.txt").read_text().split()[0]
    assert done.check.passed and done.source.weights.startswith("initialised weights (no trained weights)")
    assert "zero-cost:params keeps no weights" in done.report()
    assert torch.load(done.path, weights_only=True)["meta"]["source"] == str(tmp_path / "run")


def test_a_search_folder_exports_its_verified_pick_when_best_txt_names_it(tmp_path, monkeypatch):
    """With a verified pick other than the best under T, best.txt's first line is the pick: export reads that."""
    import json

    from pynas.space import get_space

    space = get_space("mnasnet", resolution=32, num_classes=10)
    summary = tiny_search(tmp_path / "run", space, "zero-cost:params", monkeypatch)
    other = next(str(a) for a in space.sample(4, seed=7) if str(a) != summary["best"]["arch"])
    summary["verified_pick"] = {"arch": other, "rank": 2, "accuracy": 1.5}
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "run" / "best.txt").write_text(other + "\n")
    done = ex.export(str(tmp_path / "run"), "torch", tmp_path / "pick.pt")
    assert str(done.source.arch) == other and done.check.passed


@pytest.fixture(scope="module")
def supernet_file(tmp_path_factory):
    from pynas.data import load_dataset
    from pynas.space import get_space
    from pynas.train.supernet import train_supernet

    out = tmp_path_factory.mktemp("supernet") / "digits.pt"
    space = get_space("mnasnet", resolution=16, num_classes=10, in_channels=1)
    train_supernet(space, load_dataset("digits"), 1, out=out, batch_size=32, train_images=64, max_steps=1)
    return out


def test_a_proxy_supernet_search_exports_its_sub_network(tmp_path, monkeypatch, supernet_file):
    """A search of the 224 px RGB space scored by a 16 px grey supernet: the pick's blocks at the
    supernet's shape, its weights those the search scored (the same accuracy, recomputed); refused
    once the supernet file has changed."""
    from pynas.space import get_space

    own = shutil.copy(supernet_file, tmp_path / "supernet.pt")
    options = {"calibration_images": 40, "val_images": 60}
    summary = tiny_search(tmp_path / "run", get_space("mnasnet"), f"supernet:{own}", monkeypatch, options)
    done = ex.export(str(tmp_path / "run"), "torch", tmp_path / "pick.pt")
    picked = parse(summary["best"]["arch"])
    arch = done.source.arch
    assert (arch.resolution, arch.num_classes, arch.in_channels) == (16, 10, 1)
    assert arch.stages == picked.stages and (picked.resolution, picked.in_channels) == (224, 3)
    assert done.source.meta["val_accuracy"] == summary["best"]["accuracy"]
    assert "recalibrated on 40 training images" in done.source.weights and "on 60 validation images" in done.report()
    assert "exported the same blocks at its resolution, classes and input channels (16 px" in done.report()
    assert done.check.passed
    meta = torch.load(done.path, weights_only=True)["meta"]
    assert meta["supernet_sha256"] and meta["dataset"] == "digits"

    blob = torch.load(own, weights_only=True)
    blob["state_dict"]["classifier.bias"] += 1
    torch.save(blob, own)
    with pytest.raises(ValueError, match=r"expected the supernet the search used .*\(the file changed since\)"):
        ex.export(str(tmp_path / "run"), "torch", tmp_path / "again.pt")
    assert not (tmp_path / "again.pt").exists()


def test_a_supernet_file_as_weights(tmp_path, supernet_file):
    from pynas.space import get_space

    arch = get_space("mnasnet").sample(1, seed=5)[0]  # the 224 px space: mapped to the supernet's shape
    done = ex.export(str(arch), "torch", tmp_path / "sub.pt", weights=supernet_file)
    assert done.source.arch.stages == arch.stages and done.source.arch.resolution == 16
    assert "recalibrated on 500 training images" in done.source.weights and done.check.passed
    with pytest.raises(ValueError, match="expected an architecture of the supernet's space mnasnet"):
        ex.export("mobilenetv2-1.0", "torch", tmp_path / "no.pt", weights=supernet_file)
    with pytest.raises(ValueError, match="ARCH_OR_RUN: expected the architecture .* to take from the supernet"):
        ex.export(None, "torch", tmp_path / "no.pt", weights=supernet_file)
    assert not (tmp_path / "no.pt").exists()
