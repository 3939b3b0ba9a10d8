"""Proxy training (pynas/train/trainer.py) and the proxy task's header adaptation (proxy_task.py),
on scikit-learn's 8x8 digits with tiny networks (seconds on a loaded machine)."""
import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from pynas.arch import parse  # noqa: E402
from pynas.data import DatasetError, load_dataset  # noqa: E402
from pynas.presets import preset  # noqa: E402
from pynas.train.proxy_task import adapt  # noqa: E402
from pynas.train.trainer import TrainingError, evaluation_seed, train_and_score  # noqa: E402

TINY = "net_res8_cls10_in1:stem_k3_s1_c8:ir_r1_k3_s2_e3_c16_se0.25:head_c32"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_a_score_is_the_same_twice_in_a_row_and_in_another_process(digits):
    first = train_and_score(parse(TINY), digits, 2, seed=5, train_images=400, batch_size=64)
    again = train_and_score(parse(TINY), digits, 2, seed=5, train_images=400, batch_size=64)
    assert (first.accuracy_percent, first.final_loss) == (again.accuracy_percent, again.final_loss)
    assert first.train_images == 400 and first.val_images == len(digits.y_val) and first.steps == 2 * (400 // 64)
    code = ("import json; from pynas.arch import parse; from pynas.data import load_dataset; "
            "from pynas.train.trainer import train_and_score; "
            f"s = train_and_score(parse({TINY!r}), load_dataset('digits', seed=0), 2, seed=5, train_images=400, "
            "batch_size=64); print(json.dumps([s.accuracy_percent, s.final_loss, s.seed]))")
    # -P keeps the cwd off sys.path: the child imports the installed pynas, as this process does.
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [first.accuracy_percent, first.final_loss, first.seed]
    other = train_and_score(parse(TINY), digits, 2, seed=6, train_images=400, batch_size=64)
    assert other.seed != first.seed and other.final_loss != first.final_loss  # the seed matters


def test_the_evaluation_seed_comes_from_the_seed_and_the_architecture_string():
    assert evaluation_seed(0, TINY) == evaluation_seed(0, TINY)
    assert len({evaluation_seed(0, TINY), evaluation_seed(1, TINY), evaluation_seed(0, TINY + "_nhs")}) == 3
    assert 0 <= evaluation_seed(0, TINY) < 2**63


def test_a_few_epochs_on_digits_learn_well_above_chance(digits):
    score = train_and_score(parse(TINY), digits, 4, seed=0, batch_size=64, lr=0.1)
    assert score.accuracy_percent > 50  # chance is 10%
    assert score.seconds > 0 and score.epochs == 4


def test_a_diverged_loss_is_an_error_naming_epoch_and_step(digits):
    with pytest.raises(TrainingError, match=r"loss diverged at epoch 1, step \d+"):
        train_and_score(parse(TINY), digits, 2, seed=0, lr=1e30, train_images=256, batch_size=64)


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "epochs: expected an integer >= 1, got 0"),
    ({"threads": 0}, "threads: expected an integer >= 1, got 0"),
    ({"lr": float("nan")}, "lr: expected a finite number > 0, got nan"),
    ({"batch_size": 1.5}, "batch_size: expected an integer >= 1, got 1.5"),
    ({"train_images": 10**6}, "train_images: expected at most 1438"),
    ({"val_images": 0}, "val_images: expected an integer >= 1, got 0"),
])
def test_bad_arguments_are_refused_naming_them(digits, changes, message):
    arguments = {"epochs": 1, "seed": 0, **changes}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("+", r"\+")):
        train_and_score(parse(TINY), digits, arguments.pop("epochs"), **arguments)


def test_an_architecture_that_does_not_fit_the_data_is_refused_naming_the_field(digits):
    with pytest.raises(DatasetError, match="in_channels: expected 1"):
        train_and_score(parse(TINY.replace("_in1", "")), digits, 1)


def test_the_header_is_adapted_to_the_data():
    data = load_dataset("digits", seed=0)
    a1 = preset("mnasnet-a1")  # 224 px, 1000 classes, RGB
    proxy = adapt(a1, data)
    assert (proxy.in_channels, proxy.num_classes, proxy.resolution) == (1, 10, 8)
    assert proxy.stages == a1.stages and proxy.stem == a1.stem  # the body is what was searched
    narrow = adapt(a1, data, resolution=12, width_mult=0.5)
    assert narrow.resolution == 12 and narrow.stem.channels == 16
    assert [s.channels for s in narrow.stages] == [8, 16, 24, 40, 56, 80, 160]


def test_exact_adapts_nothing_and_refuses_a_mismatch_naming_the_field():
    data = load_dataset("digits", seed=0)
    assert adapt(parse(TINY), data, exact=True) == parse(TINY)
    with pytest.raises(DatasetError, match="in_channels: expected 1"):
        adapt(preset("mnasnet-a1"), data, exact=True)
    with pytest.raises(DatasetError, match="num_classes: expected 10"):
        adapt(parse(TINY.replace("cls10", "cls7")), data, exact=True)
    with pytest.raises(DatasetError, match="resolution: expected 8 .*got 16"):
        adapt(parse(TINY.replace("res8", "res16")), data, exact=True)
