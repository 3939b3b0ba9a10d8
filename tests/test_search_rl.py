"""The `rl` strategy: the ask/tell contract (determinism, bit-exact state, NaN rows), its options, its
screen (band under T, fresh rows), and that its policies learn on a small synthetic problem."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pynas.search.problem import Problem  # noqa: E402
from pynas.search.reward import make_reward  # noqa: E402
from pynas.search.strategies import STRATEGIES, State, make_strategy  # noqa: E402
from pynas.search.strategies.controller import LSTMPolicy  # noqa: E402

CARDS = (3, 4, 2, 5, 3, 4)          # 1,440 architectures
WEIGHTS = np.array([1.0, 0.5, 2.0, 0.7, 1.5, 0.9])
PEAK = np.array([2, 1, 1, 3, 0, 2])   # the best architecture of the synthetic accuracy


def latency(tokens):
    tokens = np.asarray(tokens)
    return 1.0 + tokens @ WEIGHTS


def accuracy(tokens):
    """Peaks at PEAK (90%), drops 6 points per decision away from it."""
    return 90.0 - 6.0 * (np.asarray(tokens) != PEAK).sum(axis=1)


def problem(target=None, reward="absolute"):
    target = float(latency(PEAK[None])[0]) if target is None else target
    return Problem(tuple(f"d{i}" for i in range(len(CARDS))), CARDS, latency, make_reward(reward, target))


def tell(strategy, prob, tokens, fail=()):
    acc = accuracy(tokens).astype(float) if tokens.shape[1] == len(CARDS) else np.full(len(tokens), 50.0)
    acc[list(fail)] = np.nan
    lat = prob.latency(tokens)
    strategy.tell(tokens, acc, lat, prob.reward(acc, lat))


def run(strategy, prob, rounds, n=None):
    asked = []
    for _ in range(rounds):
        tokens = strategy.ask(n or strategy.batch_size)
        asked.append(tokens)
        tell(strategy, prob, tokens)
    return np.concatenate(asked)


def roundtrip(state: State) -> State:
    """Through JSON and an npz with allow_pickle=False, as the search log stores it."""
    buffer = io.BytesIO()
    np.savez(buffer, **state.arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return State(values=json.loads(json.dumps(state.values)), arrays=arrays)


CONFIGS = [dict(), dict(algorithm="reinforce"), dict(policy="independent"),
           dict(policy="independent", algorithm="reinforce")]


def test_registered():
    assert STRATEGIES["rl"] == ("pynas.search.strategies.rl", "RLStrategy")
    assert make_strategy("rl-independent", problem()).options["policy"] == "independent"
    assert make_strategy("rl", problem()).options["policy"] == "lstm"


@pytest.mark.parametrize("options", CONFIGS)
def test_same_seed_same_run_and_ask_is_deterministic_from_a_state(options):
    prob = problem()
    a, b = (make_strategy("rl", prob, seed=3, batch_size=5, **options) for _ in range(2))
    assert np.array_equal(run(a, prob, 6), run(b, prob, 6))
    state = roundtrip(a.get_state())
    first = a.ask(5)
    a.set_state(state)
    assert np.array_equal(a.ask(5), first)
    c = make_strategy("rl", prob, seed=4, batch_size=5, **options)
    d = make_strategy("rl", prob, seed=3, batch_size=5, **options)
    assert not np.array_equal(run(c, prob, 6), run(d, prob, 6))


@pytest.mark.parametrize("options", CONFIGS)
def test_state_round_trip_is_bit_exact_and_continues_identically(options):
    prob = problem()
    a = make_strategy("rl", prob, seed=1, batch_size=4, **options)
    run(a, prob, 5, n=3)                    # 15 rows: an update at 6 and 12 rows, 3 in the buffer
    assert a.updates == 2 and len(a.buffer_rewards) == 3
    state = a.get_state()
    assert all(isinstance(v, np.ndarray) for v in state.arrays.values())
    json.dumps(state.values)                # JSON values only
    b = make_strategy("rl", prob, seed=1, batch_size=4, **options)
    b.set_state(roundtrip(state))
    for key, value in state.arrays.items():
        assert np.array_equal(b.get_state().arrays[key], value), key
    assert b.get_state().values == json.loads(json.dumps(state.values))
    assert np.array_equal(run(a, prob, 6, n=3), run(b, prob, 6, n=3))
    end_a, end_b = a.get_state(), b.get_state()
    assert end_a.values == end_b.values and end_a.arrays.keys() == end_b.arrays.keys()
    for key in end_a.arrays:
        assert end_a.arrays[key].tobytes() == end_b.arrays[key].tobytes(), key
    if options.get("algorithm") == "reinforce":
        assert end_a.values["baseline"] is not None
    assert end_a.values["adam_step"] > 0 and "adam.exp_avg_sq" in end_a.arrays


def test_state_of_other_options_or_strategy_refused():
    prob = problem()
    state = make_strategy("rl", prob, seed=0).get_state()
    with pytest.raises(ValueError, match="other options or seed"):
        make_strategy("rl", prob, seed=0, lr=0.5).set_state(state)
    with pytest.raises(ValueError, match="other options or seed"):
        make_strategy("rl", prob, seed=1).set_state(state)
    with pytest.raises(ValueError, match="rl-independent"):
        make_strategy("rl-independent", prob, seed=0).set_state(state)


def test_failed_rows_are_skipped():
    prob = problem()
    a = make_strategy("rl", prob, seed=0, batch_size=4)
    before = a.get_state()
    tokens = a.ask(4)
    tell(a, prob, tokens, fail=range(4))    # all failed: nothing to learn from, no update
    assert a.updates == 0 and len(a.buffer_rewards) == 0
    for key, value in before.arrays.items():
        if key.startswith("param."):
            assert np.array_equal(a.get_state().arrays[key], value)
    assert len(a.told) == 4                 # ... but they are not asked again
    tokens = a.ask(4)
    tell(a, prob, tokens, fail=[1])
    assert len(a.buffer_rewards) == 3 and np.isfinite(a.buffer_rewards).all()
    tokens = a.ask(1)
    tell(a, prob, tokens)
    assert a.updates == 1 and len(a.buffer_rewards) == 0


def test_repeats_told_by_the_loop_are_accepted():
    prob = problem()
    a = make_strategy("rl", prob, seed=0, batch_size=4)
    tokens = a.ask(4)
    tell(a, prob, np.concatenate([tokens, tokens]))
    assert a.updates == 1 and len(a.told) == 8


def test_screen_asks_fresh_rows_in_the_band():
    prob = problem(target=4.0)
    a = make_strategy("rl", prob, seed=0, batch_size=8)
    low, high = a.low, a.high
    assert (low, high) == pytest.approx((0.9, 1.0))          # absolute reward: 1 point of accuracy
    in_band = {tuple(t) for t in np.ndindex(*CARDS) if low <= latency(np.array([t]))[0] / 4.0 <= high}
    asked = run(a, prob, 5)
    keys = [tuple(t) for t in asked]
    assert len(set(keys)) == len(keys)                       # never asked twice
    assert len(in_band) < len(keys)
    assert set(keys[:len(in_band)]) == in_band               # the whole band first, then elsewhere
    ratios = latency(asked) / 4.0
    assert len(in_band) == 26 and ((ratios[:len(in_band)] >= 0.9) & (ratios[:len(in_band)] <= 1.0)).all()
    assert make_strategy("rl", problem(reward="soft")).low == 0.0   # MnasNet's rewards: all of [0, T]
    assert make_strategy("rl", prob, band="none").high == np.inf
    b = make_strategy("rl", prob, seed=0, batch_size=8, fresh=False, band=[0.5, 0.8])
    ratios = latency(run(b, prob, 4)) / 4.0
    assert ((ratios >= 0.5) & (ratios <= 0.8)).all()


def test_exhausted_space_repeats():
    prob = Problem(("a", "b"), (2, 3), lambda t: 1.0 + np.asarray(t).sum(1), make_reward("absolute", 3.0))
    a = make_strategy("rl", prob, seed=0, batch_size=4)
    asked = run(a, prob, 3)                                  # 12 rows of a 6-architecture space
    assert len({tuple(t) for t in asked[:6]}) == 6 and len(asked) == 12


@pytest.mark.parametrize("options, lr", list(zip(CONFIGS, [0.01, 0.003, 0.05, 0.05])))
def test_policy_learns_the_peak(options, lr):
    # No screen and repeats allowed: the policy alone has to find PEAK among 1,440 architectures.
    prob = problem()
    a = make_strategy("rl", prob, seed=0, band="none", fresh=False, batch_size=10, lr=lr, **options)

    def p_peak():
        with torch.no_grad():
            return float(torch.exp(a.policy.evaluate(torch.as_tensor(PEAK[None]))[0])[0])

    start = p_peak()
    assert start == pytest.approx(1 / 1440, rel=1e-3)        # uniform at first
    asked = run(a, prob, 40)
    assert p_peak() > 20 * start
    assert accuracy(asked[-50:]).mean() > accuracy(asked[:50]).mean() + 10


def test_lstm_samples_follow_its_probabilities():
    rng = np.random.default_rng(0)
    policy = LSTMPolicy((3, 2, 4), 16, rng)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(torch.from_numpy(rng.normal(0, 0.8, size=tuple(param.shape)).astype(np.float32)))
    drawn = policy.sample(rng.random((40000, 3)))
    every = np.array(list(np.ndindex(3, 2, 4)))
    with torch.no_grad():
        logp, entropy = policy.evaluate(torch.as_tensor(every))
    counts = np.array([(drawn == t).all(axis=1).sum() for t in every]) / len(drawn)
    assert np.abs(counts - logp.exp().numpy()).max() < 0.01
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("policy", ["lstm", "independent"])
def test_samples_stay_in_each_decisions_range(policy):
    rng = np.random.default_rng(1)
    strategy = make_strategy("rl", problem(), seed=0, policy=policy)
    with torch.no_grad():
        for param in strategy.policy.parameters():
            param.add_(torch.from_numpy(rng.normal(0, 3.0, size=tuple(param.shape)).astype(np.float32)))
    uniforms = np.concatenate([rng.random((5000, len(CARDS))), np.full((1, len(CARDS)), 1 - 1e-16)])
    drawn = strategy.policy.sample(uniforms)
    assert (drawn >= 0).all() and (drawn < np.array(CARDS)).all()


def test_threads_left_as_found():
    before = torch.get_num_threads()
    prob = problem()
    run(make_strategy("rl", prob, seed=0, batch_size=4), prob, 2)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("option, value", [
    ("algorithm", "a2c"), ("policy", "gru"), ("hidden", 0), ("hidden", 2.5), ("lr", 0), ("lr", -1.0),
    ("lr", float("nan")), ("entropy", -0.1), ("clip", 0), ("clip", 1.0), ("epochs", 0), ("batch_size", 0),
    ("batch_size", True), ("baseline_decay", 1.0), ("baseline_decay", -0.5), ("band", "wide"),
    ("band", [1.0, 0.5]), ("band", [0.5]), ("fresh", "yes"), ("band_weight", -1), ("band_rows", -1),
])
def test_bad_options(option, value):
    with pytest.raises(ValueError, match=f"rl option {option}:"):
        make_strategy("rl", problem(), **{option: value})


def test_unknown_option_and_bad_ask():
    with pytest.raises(ValueError, match="unknown option 'learning_rate'"):
        make_strategy("rl", problem(), learning_rate=0.1)
    with pytest.raises(ValueError, match="ask n:"):
        make_strategy("rl", problem()).ask(0)


def test_strategies_package_imports_without_torch():
    script = ("import sys\n"
              "import pynas.search.strategies as s\n"
              "assert 'rl' in s.STRATEGIES and 'rl-independent' in s.STRATEGIES\n"
              "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n"
              "print('OK')\n")
    import pynas   # the subprocess imports this same pynas (the source tree or the installed one)
    root = os.path.dirname(os.path.dirname(pynas.__file__))
    result = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": root}, cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


CHILD = """
import json, sys
import numpy as np
import torch
torch.set_num_threads(3)                 # another thread setting than the parent's (the strategy uses one)
sys.path.insert(0, sys.argv[2])
import test_search_rl as t
from pynas.search.strategies import State, make_strategy
prob = t.problem()
s = make_strategy("rl", prob, seed=5, batch_size=6)
with np.load(sys.argv[1] + "/state.npz", allow_pickle=False) as npz:
    s.set_state(State(values=json.load(open(sys.argv[1] + "/state.json")), arrays={k: npz[k] for k in npz.files}))
np.save(sys.argv[1] + "/asked.npy", t.run(s, prob, 5, n=4))
np.savez(sys.argv[1] + "/end.npz", **s.get_state().arrays)
"""


def test_resume_in_another_process_continues_identically(tmp_path):
    prob = problem()
    a = make_strategy("rl", prob, seed=5, batch_size=6)
    run(a, prob, 4, n=4)
    state = a.get_state()
    np.savez(tmp_path / "state.npz", **state.arrays)
    (tmp_path / "state.json").write_text(json.dumps(state.values))
    import pynas
    root = os.path.dirname(os.path.dirname(pynas.__file__))
    result = subprocess.run([sys.executable, "-P", "-c", CHILD, str(tmp_path), os.path.dirname(__file__)],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": root}, cwd=root)
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.load(tmp_path / "asked.npy"), run(a, prob, 5, n=4))
    with np.load(tmp_path / "end.npz") as end:
        for key, value in a.get_state().arrays.items():
            assert end[key].tobytes() == value.tobytes(), key
