"""Regularized (aging) evolution, Real et al. 2019 ("Regularized Evolution for Image Classifier
Architecture Search"), with the latency model choosing which children to evaluate.

Options (defaults) and what they do:

* `population` (100), `sample` (25): Real et al.'s. Each child comes from a tournament: `sample`
  members drawn without replacement from the population, the winner the one with the highest
  reward. The child joins the population as its newest member when told; once the population holds
  `population` members, each newcomer makes the oldest die, whatever its reward (the aging that
  regularises the search).
* `initial` (= `sample`): how many architectures are drawn at random before the first tournament,
  uniformly among those the latency model puts at or under T (as `random-feasible`). Real et al.
  fill the whole population at random first; here the population fills with children instead, so
  that a search of a few hundred evaluations does not spend its first `population` of them at
  random (NAS-Bench-201, ImageNet16-120, T at the 25% quantile, 200 seeds: regret 0.16 instead of
  2.27 points at 100 evaluations on the Pixel 3, 0.61 instead of 1.38 on the FPGA; 0.00 vs 0.06 and
  0.35 vs 0.39 at 200; the same at 500). A failed evaluation (NaN) enters nothing: the random phase
  lasts until `initial` have succeeded.
* Mutation: the winner with one decision moved to another of its choices, drawn uniformly (Real et
  al.'s op mutation), then, with the latency model pricing every candidate (it is free; the budget
  is accuracy evaluations):
  - `feasible` (true): a mutation that takes the child over T is repaired by a second one, on
    another decision, the one that leaves the child the closest under T (ties drawn uniformly). An
    architecture over T can never be the search's answer, so evaluating one wastes an evaluation;
    and near the target a better network often means moving capacity from one decision to another
    (e.g. a 3x3 convolution from one edge to another), which the repair makes one step instead of
    two through a worse network the tournament would rarely pick again.
  - `novel` (true): a child asked before is redrawn (the loop would answer it from its cache, but
    the population would hold a copy in place of a new architecture).
  - `candidates` (4): that many such children are drawn (the winner's mutations in a random order)
    and the one whose predicted latency is the closest to T is asked: a tournament on the one thing
    known before evaluating. Within a latency budget the larger network is the better guess and a
    latency-constrained optimum usually lies near the boundary; 1 turns the preference off. (On
    NAS-Bench-201, ImageNet16-120, T at the 25% quantile: 1, 2, 4, 8 candidates leave the best 12-epoch
    accuracy under T 0.14, 0.22, 0.04, 0.01 points short of the space's best at 200 evaluations on
    the FPGA, 0.42, 0.31, 0.14, 0.05 at 100 on the Pixel 3; 8 is worse than 4 where the best under T
    is well below T, e.g. the Pixel 3 at the 50% quantile, at 0.8 T.)
  A winner with no feasible new neighbour gives way to a new uniform feasible architecture
  (rejection sampling, at most `max_draws` draws), and when there is none of those either (every
  architecture under T asked) a plain mutation, repeats allowed.
  `feasible=False, novel=False, candidates=1, initial=population` is the textbook algorithm.

Batches: `ask(n)` returns n distinct rows (with `novel`), each from its own tournament on the
current population (random rows while the random phase lasts). State: the generator, the population
(tokens and rewards, oldest first) and every row asked so far.
"""
from __future__ import annotations

import numpy as np

from pynas.search.problem import Problem
from pynas.search.strategies.base import State, Strategy, restore_rng, rng_state
from pynas.search.strategies.random import check_bool, check_int, check_n, check_told, sample_feasible


def keys(rows: np.ndarray) -> np.ndarray:
    """One hashable, comparable key per row (its bytes as a numpy void), for np.isin."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    return rows.view(np.dtype((np.void, rows.shape[1] * 8))).reshape(-1)


class Mutations:
    """Every one-decision change of a space: decision `decision[k]` moved by `shift[k]` (mod its
    cardinality), so that `apply(rows)` gives each row's sum(c_i - 1) neighbours at once."""

    def __init__(self, cardinalities: tuple[int, ...]):
        card = np.asarray(cardinalities, dtype=np.int64)
        self.cardinalities = card
        self.decision = np.repeat(np.arange(len(card)), np.maximum(card - 1, 0))
        self.shift = np.concatenate([np.arange(1, c) for c in card] + [np.zeros(0, np.int64)]).astype(np.int64)
        self.count = len(self.decision)

    def apply(self, rows: np.ndarray) -> np.ndarray:
        """The neighbours of one row (count x D), or of each of m rows (m * count x D, row by row)."""
        rows = np.asarray(rows, dtype=np.int64)
        single = rows.ndim == 1
        rows = rows.reshape(-1, rows.shape[-1])
        out = np.repeat(rows, self.count, axis=0).reshape(len(rows), self.count, rows.shape[1])
        k = np.arange(self.count)
        out[:, k, self.decision] = (rows[:, self.decision] + self.shift) % self.cardinalities[self.decision]
        return out[0] if single else out.reshape(-1, rows.shape[1])


class Evolution(Strategy):
    name = "evolution"
    summary = ("regularized (aging) evolution: tournament of 25 in a population of 100, one-decision mutations "
               "kept under T and new")
    batch_size = 1

    def __init__(self, problem: Problem, seed: int = 0, population: int = 100, sample: int = 25,
                 initial: int | None = None, feasible: bool = True, novel: bool = True, candidates: int = 4,
                 max_draws: int = 1_000_000):
        super().__init__(problem, seed)
        self.population = check_int(self.name, "population", population, 2)
        self.sample = check_int(self.name, "sample", sample, 1, self.population)
        self.initial = check_int(self.name, "initial", self.sample if initial is None else initial, 1, self.population)
        self.feasible = check_bool(self.name, "feasible", feasible)
        self.novel = check_bool(self.name, "novel", novel)
        self.candidates = check_int(self.name, "candidates", candidates, 1)
        self.max_draws = check_int(self.name, "max_draws", max_draws, 1)
        self.mutations = Mutations(problem.cardinalities)
        self.rng = np.random.default_rng(seed)
        d = problem.dimensions
        self.members = np.zeros((0, d), dtype=np.int64)  # oldest first
        self.rewards = np.zeros(0, dtype=np.float64)
        self.asked = np.zeros((0, d), dtype=np.int64)  # every row asked, in order
        self.seen: set[bytes] = set()

    # -- proposing ---------------------------------------------------------------------------------
    def _latency(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.problem.latency(rows), dtype=np.float64).reshape(-1)

    def _new(self, rows: np.ndarray) -> np.ndarray:
        if not self.novel or not self.seen:
            return np.ones(len(rows), dtype=bool)
        return np.fromiter((row.tobytes() not in self.seen for row in rows), dtype=bool, count=len(rows))

    def _random(self, n: int) -> np.ndarray:
        """n rows uniform among the architectures under T (with `feasible`) not asked before (with
        `novel`); a shortfall filled with uniform rows."""
        exclude = self.seen if self.novel else None
        if self.feasible:
            rows = sample_feasible(self.problem, self.rng, n, exclude=exclude, max_draws=self.max_draws,
                                   strategy=self.name, error=not self.seen)
        else:
            rows = np.zeros((0, self.problem.dimensions), dtype=np.int64)
            for _ in range(64):  # a few redraws for new ones
                draw = self.problem.uniform(self.rng, 4 * n)
                if exclude is not None:
                    draw = draw[self._new(draw) & ~np.isin(keys(draw), keys(rows))]
                    _, first = np.unique(keys(draw), return_index=True)
                    draw = draw[np.sort(first)]
                rows = np.concatenate([rows, draw[: n - len(rows)]])
                if len(rows) == n:
                    break
        if len(rows) < n:
            rows = np.concatenate([rows, self.problem.uniform(self.rng, n - len(rows))])
        return rows

    def _child(self) -> np.ndarray:
        m = len(self.members)
        contestants = self.rng.choice(m, size=min(self.sample, m), replace=False)
        parent = self.members[contestants[np.argmax(self.rewards[contestants])]]
        mutants = self.mutations.apply(parent)
        width, d = mutants.shape
        if width == 0:
            return parent.copy()
        target = self.problem.target_ms
        latency = self._latency(mutants) if (self.feasible or self.candidates > 1) else np.zeros(width)
        under = latency <= target if self.feasible else np.ones(width, dtype=bool)
        new = self._new(mutants)
        decision = self.mutations.decision
        picks: list[tuple[np.ndarray, float]] = []
        order = self.rng.permutation(width)
        for start in range(0, width, 8):  # the mutations in a random order, 8 priced (and repaired) at once
            chunk = order[start:start + 8]
            valid = under[chunk] & new[chunk]
            over = np.flatnonzero(~under[chunk])
            if len(over):
                # repair: a second change, on another decision, leaving the child the closest under T
                repairs = self.mutations.apply(mutants[chunk[over]])
                repair_latency = self._latency(repairs).reshape(len(over), width)
                ok = (repair_latency <= target) & (decision[None, :] != decision[chunk[over]][:, None])
                flat = np.flatnonzero(ok)
                ok.flat[flat] = self._new(repairs[flat])
                best = np.where(ok, repair_latency, -np.inf).max(axis=1)
                ties = ok & (repair_latency >= best[:, None])
                valid[over] = ok.any(axis=1)
            for i in np.flatnonzero(valid)[: self.candidates - len(picks)]:
                j = chunk[i]
                if under[j]:
                    picks.append((mutants[j], latency[j]))
                else:
                    o = int(np.searchsorted(over, i))
                    options = np.flatnonzero(ties[o])
                    k = options[self.rng.integers(len(options))]
                    picks.append((repairs[o * width + k], repair_latency[o, k]))
            if len(picks) == self.candidates:
                break
        if not picks:
            row = self._random(1)[0]
            if self.novel and row.tobytes() in self.seen:  # nothing new anywhere: a plain mutation
                row = mutants[self.rng.integers(width)]
            return row.copy()
        distance = [abs(lat / target - 1.0) for _, lat in picks]
        return picks[int(np.argmin(distance))][0].copy()  # the first of the closest

    def _remember(self, rows: np.ndarray) -> None:
        self.asked = np.concatenate([self.asked, rows])
        self.seen.update(row.tobytes() for row in rows)

    def ask(self, n: int) -> np.ndarray:
        n = check_n(n)
        fill = min(n, self.initial - len(self.members)) if len(self.members) else n
        out = []
        if fill > 0:
            rows = self._random(fill)
            self._remember(rows)
            out.append(rows)
        for _ in range(n - max(fill, 0)):
            row = self._child()[None, :]
            self._remember(row)
            out.append(row)
        return np.concatenate(out).astype(np.int64)

    # -- learning ----------------------------------------------------------------------------------
    def tell(self, tokens, accuracy, latency_ms, reward) -> None:
        tokens, reward = check_told(self.problem, tokens, accuracy, latency_ms, reward)
        ok = np.isfinite(reward) & np.isfinite(np.asarray(accuracy, dtype=np.float64).reshape(-1))
        if ok.any():
            self.members = np.concatenate([self.members, tokens[ok]])[-self.population:]
            self.rewards = np.concatenate([self.rewards, reward[ok]])[-self.population:]

    # -- state -------------------------------------------------------------------------------------
    def get_state(self) -> State:
        return State(values={"rng": rng_state(self.rng)},
                     arrays={"members": self.members.copy(), "rewards": self.rewards.copy(),
                             "asked": self.asked.copy()})

    def set_state(self, state: State) -> None:
        d = self.problem.dimensions
        try:
            members = np.asarray(state.arrays["members"], dtype=np.int64).reshape(-1, d)
            rewards = np.asarray(state.arrays["rewards"], dtype=np.float64).reshape(-1)
            asked = np.asarray(state.arrays["asked"], dtype=np.int64).reshape(-1, d)
            rng = restore_rng(state.values["rng"])
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"strategy {self.name}: state: {error}") from None
        if len(members) != len(rewards) or len(members) > self.population:
            raise ValueError(f"strategy {self.name}: state: {len(members)} members with {len(rewards)} rewards "
                             f"(population {self.population})")
        self.rng, self.members, self.rewards, self.asked = rng, members.copy(), rewards.copy(), asked.copy()
        self.seen = {row.tobytes() for row in asked}
