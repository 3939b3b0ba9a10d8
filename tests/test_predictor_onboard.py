"""`pynas device init`: profile this machine, train, save a bundle named after it, make it the
default that `pynas predict` uses; resumable."""
import warnings

import pytest

from pynas.cli import main
from pynas.predictor import bundle, device
from pynas.predictor.onboard import init_device

TINY = {"neighbours": 0, "networks": 12, "segments_sample": 90}
FAST = {"budget_seconds": 0.02, "min_runs": 3, "target_rel_ci": 0.2}


@pytest.fixture
def homes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


def test_init_profiles_saves_and_makes_this_machine_s_default(homes, capsys):
    db = homes / "m.sqlite"
    logs = []
    stopped = init_device(db=db, resolution=32, plan_options=TINY, log=logs.append, budget_seconds=0.0)
    assert stopped.name is None and "run it again to resume" in logs[-1]  # cut short: nothing saved
    result = init_device(db=db, resolution=32, plan_options=TINY, log=logs.append,
                         run_options={"harness": FAST, "drift_tolerance": 1.0})
    assert result.name == device.bundle_name("native", 1) and result.folder == bundle.user_bundles() / result.name
    assert result.report["heldout_networks"]["n"] == 12
    assert device.default_bundle("native", 1) == result.name
    p = bundle.load(result.name)  # found by name on the search path
    assert p.device_differences() == []  # it describes this machine
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and predicting with it does not warn
        arch = p.space.sample(1, seed=0)[0]
        assert main(["predict", str(arch)]) == 0  # no --predictor: this machine's default
    out = capsys.readouterr().out
    assert f"({result.name}: this machine, 1 thread(s))" in out
    assert main(["device", "show"]) == 0 and result.name in capsys.readouterr().out
    # A backend whose runs changed since (a new native version) makes the default stale: `device show
    # --require` fails, so scripts/main.sh profiles again instead of searching with old latencies.
    here = device._backend_version_here("native")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(device, "_backend_version_here", lambda backend: here + "+changed")
        assert main(["device", "show", "--require"]) == 1
    out, err = capsys.readouterr()
    assert f"{result.name} (stale: native version: bundle {here}, here {here}+changed" in out
    assert "no up-to-date native bundle" in err


def test_predict_without_a_default_says_what_to_do(homes, capsys):
    assert main(["predict", "mnasnet-a1"]) == 2
    err = capsys.readouterr().err
    assert "--predictor: none given and this machine has no bundle of its own" in err and "pynas device init" in err


def test_fewshot_init_calibrates_the_space_s_bundles_and_checks_on_held_out_networks(homes, tiny_bundle, monkeypatch):
    from pynas.predictor.onboard import init_device_fewshot

    monkeypatch.setenv("PYNAS_PREDICTORS", str(tiny_bundle.parent))
    result = init_device_fewshot(db=homes / "m.sqlite", resolution=32, networks=6, held_out=3, log=lambda _: None,
                                 run_options={"harness": FAST, "drift_tolerance": 1.0})
    assert result.name == device.bundle_name("native", 1) + "-fewshot" and device.default_bundle() == result.name
    assert result.report["bases"] == ["tiny"] and result.report["heldout_networks"]["n"] == 3
    p = bundle.load(result.name)
    assert p.manifest.kind == "table" and p.device_differences() == []  # it describes this machine
    assert p.table.min_ms() > 0
    with pytest.raises(ValueError, match="networks, held_out: expected >= 2 and >= 1, got 1 and 3"):
        init_device_fewshot(db=homes / "m.sqlite", resolution=32, networks=1, held_out=3)


def test_show_calls_a_default_whose_bundle_is_gone_stale_and_require_fails(homes, capsys):
    device.set_default("gone-bundle", "native", 1)
    assert main(["device", "show", "--require"]) == 1
    out, err = capsys.readouterr()
    assert "gone-bundle (stale: unreadable (predictor 'gone-bundle': no bundle of that name" in out
    assert "no up-to-date native bundle" in err
