"""The `train:DATASET[:EPOCHS]` evaluator (pynas/search/evaluators/train.py): its spec, options,
fingerprint, per-candidate failures, and a small search end to end on digits at 8 px."""
import pytest

import pynas

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from pynas import search  # noqa: E402
from pynas.data import DatasetError  # noqa: E402
from pynas.search.evaluators import Candidate, make_evaluator  # noqa: E402
from pynas.search.evaluators.train import DEFAULT_EPOCHS, TrainEvaluator, parse_spec  # noqa: E402
from pynas.search.log import SearchLog  # noqa: E402
from pynas.space import get_space  # noqa: E402

BUNDLE = "x86-avx512-native"  # a shipped bundle with a compiled table of mnasnet@224 (as test_search_loop)
CHEAP = {"resolution": 8, "width_mult": 0.25, "train_images": 256, "batch_size": 64}


@pytest.fixture(scope="module")
def space():
    return get_space("mnasnet")


def test_the_spec_names_the_dataset_and_optionally_the_epochs(space):
    assert parse_spec("digits") == ("digits", DEFAULT_EPOCHS)
    assert parse_spec("digits:2") == ("digits", 2)
    evaluator = make_evaluator("train:digits:2", space)
    assert isinstance(evaluator, TrainEvaluator) and evaluator.epochs == 2 and evaluator.name == "train:digits:2"
    assert make_evaluator("train:digits", space).epochs == DEFAULT_EPOCHS


@pytest.mark.parametrize("spec, message", [
    ("train:digits:0", "EPOCHS: expected an integer >= 1, got '0'"),
    ("train:digits:x", "EPOCHS: expected an integer >= 1, got 'x'"),
    ("train:digits:", "EPOCHS: expected an integer >= 1, got ''"),
    ("train:", "expected train:DATASET"),
])
def test_bad_specs_are_refused(space, spec, message):
    with pytest.raises(ValueError, match=message):
        make_evaluator(spec, space)


@pytest.mark.parametrize("options, message", [
    ({"colour": 1}, "evaluator option colour: expected one of resolution, width_mult, exact, threads"),
    ({"resolution": 0}, "evaluator option resolution: expected an integer >= 1, got 0"),
    ({"width_mult": -1.0}, "evaluator option width_mult: expected a finite number > 0, got -1.0"),
    ({"exact": "yes"}, "evaluator option exact: expected true or false, got 'yes'"),
    ({"exact": True, "resolution": 8}, "evaluator option resolution: expected none with exact=true"),
    ({"threads": 0}, "evaluator option threads: expected an integer >= 1, got 0"),
    ({"batch_size": True}, "evaluator option batch_size: expected an integer >= 1, got True"),
    ({"lr": float("inf")}, "evaluator option lr: expected a finite number > 0, got inf"),
    ({"train_images": 10**6}, "evaluator option train_images: expected at most 1438"),
    ({"val_images": 0}, "evaluator option val_images: expected an integer >= 1, got 0"),
    ({"seed": -1}, "evaluator option seed: expected an integer >= 0, got -1"),
])
def test_bad_options_are_refused_at_construction_naming_them(space, options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("+", r"\+")):
        make_evaluator("train:digits:1", space, options=options)


def test_a_missing_dataset_and_a_space_of_cells_are_refused(space, tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        make_evaluator(f"train:{tmp_path}/none.npz:1", space)
    with pytest.raises(ValueError, match="space: expected one of block architectures .* got nb201"):
        make_evaluator("train:digits:1", get_space("nb201"))


def test_the_fingerprintedholds_what_changes_a_score_and_describe_is_one_line(space):
    evaluator = make_evaluator("train:digits:1", space, options=CHEAP)
    printed = evaluator.fingerprint()
    assert printed["dataset"] == "digits" and len(printed["sha256"]) == 64 and printed["epochs"] == 1
    assert {"width_mult", "resolution", "threads", "lr", "batch_size", "train_images", "seed", "torch",
            "pynas", "recipe"} <= set(printed)
    assert make_evaluator("train:digits:1", space, options={**CHEAP, "width_mult": 0.5}).fingerprint() != printed
    assert make_evaluator("train:digits:1", space, options=CHEAP).fingerprint() == printed
    text = evaluator.describe()
    assert "\n" not in text and "in1 cls10 res8" in text and "x0.25" in text and "256 training" in text


def test_each_candidate_gets_its_outcome_and_exact_refuses_a_header_that_does_not_fit(space):
    tokens = space.sample_tokens(2, seed=1)
    candidates = [Candidate(tuple(int(v) for v in t), space.decode(t), str(space.decode(t))) for t in tokens]
    outcomes = make_evaluator("train:digits:1", space, options=CHEAP).evaluate(candidates)
    assert all(o.ok and 0 <= o.accuracy <= 100 and o.seconds > 0 for o in outcomes)
    refused = make_evaluator("train:digits:1", space, options={"exact": True}).evaluate(candidates[:1])
    assert not refused[0].ok and "in_channels: expected 1" in refused[0].error and refused[0].seconds >= 0
    diverged = make_evaluator("train:digits:1", space, options={**CHEAP, "lr": 1e30}).evaluate(candidates[:1])
    assert not diverged[0].ok and "loss diverged at epoch 1" in diverged[0].error


def test_a_small_search_trains_its_budget_end_to_end(tmp_path):
    done = search.run("mnasnet", BUNDLE, 3.0, "train:digits:1", 4, tmp_path / "run", strategy="random", seed=1,
                      evaluator_options=CHEAP)
    assert done.stop_reason == "budget" and done.evaluated == 4
    assert done.config["evaluator"]["options"] == CHEAP
    assert done.config["evaluator"]["fingerprint"]["width_mult"] == 0.25
    with SearchLog.open(done.folder, pynas.__version__) as log:
        fresh = [s for s in log.samples() if not s.cached]
    assert len(fresh) == 4 and all(s.status == "done" and 0 <= s.accuracy <= 100 and s.seconds > 0 for s in fresh)
