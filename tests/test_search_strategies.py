"""Search strategies: the ask/tell contract for every registered one (deterministic from a state, a
state that round-trips through JSON and restores a run exactly, failed rows skipped, options
validated), and what each does (random-feasible asks only rows under T, evolution improves on a
synthetic problem and its population ages, Optuna's peers tell failures as FAIL trials)."""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from pynas.search.problem import Problem
from pynas.search.reward import make_reward
from pynas.search.strategies import STRATEGIES, State, make_strategy

HAVE_OPTUNA = importlib.util.find_spec("optuna") is not None
MINE = ["random", "random-feasible", "evolution", "optuna-nsga2", "optuna-tpe"]

# A synthetic space: 7 decisions, 7,200 architectures; latency additive, accuracy growing with it
# (bigger is better, as in real spaces) plus one interaction and a fixed per-architecture noise.
CARD = (3, 4, 5, 2, 5, 3, 4)
_tables = np.random.default_rng(1234)
COST = [np.sort(_tables.uniform(0.2, 2.0, c)) for c in CARD]
GAIN = [np.sort(_tables.uniform(0.0, 6.0, c)) for c in CARD]
RADIX = np.cumprod((1,) + CARD[:-1])
NOISE = _tables.normal(0.0, 1.0, int(np.prod(CARD)))


def latency(tokens):
    tokens = np.asarray(tokens)
    return 0.5 + sum(COST[i][tokens[:, i]] for i in range(len(CARD)))


def accuracy(tokens):
    tokens = np.asarray(tokens)
    gain = sum(GAIN[i][tokens[:, i]] for i in range(len(CARD)))
    gain += 4.0 * ((tokens[:, 0] == 1) & (tokens[:, 2] == 3))  # an interaction a one-step search must find
    return np.clip(30.0 + 1.5 * gain + NOISE[tokens @ RADIX], 0.0, 100.0)


ALL = np.stack(np.meshgrid(*[np.arange(c) for c in CARD], indexing="ij"), axis=-1).reshape(-1, len(CARD))
T = float(np.quantile(latency(ALL), 0.25))
BEST_UNDER_T = float(accuracy(ALL)[latency(ALL) <= T].max())


def problem(target=T, reward="absolute"):
    return Problem(names=tuple(f"d{i}" for i in range(len(CARD))), cardinalities=CARD, latency=latency,
                   reward=make_reward(reward, target))


def build(name, seed=0, **options):
    if name.startswith("optuna"):
        pytest.importorskip("optuna")
    return make_strategy(name, problem(), seed=seed, **options)


def tell(strategy, tokens, fail=()):
    """Evaluate `tokens` on the synthetic problem and tell them; rows in `fail` fail (NaN)."""
    acc = accuracy(tokens).astype(np.float64)
    acc[list(fail)] = np.nan
    lat = latency(tokens)
    strategy.tell(tokens, acc, lat, strategy.problem.reward(acc, lat))


def json_round_trip(state: State) -> State:
    """What the loop's log does with a state: values through JSON, arrays through an npz (copies)."""
    values = json.loads(json.dumps(state.values, allow_nan=False))
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in state.arrays.values())
    return State(values=values, arrays={k: np.array(v, copy=True) for k, v in state.arrays.items()})


def rounds(strategy, count, n, start=0):
    """`count` ask/tell rounds of n rows (every 5th round's first row fails); the rows asked."""
    out = []
    for r in range(start, start + count):
        tokens = strategy.ask(n)
        tell(strategy, tokens, fail=(0,) if r % 5 == 2 else ())
        out.append(tokens)
    return np.concatenate(out)


def same_state(a: State, b: State):
    assert json.dumps(a.values, sort_keys=True) == json.dumps(b.values, sort_keys=True)
    assert a.arrays.keys() == b.arrays.keys()
    for key in a.arrays:
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])


def test_registered():
    for name in MINE:
        assert name in STRATEGIES
        module, _ = STRATEGIES[name]
        assert module.startswith("pynas.search.strategies.")


def test_no_optuna_unless_asked():
    code = ("import sys; from pynas.search.strategies import make_strategy; "
            "import pynas.search.strategies.random, pynas.search.strategies.evolution; "
            "assert 'optuna' not in sys.modules and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/", env=None)


# -- the contract, for every strategy of this module set -------------------------------------------

@pytest.mark.parametrize("name", MINE)
def test_rows_in_the_space(name):
    s = build(name)
    assert s.name == name and s.summary and s.batch_size >= 1
    for n in (1, 3):
        tokens = s.ask(n)
        assert tokens.shape == (n, len(CARD)) and tokens.dtype == np.int64
        assert ((tokens >= 0) & (tokens < np.array(CARD))).all()
        tell(s, tokens)


@pytest.mark.parametrize("name", MINE)
def test_deterministic_from_a_state(name):
    s = build(name, seed=7)
    rounds(s, 12, 2)
    state = json_round_trip(s.get_state())
    a, b = build(name, seed=7), build(name, seed=7)
    a.set_state(state)
    b.set_state(json_round_trip(state))
    np.testing.assert_array_equal(a.ask(3), b.ask(3))
    same_state(a.get_state(), b.get_state())
    # and the original, which never went through a state, agrees with both
    np.testing.assert_array_equal(s.ask(3), build_from(name, 7, state).ask(3))


def build_from(name, seed, state):
    s = build(name, seed=seed)
    s.set_state(json_round_trip(state))
    return s


@pytest.mark.parametrize("name", MINE)
@pytest.mark.parametrize("n", [1, 3])
def test_resume_mid_run_is_identical(name, n):
    """Stopped at several points (one between an ask and its tell) and restored each time into a fresh
    strategy, a run asks exactly the rows of the uninterrupted run."""
    total = 40 if n == 1 else 20
    straight = rounds(build(name, seed=3), total, n)
    s, out, r = build(name, seed=3), [], 0
    for stop in sorted({5, 9, 13, 14, 2 * total // 3, total - 4}):  # evolution's random phase ends in there
        out.append(rounds(s, stop - r, n, start=r))
        r = stop
        s = build_from(name, 3, s.get_state())
    out.append(rounds(s, total - r, n, start=r))
    np.testing.assert_array_equal(np.concatenate(out), straight)
    # an evaluation in flight: the state taken between ask and tell, the rows told to the restored one
    s = build(name, seed=3)
    rounds(s, 9, n)
    tokens = s.ask(n)
    t = build_from(name, 3, s.get_state())
    tell(s, tokens)
    tell(t, tokens)
    np.testing.assert_array_equal(rounds(s, 4, n, start=10), rounds(t, 4, n, start=10))


@pytest.mark.parametrize("name", MINE)
def test_failed_rows_are_skipped(name):
    s = build(name, seed=1)
    for _ in range(3):  # everything fails for a while: still asks valid rows
        tokens = s.ask(2)
        tell(s, tokens, fail=(0, 1))
    rounds(s, 10, 2)
    state = s.get_state()
    for key, array in state.arrays.items():
        if array.dtype.kind == "f":
            assert np.isfinite(array).all(), key
    json.dumps(state.values, allow_nan=False)
    tokens = s.ask(1)
    assert ((tokens >= 0) & (tokens < np.array(CARD))).all()


@pytest.mark.parametrize("name", MINE)
def test_unknown_option(name):
    with pytest.raises(ValueError, match="unknown option 'colour', expected one of"):
        build(name, colour=3)


BAD_OPTIONS = [
    ("random-feasible", "chunk", 0), ("random-feasible", "max_draws", -1), ("random-feasible", "chunk", 2.5),
    ("evolution", "population", 1), ("evolution", "population", "100"), ("evolution", "sample", 0),
    ("evolution", "sample", 101), ("evolution", "initial", 0), ("evolution", "initial", 101),
    ("evolution", "feasible", 1), ("evolution", "novel", "yes"), ("evolution", "candidates", 0),
    ("evolution", "max_draws", 0), ("evolution", "population", True),
    ("optuna-nsga2", "population_size", 1), ("optuna-nsga2", "constraint", "no"),
    ("optuna-tpe", "n_startup_trials", -1), ("optuna-tpe", "constraint", 0),
]


@pytest.mark.parametrize("name,option,value", BAD_OPTIONS)
def test_bad_option_values(name, option, value):
    with pytest.raises(ValueError, match=f"option {option}: expected") as info:
        build(name, **{option: value})
    assert "\n" not in str(info.value) and name in str(info.value)


@pytest.mark.parametrize("name", MINE)
def test_bad_ask(name):
    s = build(name)
    for n in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="ask: expected a number of rows"):
            s.ask(n)


# -- random, random-feasible -----------------------------------------------------------------------

def test_random_is_uniform():
    tokens = build("random", seed=0).ask(6000)
    for i, c in enumerate(CARD):
        counts = np.bincount(tokens[:, i], minlength=c)
        assert abs(counts / len(tokens) - 1 / c).max() < 0.03
    assert (latency(tokens) > T).mean() > 0.6  # most of the space is over T


def test_random_feasible_asks_only_rows_under_t():
    s = build("random-feasible", seed=0)
    tokens = np.concatenate([s.ask(1) for _ in range(200)] + [s.ask(3000)])
    assert (latency(tokens) <= T).all()
    feasible = ALL[latency(ALL) <= T]
    seen = {tuple(r) for r in tokens}
    assert len(seen) > 0.5 * len(feasible)  # spread over the feasible set, not stuck on a few
    # uniform among the feasible: each feasible architecture about equally often
    counts = np.bincount((tokens @ RADIX), minlength=len(NOISE))[feasible @ RADIX]
    assert counts.mean() == pytest.approx(len(tokens) / len(feasible))
    assert counts.std() < 2 * np.sqrt(counts.mean())


def test_random_feasible_refuses_an_unreachable_target():
    s = make_strategy("random-feasible", problem(target=0.1), seed=0, max_draws=5000)
    with pytest.raises(ValueError, match=r"random-feasible: found 0 of 1 architectures .* T = 0.1 ms in 5000 uniform"):
        s.ask(1)
    e = make_strategy("evolution", problem(target=0.1), seed=0, max_draws=5000)
    with pytest.raises(ValueError, match="strategy evolution: found 0 of 1 new architectures"):
        e.ask(1)


# -- evolution ------------------------------------------------------------------------------------

def regret_under_t(tokens, budget):
    """Best accuracy under T of all the space minus the best under T among the first `budget` distinct rows."""
    _, first = np.unique(tokens, axis=0, return_index=True)
    distinct = tokens[np.sort(first)][:budget]
    under = distinct[latency(distinct) <= T]
    return BEST_UNDER_T - (accuracy(under).max() if len(under) else 0.0)


def search(name, seed, budget, **options):
    s = make_strategy(name, problem(), seed=seed, **options)
    out, distinct = [], set()
    while len(distinct) < budget:
        tokens = s.ask(1)
        tell(s, tokens)
        out.append(tokens)
        distinct.update(map(tuple, tokens))
    return np.concatenate(out)


def test_evolution_improves_on_random_feasible():
    evo = [regret_under_t(search("evolution", seed, 60), 60) for seed in range(4)]
    rnd = [regret_under_t(search("random-feasible", seed, 60), 60) for seed in range(4)]
    assert np.mean(evo) < 0.5 * np.mean(rnd), (evo, rnd)
    # and the textbook variant (no latency model in the mutations) beats uniform sampling
    options = {"feasible": False, "novel": False, "candidates": 1, "population": 50, "sample": 10, "initial": 50}
    plain = [regret_under_t(search("evolution", seed, 150, **options), 150) for seed in range(4)]
    uniform = [regret_under_t(search("random", seed, 150), 150) for seed in range(4)]
    assert np.mean(plain) < np.mean(uniform), (plain, uniform)


def test_evolution_children_are_new_and_under_t():
    s = build("evolution", seed=2)
    tokens = []
    for i in range(60):
        t = s.ask(4 if i % 3 == 0 else 1)
        tell(s, t)
        tokens.append(t)
    tokens = np.concatenate(tokens)
    assert len({tuple(r) for r in tokens}) == len(tokens)
    assert (latency(tokens) <= T).all()


def test_evolution_population_ages():
    """The oldest member dies when a newcomer arrives, even the best one; failed rows never enter."""
    s = build("evolution", seed=0, population=5, sample=2, initial=2)
    told = []
    first = s.ask(2)
    acc = np.array([99.0, 10.0])  # the first one is by far the best
    lat = latency(first)
    s.tell(first, acc, lat, s.problem.reward(acc, lat))
    told += list(first)
    for i in range(6):
        tokens = s.ask(1)
        if i == 2:
            tell(s, tokens, fail=(0,))
            continue
        tell(s, tokens)
        told.append(tokens[0])
    state = s.get_state()
    members = state.arrays["members"]
    np.testing.assert_array_equal(members, np.array(told[-5:]))
    assert 99.0 not in state.arrays["rewards"] and len(state.arrays["rewards"]) == 5


def test_evolution_tournament_picks_the_best():
    """With the tournament as large as the population (not full yet), every child is a mutant of the best."""
    s = build("evolution", seed=0, population=20, sample=20, initial=10, candidates=1)
    start = s.ask(10)
    tell(s, start)
    members = s.get_state().arrays["members"]
    best = members[np.argmax(s.get_state().arrays["rewards"])]
    for _ in range(5):
        child = s.ask(1)[0]
        assert 1 <= (child != best).sum() <= 2  # one mutation, or one and its repair
        acc, lat = np.array([0.0]), latency(child[None, :])
        s.tell(child[None, :], acc, lat, s.problem.reward(acc, lat))  # worse children never win


def test_evolution_textbook_variant():
    s = build("evolution", seed=0, feasible=False, novel=False, candidates=1, initial=100)
    tokens = np.concatenate([s.ask(50), s.ask(50)])
    assert (latency(tokens) > T).any()  # the first population is uniform over the whole space


def test_evolution_bad_state():
    s = build("evolution")
    state = s.get_state()
    state.arrays["rewards"] = np.zeros(3)
    with pytest.raises(ValueError, match="evolution: state: 0 members with 3 rewards"):
        s.set_state(state)
    with pytest.raises(ValueError, match="evolution: state:"):
        s.set_state(State(values={}, arrays={}))


# -- Optuna's peers -------------------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_OPTUNA, reason="optuna is not installed")
@pytest.mark.parametrize("name", ["optuna-nsga2", "optuna-tpe"])
def test_optuna_trials(name):
    import optuna

    s = build(name, seed=0)
    tokens = s.ask(3)
    tell(s, tokens, fail=(1,))
    trials = s.study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                                         optuna.trial.TrialState.COMPLETE]
    lat = latency(tokens)
    assert trials[0].constraints == {"latency": pytest.approx(lat[0] / T - 1)}
    if name == "optuna-nsga2":
        assert trials[2].values == pytest.approx([accuracy(tokens[2:])[0], lat[2]])
    else:
        assert trials[2].values == pytest.approx(list(s.problem.reward(accuracy(tokens[2:]), lat[2:])))
    with pytest.raises(ValueError, match="is not the one asked"):
        t = s.ask(1)
        tell(s, (t + 1) % np.array(CARD))
    u = build(name, seed=0, constraint=False)
    tell(u, u.ask(2))
    assert all(not t.constraints for t in u.study.get_trials(deepcopy=False))


@pytest.mark.skipif(not HAVE_OPTUNA, reason="optuna is not installed")
def test_optuna_nsga2_resume_across_generations():
    """Past a few generations (population 4), the parent caches and generations restore too."""
    straight = rounds(build("optuna-nsga2", seed=5, population_size=4), 18, 1)
    s, out = build("optuna-nsga2", seed=5, population_size=4), []
    for r in range(18):
        if r in (4, 7, 8, 12):
            s = build_from_options("optuna-nsga2", 5, s.get_state(), population_size=4)
        out.append(rounds(s, 1, 1, start=r))
    np.testing.assert_array_equal(np.concatenate(out), straight)
    generations = {t.system_attrs.get("NSGAIISampler:generation") for t in s.study.get_trials(deepcopy=False)}
    assert len(generations) >= 3


def build_from_options(name, seed, state, **options):
    s = build(name, seed=seed, **options)
    s.set_state(json_round_trip(state))
    return s


def test_missing_optuna_message(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_optuna(name, *args, **kwargs):
        if name == "optuna" or name.startswith("optuna."):
            raise ImportError("no optuna here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    with pytest.raises(ImportError, match=r"pip install 'pynas\[search\]'"):
        make_strategy("optuna-tpe", problem(), seed=0)
