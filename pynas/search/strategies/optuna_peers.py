"""Optuna's samplers as peers: `optuna-nsga2` and `optuna-tpe`, what a user would otherwise reach for
(pynas's optional extra `search` installs Optuna; nothing else in pynas imports it).

Both drive an in-memory Optuna study through its ask/tell API, one categorical parameter per
decision (choices 0..c-1, named ``000:<decision>`` so that Optuna's sorted parameter order is the
space's). `ask(n)` asks Optuna for n trials; `tell` completes them in the same order: a failed
evaluation (NaN accuracy) is told as a FAIL trial, which the samplers ignore. Latency is priced for
every trial (free), and the target is Optuna's own constraint (`Trial.set_constraint`, feasible when
<= 0): ``LAT / T - 1``.

* `optuna-nsga2`: `NSGAIISampler` on two objectives, accuracy (maximised) and predicted latency
  (minimised), with the latency constraint (constrained domination: a feasible trial dominates an
  infeasible one). Optuna 5's defaults: population 50 (`population_size`), uniform crossover
  (swapping probability 0.5) with probability 0.9, each parameter mutated with probability 1/D
  (a mutated parameter is drawn uniformly), the first generation uniform.
* `optuna-tpe`: `TPESampler` on the search's reward (maximised), with the latency constraint (TPE
  ranks infeasible trials below feasible ones). Optuna 5's defaults: 10 random startup trials
  (`n_startup_trials`), 24 candidates per suggestion, multivariate TPE (the default for a single
  objective), constant liar on (trials asked but not told count as bad ones, so a batch spreads).
* `constraint` (true): `false` leaves the constraint out (NSGA-II then searches the whole
  accuracy/latency front, TPE the reward alone).

Neither avoids asking an architecture twice (the loop answers repeats from its cache, free of
budget: on NAS-Bench-201, 1.3 to 1.5 asks per new architecture over 500). Cost per trial inside
`pynas search` (state and log included, NAS-Bench-201, 500 trials): NSGA-II about 5 ms, TPE about
9 ms (its Parzen estimators are refitted on every trial, so it grows with the trials told).

State (a resumed run continues exactly as an uninterrupted one): every trial of the study, in
number order (state, parameters and values as arrays; system attributes, which hold NSGA-II's
generations, TPE's relative samples and the constraints, as JSON), the study's system attributes
(NSGA-II's cached parent populations) and the Mersenne-Twister states of the sampler's generator
and of its random fallback sampler (Optuna 5: `sampler._rng.rng`, `sampler._random_sampler._rng.rng`;
NSGA-II's crossover and mutation draw from the former). `set_state` rebuilds a fresh in-memory study
from those trials (the same trial ids, so the cached parent populations still point at them) and
restores both generators; the samplers' other caches are recomputed from the trials. A finished
trial never changes, so `get_state` serialises each once.
"""
from __future__ import annotations

import contextlib
import logging

import numpy as np

from pynas.search.problem import Problem
from pynas.search.strategies.base import State, Strategy
from pynas.search.strategies.random import check_bool, check_int, check_n, check_told


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("the optuna-nsga2 and optuna-tpe strategies need Optuna: pip install 'pynas[search]' "
                          "(or pip install optuna)") from None
    return optuna


@contextlib.contextmanager
def quiet():
    """Optuna logs every trial (INFO) and every failed one (WARNING): the search loop keeps its own log."""
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def mt_state(random_state: np.random.RandomState, prefix: str, arrays: dict) -> dict:
    state = random_state.get_state(legacy=False)
    arrays[f"{prefix}_key"] = np.asarray(state["state"]["key"], dtype=np.uint32).copy()
    return {"bit_generator": state["bit_generator"], "pos": int(state["state"]["pos"]),
            "has_gauss": int(state["has_gauss"]), "gauss": float(state["gauss"])}


def restore_mt(random_state: np.random.RandomState, values: dict, key: np.ndarray) -> None:
    if values.get("bit_generator") != "MT19937":
        raise ValueError(f"generator state: expected bit_generator 'MT19937', got {values.get('bit_generator')!r}")
    random_state.set_state({"bit_generator": "MT19937",
                            "state": {"key": np.asarray(key, dtype=np.uint32), "pos": int(values["pos"])},
                            "has_gauss": int(values["has_gauss"]), "gauss": float(values["gauss"])})


class OptunaPeer(Strategy):
    """The ask/tell plumbing and the state; subclasses give the sampler, directions and values."""

    batch_size = 1
    directions: tuple[str, ...] = ()

    def __init__(self, problem: Problem, seed: int = 0, constraint: bool = True, **sampler_options):
        super().__init__(problem, seed)
        self.sampler_options = sampler_options
        self.constraint = check_bool(self.name, "constraint", constraint)
        check_int(self.name, "seed", seed, 0, 2**32 - 1)  # Optuna seeds numpy's RandomState
        self.optuna = import_optuna()
        self.params = [f"{i:03d}:{name}" for i, name in enumerate(problem.names)]
        CategoricalDistribution = self.optuna.distributions.CategoricalDistribution
        self.distributions = {p: CategoricalDistribution(tuple(range(c)))
                              for p, c in zip(self.params, problem.cardinalities)}
        self._build()

    def _sampler(self):
        raise NotImplementedError

    def _values(self, accuracy: float, latency_ms: float, reward: float) -> list[float]:
        raise NotImplementedError

    def _build(self) -> None:
        self.sampler = self._sampler()
        with quiet():
            self.study = self.optuna.create_study(sampler=self.sampler, directions=list(self.directions))
        self.pending: list[int] = []  # trial ids asked and not yet told, in order
        self.records: list[tuple] = []  # get_state's serialised finished trials, by number

    # -- ask/tell ----------------------------------------------------------------------------------
    def ask(self, n: int) -> np.ndarray:
        n = check_n(n)
        if self.pending:
            raise ValueError(f"strategy {self.name}: ask before the {len(self.pending)} rows asked last were told")
        rows = []
        with quiet():
            for _ in range(n):
                trial = self.study.ask(self.distributions)
                self.pending.append(trial._trial_id)
                rows.append([trial.params[p] for p in self.params])
        return np.asarray(rows, dtype=np.int64)

    def tell(self, tokens, accuracy, latency_ms, reward) -> None:
        tokens, reward = check_told(self.problem, tokens, accuracy, latency_ms, reward)
        accuracy = np.asarray(accuracy, dtype=np.float64).reshape(-1)
        latency_ms = np.asarray(latency_ms, dtype=np.float64).reshape(-1)
        if len(tokens) != len(self.pending):
            raise ValueError(f"tell: expected the {len(self.pending)} rows asked last, got {len(tokens)}")
        TrialState = self.optuna.trial.TrialState
        with quiet():
            for trial_id, row, acc, lat, rew in zip(self.pending, tokens, accuracy, latency_ms, reward):
                trial = self.optuna.trial.Trial(self.study, trial_id)
                asked = [trial.params[p] for p in self.params]
                if asked != row.tolist():
                    raise ValueError(f"tell: row {row.tolist()} is not the one asked ({asked})")
                if not (np.isfinite(acc) and np.isfinite(rew) and np.isfinite(lat)):
                    self.study.tell(trial, state=TrialState.FAIL)
                    continue
                if self.constraint:
                    trial.set_constraint("latency", float(lat) / self.problem.target_ms - 1.0)
                self.study.tell(trial, self._values(float(acc), float(lat), float(rew)))
        self.pending = []

    # -- state -------------------------------------------------------------------------------------
    def _record(self, trial) -> tuple:
        values = [0.0] * len(self.directions) if trial.values is None else [float(v) for v in trial.values]
        return int(trial.state.value), [int(trial.params[p]) for p in self.params], values, dict(trial.system_attrs)

    def get_state(self) -> State:
        trials = self.study.get_trials(deepcopy=False)
        # A finished trial never changes (Optuna's storage refuses it): each is serialised once.
        while len(self.records) < len(trials) and trials[len(self.records)].state.is_finished():
            self.records.append(self._record(trials[len(self.records)]))
        records = self.records + [self._record(t) for t in trials[len(self.records):]]
        d, k = len(self.params), len(self.directions)
        arrays = {"trial_states": np.array([r[0] for r in records], dtype=np.int8).reshape(-1),
                  "trial_params": np.array([r[1] for r in records], dtype=np.int64).reshape(-1, d),
                  "trial_values": np.array([r[2] for r in records], dtype=np.float64).reshape(-1, k)}
        storage = self.study._storage
        values = {
            "trial_system_attrs": [r[3] for r in records],
            "study_system_attrs": dict(storage.get_study_system_attrs(self.study._study_id)),
            "pending": list(self.pending),
            "sampler_rng": mt_state(self.sampler._rng.rng, "sampler_rng", arrays),
            "random_sampler_rng": mt_state(self.sampler._random_sampler._rng.rng, "random_sampler_rng", arrays),
        }
        return State(values=values, arrays=arrays)

    def set_state(self, state: State) -> None:
        optuna = self.optuna
        TrialState = optuna.trial.TrialState
        try:
            states = np.asarray(state.arrays["trial_states"]).reshape(-1)
            params = np.asarray(state.arrays["trial_params"], dtype=np.int64).reshape(len(states), len(self.params))
            values = np.asarray(state.arrays["trial_values"], dtype=np.float64).reshape(len(states), -1)
            attrs = state.values["trial_system_attrs"]
            if len(attrs) != len(states):
                raise ValueError(f"{len(states)} trials with {len(attrs)} system attributes")
            self._build()
            with quiet():
                for number, (code, row, value, attr) in enumerate(zip(states, params, values, attrs)):
                    trial_state = TrialState(int(code))
                    frozen = optuna.trial.create_trial(
                        state=trial_state, params=dict(zip(self.params, row.tolist())), distributions=self.distributions,
                        values=value.tolist() if trial_state == TrialState.COMPLETE else None, system_attrs=attr)
                    if not trial_state.is_finished():
                        frozen.datetime_complete = None
                    self.study.add_trial(frozen)
                    if self.study.get_trials(deepcopy=False)[-1]._trial_id != number:
                        raise ValueError(f"trial {number}: rebuilt with another id")
            storage = self.study._storage
            for key, value in state.values["study_system_attrs"].items():
                storage.set_study_system_attr(self.study._study_id, key, value)
            self.pending = [int(i) for i in state.values["pending"]]
            restore_mt(self.sampler._rng.rng, state.values["sampler_rng"], state.arrays["sampler_rng_key"])
            restore_mt(self.sampler._random_sampler._rng.rng, state.values["random_sampler_rng"],
                       state.arrays["random_sampler_rng_key"])
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"strategy {self.name}: state: {error}") from None


class OptunaNSGA2(OptunaPeer):
    name = "optuna-nsga2"
    summary = "Optuna's NSGA-II: accuracy up, predicted latency down, latency <= T as a constraint (a peer)"
    directions = ("maximize", "minimize")

    def __init__(self, problem: Problem, seed: int = 0, constraint: bool = True, population_size: int = 50):
        super().__init__(problem, seed, constraint,
                         population_size=check_int(self.name, "population_size", population_size, 2))

    def _sampler(self):
        return self.optuna.samplers.NSGAIISampler(seed=self.seed, **self.sampler_options)

    def _values(self, accuracy, latency_ms, reward):
        return [accuracy, latency_ms]


class OptunaTPE(OptunaPeer):
    name = "optuna-tpe"
    summary = "Optuna's TPE on the reward, latency <= T as a constraint (a peer)"
    directions = ("maximize",)

    def __init__(self, problem: Problem, seed: int = 0, constraint: bool = True, n_startup_trials: int = 10):
        super().__init__(problem, seed, constraint,
                         n_startup_trials=check_int(self.name, "n_startup_trials", n_startup_trials, 0))

    def _sampler(self):
        return self.optuna.samplers.TPESampler(seed=self.seed, **self.sampler_options)

    def _values(self, accuracy, latency_ms, reward):
        return [reward]
