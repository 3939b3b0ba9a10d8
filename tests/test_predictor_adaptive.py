"""Adaptive sampling (pynas.predictor.adaptive, `pynas profile --adaptive`) on a small real native
store (MnasNet space at 32x32)."""
import dataclasses

import pytest

from pynas.predictor import adaptive
from pynas.predictor.train import load_dataset
from pynas.profiling.backends import Backend
from pynas.profiling.session import plan, run
from pynas.space import get_space
from pynas.space.catalogue import space_items
from pynas.store import Store

FAST = {"budget_seconds": 0.02, "target_rel_ci": 0.2, "min_runs": 5, "warmup_runs": 1, "warmup_seconds": 0}


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "m.sqlite"
    space = get_space("mnasnet", resolution=32)
    work = plan(space, segments_sample=80, networks=6, seed=0)
    assert work.counts["of_space_segments"] == len(space_items(space)) and len(work.items) == 86
    with Store(path) as store:
        run(work, Backend("native"), store, harness=FAST, drift_tolerance=1.0)
        return space, load_dataset(store, backend="native"), path


def test_next_segments_are_unmeasured_and_split_as_asked(sampled):
    space, data, _ = sampled
    pick = adaptive.next_segments(data, space, 20, near_share=0.25)
    keys = [c.key for c in pick.configs]
    assert pick.uncertain == 15 and 0 < pick.near_errors <= 5 and len(keys) == len(set(keys))
    assert not set(keys) & set(data.segments)
    configs = space_items(space)
    assert all(k in configs for k in keys[:15])  # the uncertain ones come from the space
    assert pick.spread > 0
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        adaptive.next_segments(data, space, 0)


def test_committee_disagrees_less_on_what_it_measured(sampled):
    space, timed, _ = sampled
    # Latencies a function of the work, not timings: the property is about the committee, and a
    # loaded machine's noise on 80 segments made it a coin toss.
    data = dataclasses.replace(timed, segments={k: (kind, f, 0.01 + 2e-8 * f["macs"] + 1e-9 * f["bytes_in"])
                                                for k, (kind, f, _) in timed.segments.items()})
    configs = space_items(space)
    measured = {k: configs[k] for k in list(data.segments)[:30] if k in configs}
    unmeasured = {k: c for k, c in list(configs.items()) if k not in data.segments}
    spread_in = adaptive.committee_spread(data, measured)
    spread_out = adaptive.committee_spread(data, dict(list(unmeasured.items())[:200]))
    assert sorted(spread_in.values())[len(spread_in) // 2] < sorted(spread_out.values())[len(spread_out) // 2]


def test_targets():
    assert adaptive.targets_met({"heldout_networks": {"within10": 99.5, "rmspe": 2.0}})
    assert not adaptive.targets_met({"heldout_networks": {"within10": 98.0, "rmspe": 2.0}})
    assert not adaptive.targets_met({})


def test_cli_profile_adaptive_round(tmp_path, capsys):
    from pynas.cli import main

    db = tmp_path / "a.sqlite"
    args = ["profile", "--resolution", "32", "--segments", "40", "--networks", "6", "--neighbours", "0",
            "--db", str(db), "--item-budget-seconds", "0.02", "--target-ci", "0.2", "--drift-tolerance", "1",
            "--adaptive", "1", "--round-size", "12"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "adaptive round 1: 40 segments measured" in text and "measuring 12 more" in text
    with Store(db) as store:
        assert len(load_dataset(store, backend="native").segments) >= 40 + 9
