"""Measurement backends (pynas.profiling.backends): one interface, availability said clearly."""
import pytest

from pynas.presets import preset
from pynas.profiling.backends import BACKENDS, Backend, BackendUnavailable, backend_version, unavailable
from pynas.profiling.configs import neighbour_segments
from pynas.profiling.session import plan
from pynas.space import get_space
from pynas.space.catalogue import segment_by_id, space_items

QUICK = {"budget_seconds": 0.05, "target_rel_ci": 0.2, "min_runs": 3, "warmup_runs": 1, "warmup_seconds": 0}


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="backend: expected one of native, torch, torch_cl, onnxruntime, litert"):
        unavailable("tflite")
    with pytest.raises(ValueError, match=r"^threads: expected an integer in 1\.\.256, got 0$"):
        Backend("native", threads=0)


def test_versions_have_no_whitespace():
    for name in BACKENDS:
        if unavailable(name) is None:
            version = backend_version(name)
            assert version and not any(c.isspace() for c in version), version
    assert backend_version("native").startswith("pynas==")


@pytest.mark.parametrize("name", BACKENDS)
def test_each_backend_times_a_segment_and_a_network_or_says_why_not(name):
    reason = unavailable(name)
    if reason:
        assert "pip install" in reason  # says what to install
        with pytest.raises(BackendUnavailable, match=f"backend {name} is unavailable here"):
            Backend(name)
        pytest.skip(reason)
    backend = Backend(name)
    configs = space_items(get_space("mnasnet", resolution=32))
    for config in list(configs.values())[:3]:
        stats = backend.segment(config.arch, config.segment, config.key).measure(**QUICK)
        assert stats["median_ms"] > 0 and stats["runs"] >= 3
    arch = get_space("mnasnet", resolution=32).sample(1, seed=0)[0]
    assert backend.network(arch).measure(**QUICK)["median_ms"] > 0
    # FBNet: a grouped block (op-level steps natively), an id layer's projection, a whole network
    fbnet = get_space("fbnet", setting="cifar100")
    configs = space_items(fbnet)
    grouped = next(c for c in configs.values() if c.features["pw_groups"] == 2)
    skip = next(c for c in configs.values() if c.kind == "convblock")
    for config in (grouped, skip):
        assert backend.segment(config.arch, config.segment, config.key).measure(**QUICK)["median_ms"] > 0
    assert backend.network(fbnet.decode([1] * 22)).measure(**QUICK)["median_ms"] > 0


def test_bad_segment_id_names_the_choices():
    arch = preset("mnasnet-a1")
    with pytest.raises(ValueError, match="segment: expected one of"):
        Backend("native").segment(arch, "s42.0", "k")


def test_fbnet_neighbours_skip_identity_draws(monkeypatch):
    """Neighbours of an id (skip) layer whose drawn shapes match are identities with no segment:
    they are drawn again, not an error."""
    import pynas.profiling.configs as configs_module

    configs = space_items(get_space("fbnet", setting="cifar100"))
    near = neighbour_segments(configs, 40, seed=1)
    assert len(near) == 40 and not set(near) & set(configs)
    assert any(c.features["pw_groups"] == 2 for c in near.values())
    skips = {k: c for k, c in configs.items() if c.kind == "convblock"}  # the id layers' projections
    identities = []

    def counting(arch):
        found = segment_by_id(arch)
        if "s0.0" not in found:
            identities.append(str(arch))
        return found

    monkeypatch.setattr(configs_module, "segment_by_id", counting)
    near = neighbour_segments(skips, 20, seed=0)
    assert len(near) == 20 and identities  # at least one identity draw (seed 0), drawn again


def test_neighbours_are_off_the_space_and_extra_items_join_the_plan():
    space = get_space("mnasnet", resolution=64)
    configs = space_items(space)
    near = neighbour_segments(configs, 20, seed=3)
    assert len(near) == 20 and not set(near) & set(configs)
    p = plan(space, extra=list(near.values())[:5] + [preset("mnasnet-a1")])
    assert p.counts["extra"] == 6 and len(p.items) == len(configs) + 6
