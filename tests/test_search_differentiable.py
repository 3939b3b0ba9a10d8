"""`darts` and `proxyless` as strategies of the search loop (pynas/search/strategies/differentiable.py):
one derived architecture logged per epoch with the outputs of any search, a killed run resumes to
exactly the uninterrupted one, the state round-trips, bad options are one-line errors before any
work. Tiny: digits at 8 px, 4 channels, 64 + 64 images."""
import json
import sqlite3
import textwrap

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")  # the digits

from pynas import search  # noqa: E402
from pynas.cli import main  # noqa: E402
from pynas.search.log import LOG_NAME, SearchLog  # noqa: E402

TINY = dict(dataset="digits", epochs=3, train_images=64, val_images=64, eval_images=50, channels=4, resolution=8,
            batch=32, arch_lr=0.01, latency_weight=0.2)


def darts(out, evaluator="nb201:cifar10", **options):
    return search.run("nb201", "nb201-pixel3", 5.0, evaluator, 10, out, strategy="darts", seed=3,
                      strategy_options={**TINY, **options})


def rows(folder):
    with sqlite3.connect(folder / LOG_NAME) as db:
        return db.execute("SELECT step, place, tokens, arch, latency_ms, status, accuracy, reward, cached "
                          "FROM samples ORDER BY id").fetchall()


def state(folder):
    from pynas import __version__

    with SearchLog.open(folder, __version__) as log:
        return log.load_state()[1]


def test_a_darts_search_logs_the_derived_cell_of_each_epoch_and_writes_the_outputs(tmp_path):
    from pynas.predictor import latency_model

    run = darts(tmp_path / "run")
    assert run.stop_reason == "strategy" and run.asked == 3
    history = state(run.folder).values["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    model = latency_model("nb201-pixel3", "nb201")
    for sample, h in zip(rows(run.folder), history):
        assert json.loads(sample[2]) == h["tokens"]
        assert sample[4] == pytest.approx(model.predict_batch(np.array([h["tokens"]]))[0])
        assert 0 <= h["supernet_accuracy"] <= 100 and h["expected_ms"] > 0 and h["skips"] >= 0
        assert np.allclose(np.sum(h["probabilities"], axis=1), 1.0, atol=1e-4)
    text = search.report(run.folder)  # writes summary.json, best.txt (and pareto.png with matplotlib)
    summary = json.loads((run.folder / "summary.json").read_text())
    assert summary["best"]["arch"] == (run.folder / "best.txt").read_text().splitlines()[0]
    assert summary["best"]["arch"] in text and "search darts on nb201" in text


KILLER = '''
import os
from pynas.space.nb201 import Cell
from pynas.search.evaluators.table import NB201Evaluator
def accuracy(archs):
    flag = os.environ["PYNAS_TEST_KILL"]
    if os.path.exists(flag):
        os.remove(flag)
        raise KeyboardInterrupt("killed while evaluating")
    return [float(len(a) % 50) for a in archs]
'''


def test_a_killed_darts_run_resumes_to_exactly_the_uninterrupted_one(tmp_path, monkeypatch):
    evaluator = tmp_path / "acc.py"
    evaluator.write_text(textwrap.dedent(KILLER))
    spec = f"python:{evaluator}:accuracy"
    flag = tmp_path / "kill"
    monkeypatch.setenv("PYNAS_TEST_KILL", str(flag))
    whole = darts(tmp_path / "whole", spec)

    out = tmp_path / "killed"
    configured = search.configure("nb201", "nb201-pixel3", 5.0, spec, 10, strategy="darts", seed=3,
                                  strategy_options=TINY)

    def stop_after_first_step(log, done):
        raise KeyboardInterrupt("killed after a step was told")

    with pytest.raises(KeyboardInterrupt):  # killed between steps: the next epoch starts from the saved state
        search.start(configured, out, progress=stop_after_first_step)
    flag.write_text("")
    with pytest.raises(KeyboardInterrupt, match="while evaluating"):  # killed inside a step: asked, not told
        search.resume(out)
    assert [r[5] for r in rows(out)] == ["done", "pending"]
    done = search.resume(out)  # the pending epoch is trained again from the saved state: the same cell
    assert done.stop_reason == "strategy"
    assert rows(out) == rows(whole.folder)
    a, b = state(out), state(whole.folder)
    assert json.dumps(a.values, sort_keys=True) == json.dumps(b.values, sort_keys=True)
    assert a.arrays.keys() == b.arrays.keys()
    for key in a.arrays:
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key], err_msg=key)


def strategy(name="darts", space="nb201", **options):
    from pynas.search.loop import _problem, target_model
    from pynas.search.reward import make_reward
    from pynas.search.strategies import make_strategy
    from pynas.space import get_space

    space = get_space(space) if isinstance(space, str) else space
    bundle = "nb201-pixel3" if space.name == "nb201" else "x86-avx512-native"
    problem = _problem(space, target_model(bundle, space), make_reward("absolute", 5.0))
    return make_strategy(name, problem, seed=1, **{**TINY, **options})


def test_the_state_round_trips_and_more_rows_are_the_nearest_neighbours():
    a = strategy(epochs=3)
    a.ask(1)
    saved = a.get_state()
    b = strategy(epochs=3)
    b.set_state(saved)
    rows_a, rows_b = a.ask(3), b.ask(3)
    np.testing.assert_array_equal(rows_a, rows_b)
    assert len({tuple(r) for r in rows_a}) == 3
    assert all(np.sum(r != rows_a[0]) == 1 for r in rows_a[1:])
    assert not a.finished
    a.ask(1)
    assert a.finished and a.ask(1).tolist() == [a.history[-1]["tokens"]]  # no more training once finished


def test_exclude_none_searches_the_other_four_ops_and_logs_space_tokens():
    s = strategy(exclude_none=True, epochs=2, latency_weight=1.0)
    rows_ = s.ask(3)
    assert s.net.alphas.shape == (6, 4)
    assert (rows_ > 0).all() and rows_.max() <= 4  # never none (token 0); tokens are the space's
    assert s.history[-1]["tokens"] == rows_[0].tolist()
    assert all(np.sum(r != rows_[0]) == 1 for r in rows_[1:])
    with pytest.raises(ValueError, match="option exclude_none: expected true or false, got 'yes'"):
        strategy(exclude_none="yes")


def test_skip_limit_stops_the_search_and_keeps_the_cell_before():
    import torch

    from pynas.space.nb201 import OPS

    s = strategy(remedy="skip-limit", max_skips=2, epochs=5, latency_weight=0.0)
    first = s.ask(1)[0].tolist()
    assert not s.finished
    with torch.no_grad():  # a collapsed search: skip_connect dominates every edge
        s.net.alphas[:, OPS.index("skip_connect")] = 10.0
    again = s.ask(1)[0].tolist()
    assert s.finished and again == first and s.history[-1]["skips"] == 6
    assert "skip-limit: 6 skip edges > 2" in s.history[-1]["stopped"]


def test_proxyless_over_mnasnet_trains_paths_and_prices_with_the_xgboost_bundle():
    from pynas.space import get_space

    space = get_space("mnasnet")  # 1000 classes, RGB: the supernet takes the digits' 10 classes, 1 channel
    s = strategy("proxyless", space, epochs=1, batch=32, latency_weight=1.0)
    rows_ = s.ask(1)
    assert rows_.shape == (1, len(space.decisions)) and s.finished
    h = s.history[0]
    assert h["expected_ms"] > 0 and h["latency_ms"] > 0 and 0 <= h["supernet_accuracy"] <= 100
    assert "skips" not in h


@pytest.mark.parametrize("options, message", [
    (dict(order=3), "strategy darts: option order: expected one of 1, 2, got 3"),
    (dict(remedy="pdarts"), "option remedy: expected one of none, darts-minus, skip-limit"),
    (dict(latency_form="power"), "option latency_form: expected one of absolute, additive, multiplicative"),
    (dict(epochs=0), "option epochs: expected an integer >= 1, got 0"),
    (dict(latency_weight=-1), "option latency_weight: expected a number >= 0"),
    (dict(warp=1), "unknown option 'warp'"),
    (dict(warmup_epochs=3), "option warmup_epochs: expected fewer than epochs (3)"),
    (dict(train_images=1500), "train_images + val_images: expected at most"),
    (dict(resolution=10), "option resolution: expected a multiple of 4"),
    (dict(dataset="nowhere.npz"), "nowhere.npz"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=None) as error:
        strategy(**options)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_darts_refuses_mnasnet_and_proxyless_refuses_second_order():
    from pynas.space import get_space

    with pytest.raises(ValueError, match="space: expected nb201, got mnasnet .use --strategy proxyless."):
        strategy("darts", get_space("mnasnet", num_classes=10, in_channels=1))
    with pytest.raises(ValueError, match="strategy proxyless: option order: expected 1"):
        strategy("proxyless", order=2)


@pytest.mark.parametrize("option, message", [
    ("order=3", "strategy darts: option order: expected one of 1, 2, got 3"),
    ("remedy=early", "option remedy: expected one of none, darts-minus, skip-limit, got 'early'"),
])
def test_bad_strategy_options_on_the_command_line_are_one_line_exit_2(tmp_path, capsys, option, message):
    out = tmp_path / "run"
    code = main(["search", "--space", "nb201", "--predictor", "nb201-pixel3", "--evaluator", "nb201:cifar10",
                 "--target-ms", "5", "--budget", "3", "--strategy", "darts", "--strategy-option", "dataset=digits",
                 "--strategy-option", option, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()
