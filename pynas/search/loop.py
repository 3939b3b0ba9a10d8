"""The search loop: ask the strategy, price with the latency model, evaluate, reward, tell, log.

    from pynas.search import run, resume
    result = run("nb201", "nb201-pixel3", target_ms=5.0, evaluator="nb201:imagenet16", budget=200,
                 out="runs/a", strategy="evolution", seed=0)
    result = resume("runs/a")      # after a kill: continues to exactly the same end

One step: `ask(n)` with n = min(batch size, budget left); the rows, their architecture strings
and predicted latencies are logged as pending (one transaction); rows whose architecture was
evaluated before are answered from that evaluation (no budget spent), the others go to the
evaluator as one batch (a failure is retried once, then logged as failed: its accuracy and reward
are NaN for the strategy, never 0); outcomes are logged (one transaction); rewards computed;
`tell`; the strategy's state logged with the step marked told (one transaction).

Resume. The log holds the state after the last step told; a step asked but not told is asked
again from that state (a strategy is deterministic from its state, so the same rows come back,
which is checked) and its pending rows are evaluated (re-queued), its done rows reused. So a run
killed at any point and resumed ends with exactly the samples of an uninterrupted run, and
nothing is evaluated twice. The budget counts distinct evaluations (`budget`), or the seconds
they cost as the evaluator reports them (`budget_seconds`: the run stops at the first step that
brings their sum to it), or both (whichever is reached first); the run also ends after `max_asks`
rows (a strategy that keeps asking what it has seen). The stop reason names which.

Workers (`execution`, `pynas.search.workers`): a step's evaluations run in parallel on a process
pool or Ray, one step in flight at a time, the outcomes taken in candidate order: the same seed
gives the same search on any executor, and a run may resume on another one (the executor is not
part of the evaluator's fingerprint). Training evaluators default to a pool, the others in-process.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pynas.search.evaluators import Candidate, Outcome, evaluator_from_config, make_evaluator
from pynas.search.log import SearchLog, finite_or_none
from pynas.search.problem import Problem
from pynas.search.reward import DEFAULT as DEFAULT_REWARD, make_reward
from pynas.search.strategies import STRATEGIES, make_strategy
from pynas.search.target import check_target
from pynas.search.workers import Execution, close as close_workers, default_execution, with_workers

STRATEGY_ENDED = "strategy"  # a Run's stop_reason when its strategy ended on its own (darts: its epochs)

DEFAULT_STRATEGY = "evolution"
MAX_ASKS_PER_EVALUATION = 20  # default max_asks = this x budget
MAX_ASKS_SECONDS_ONLY = 1_000_000  # default max_asks of a run budgeted in seconds only (evaluations that cost 0 s)


class StrategyError(RuntimeError):
    """A strategy broke its contract (rows of the wrong shape, or not deterministic on resume)."""


@dataclass
class Counter:
    """Wraps the latency model to count the rows it priced and the time it took (its throughput
    inside the loop, strategies' own pricing included)."""
    predict: object
    rows: int = 0
    seconds: float = 0.0

    def __call__(self, tokens) -> np.ndarray:
        start = time.perf_counter()
        ms = self.predict(tokens)
        self.seconds += time.perf_counter() - start
        self.rows += len(ms)
        return ms


@dataclass
class Run:
    """What `run`/`resume` return: the folder, its log's config, and the figures of this session."""
    folder: Path
    config: dict
    stop_reason: str
    evaluated: int
    asked: int
    overhead_s: float
    latency_rows: int
    latency_seconds: float
    summary: dict = field(default_factory=dict)


def _version() -> str:
    import pynas

    return pynas.__version__


def _space(config: dict):
    from pynas.space import get_space

    return get_space(config["space"]["name"], **config["space"]["options"])


def _latency_model(config: dict, space):
    from pynas.predictor import latency_model

    return latency_model(config["predictor"]["bundle"], space)


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _check_seconds(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
            np.isfinite(value) and value > 0):
        raise ValueError(f"budget_seconds: expected a finite number of seconds > 0, got {value!r}")
    return float(value)


def configure(space, predictor, target_ms: float, evaluator: str, budget: int | None, *,
              strategy: str = DEFAULT_STRATEGY, reward: str = DEFAULT_REWARD, seed: int = 0,
              strategy_options: dict | None = None, batch_size: int | None = None, max_asks: int | None = None,
              fidelity: int | None = None, evaluator_options: dict | None = None,
              check_range: bool = True,
              budget_seconds: float | None = None) -> tuple[dict, object, object, object]:
    """Check every argument before any work; (config, space, latency model, evaluator). `budget`
    (evaluations) or `budget_seconds` (their summed cost) or both; None for the one not used."""
    from pynas.space import SearchSpace, get_space

    budget_seconds = _check_seconds(budget_seconds)
    if budget is None and budget_seconds is None:
        raise ValueError("budget: expected a number of evaluations or budget_seconds (or both), got neither")
    budget = None if budget is None else _check_int("budget", budget, 1)
    seed = _check_int("seed", seed, 0)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if batch_size is not None:
        batch_size = _check_int("batch_size", batch_size, 1)
    if max_asks is None:
        max_asks = MAX_ASKS_PER_EVALUATION * budget if budget is not None else MAX_ASKS_SECONDS_ONLY
    else:
        max_asks = _check_int("max_asks", max_asks, 1)
    reward_fn = make_reward(reward, target_ms)  # checks the name and T > 0
    if isinstance(space, str):
        space = get_space(space)
    elif not isinstance(space, SearchSpace):
        raise ValueError(f"space: expected a space name or a SearchSpace, got {type(space).__name__}")
    model = target_model(predictor, space)
    distribution = check_target(model, space, reward_fn.target_ms) if check_range else None
    judge = make_evaluator(evaluator, space, fidelity=fidelity, options=evaluator_options)
    config = {
        "space": {"name": space.name, "options": space.options()},
        "predictor": {"bundle": model.name if not _is_folder(predictor) else str(Path(predictor).resolve()),
                      "files": model.predictor.manifest.files, "path": model.path},
        "reward": reward_fn.to_json(),
        "strategy": {"name": strategy, "options": dict(strategy_options or {})},
        "evaluator": {"spec": evaluator, "fidelity": getattr(judge, "fidelity", fidelity),
                      "options": dict(evaluator_options or {}), "fingerprint": judge.fingerprint()},
        "budget": budget, "budget_seconds": budget_seconds, "seed": seed, "batch_size": batch_size, "max_asks": max_asks,
        "target_distribution": distribution,
    }
    # The strategy's options are checked now, by building it once (cheap), not after the log exists.
    make_strategy(strategy, _problem(space, model, reward_fn), seed=seed, **config["strategy"]["options"])
    return config, space, model, judge


def _is_folder(predictor) -> bool:
    from pynas.predictor.bundle import is_path

    return isinstance(predictor, (str, Path)) and is_path(predictor)


def target_model(predictor, space):
    """The latency model of `predictor` (None: this machine's own bundle) over `space`."""
    from pynas.predictor import latency_model

    if predictor is None:
        from pynas.predictor.device import default_bundle

        name = default_bundle("native", 1)
        if name is None:
            raise ValueError(f"predictor: none given and this machine has no bundle of its own (`pynas device "
                             f"init`): name a bundle for space {space.name} (`pynas predictors` lists them)")
        predictor = name
    return latency_model(predictor, space)


def _problem(space, model, reward_fn, counter=None) -> Problem:
    return Problem(names=tuple(d.name for d in space.decisions), cardinalities=space.cardinalities,
                   latency=counter if counter is not None else model.predict_batch, reward=reward_fn, space=space)


def run(space, predictor, target_ms: float, evaluator: str, budget: int | None, out, *, progress=None,
        execution: Execution | None = None, **options) -> Run:
    """A new search into folder `out` (see the module docstring; `options` as `configure`;
    `execution` where evaluations run, default `workers.default_execution(evaluator)`)."""
    return start(configure(space, predictor, target_ms, evaluator, budget, **options), out, progress=progress,
                 execution=execution)


def start(configured: tuple, out, *, progress=None, execution: Execution | None = None) -> Run:
    """A new search into folder `out` from what `configure` returned (the CLI prints the target's
    place in the space between the two)."""
    config, space, model, judge = configured
    judge = _on_workers(judge, config, space, execution)  # a Ray address that does not answer fails before the log
    try:
        log = SearchLog.create(Path(out), config, _version())
    except BaseException:
        close_workers(judge)
        raise
    with log:
        return _drive(log, space, model, judge, progress)


def _on_workers(judge, config: dict, space, execution: Execution | None):
    if execution is None:
        execution = default_execution(config["evaluator"]["spec"])
    return with_workers(judge, config["evaluator"], space, execution)


def resume(folder, *, progress=None, execution: Execution | None = None) -> Run:
    """Continue the search in `folder` from its log (nothing lost, nothing evaluated twice), its
    evaluations on `execution` (any executor: it is not part of the run's config)."""
    folder = Path(folder)
    with SearchLog.open(folder, _version()) as log:
        config = log.config
        try:
            space = _space(config)
            model = _latency_model(config, space)
            judge = evaluator_from_config(config["evaluator"], space)
        except KeyError as error:
            raise ValueError(f"{log.path}: config: expected a field {error}") from None
        if model.predictor.manifest.files != config["predictor"]["files"]:
            raise ValueError(f"{log.path}: predictor {config['predictor']['bundle']}: expected the bundle the run "
                             f"started with (files {config['predictor']['files']}), got {model.predictor.manifest.files}")
        if judge.fingerprint() != config["evaluator"]["fingerprint"]:
            raise ValueError(f"{log.path}: evaluator: expected {config['evaluator']['fingerprint']} (the run's), got "
                             f"{judge.fingerprint()}")
        return _drive(log, space, model, _on_workers(judge, config, space, execution), progress)


def _drive(log: SearchLog, space, model, judge, progress) -> Run:
    try:
        return _steps(log, space, model, judge, progress)
    finally:
        close_workers(judge)


def retarget(folder, target_ms: float, bias: float, evaluations: int, *, progress=None,
             execution: Execution | None = None) -> Run:
    """A refinement round (`pynas.search.refine`): the search in `folder` goes on with its reward's
    T moved to `target_ms` for `evaluations` more evaluations (recorded in the log first, so a
    kill during the round resumes the round), from the strategy's state where it stopped."""
    from pynas import __version__

    evaluations = _check_int("evaluations", evaluations, 1)
    with SearchLog.open(Path(folder), __version__) as log:
        log.add_retarget(target_ms, bias, evaluations, MAX_ASKS_PER_EVALUATION * evaluations)
    return resume(folder, progress=progress, execution=execution)


def search_target(log: SearchLog) -> float:
    """The T the reward uses now: the run's, or its last refinement round's."""
    return log.retargets[-1]["target_ms"] if log.retargets else log.config["reward"]["target_ms"]


def _steps(log: SearchLog, space, model, judge, progress) -> Run:
    config = log.config
    reward_fn = make_reward(config["reward"]["name"], search_target(log),
                            alpha=config["reward"]["alpha"], beta=config["reward"]["beta"])
    counter = Counter(model.predict_batch)
    problem = _problem(space, model, reward_fn, counter)
    strategy = make_strategy(config["strategy"]["name"], problem, seed=config["seed"], **config["strategy"]["options"])
    batch = config["batch_size"] or strategy.batch_size
    budget, max_asks = config["budget"], config["max_asks"]
    budget_seconds = config.get("budget_seconds")  # absent in logs written before it existed
    if log.retargets:  # a refinement round: its own count of evaluations replaces the run's budgets
        budget, max_asks = log.retargets[-1]["until_evaluated"], log.retargets[-1]["until_asked"]
        budget_seconds = None

    saved = log.load_state()
    step, overhead = 0, 0.0
    if saved is not None:
        last, state, overhead = saved
        strategy.set_state(state)
        step = last + 1
    cache = {}
    for s in log.samples("WHERE status != 'pending' AND cached = 0"):
        cache.setdefault(s.tokens, s)
    spent, asked = log.evaluated(), log.asked()  # kept in step from here (queries cost ~0.1 ms each)
    spent_seconds = log.evaluated_seconds()
    stop = ""
    resuming = True
    while True:
        # Only the first step after a resume can hold rows asked before the stop: one query, not one per step.
        rows, decoded = (log.step_samples(step) if resuming else []), {}
        resuming = False
        start = time.perf_counter()
        if rows:  # asked before the run was stopped: ask again from the saved state, check it agrees
            tokens = _asked(strategy, len(rows), problem)
            logged = np.array([r.tokens for r in rows], dtype=np.int64)
            if not np.array_equal(tokens, logged):
                raise StrategyError(f"strategy {config['strategy']['name']}: asked other rows at step {step} on "
                                    f"resume than the log holds: the strategy is not deterministic from its state")
        else:
            if budget is not None and spent >= budget:
                stop = "budget"
                break
            if budget_seconds is not None and spent_seconds >= budget_seconds:
                stop = "budget_seconds"
                break
            if asked >= max_asks:
                stop = "max_asks"
                break
            if getattr(strategy, "finished", False):  # a strategy with an end of its own (darts: its epochs)
                stop = STRATEGY_ENDED
                break
            tokens = _asked(strategy, batch if budget is None else min(batch, budget - spent), problem)
            latency = problem.latency(tokens)
            archs = [space.decode(t) for t in tokens]
            rows = log.add_asked(step, tokens, [str(a) for a in archs], latency)
            decoded = {r.tokens: a for r, a in zip(rows, archs)}
            asked += len(rows)
        overhead += time.perf_counter() - start
        done, fresh = _evaluate(log, rows, cache, judge, space, reward_fn, decoded)
        spent += fresh
        spent_seconds += sum(r.seconds for r in done if r.status != "pending" and not r.cached)
        start = time.perf_counter()
        accuracy = np.array([np.nan if r.accuracy is None else r.accuracy for r in done])
        latency = np.array([r.latency_ms for r in done])
        rewards = np.array([np.nan if r.reward is None else r.reward for r in done])
        strategy.tell(tokens, accuracy, latency, rewards)
        log.save_state(step, strategy.get_state(), overhead + time.perf_counter() - start)
        overhead += time.perf_counter() - start
        step += 1
        if progress is not None:
            progress(log, done)
    from pynas.search.report import summarise

    summary = summarise(log)
    return Run(log.path.parent, config, stop, log.evaluated(), log.asked(), overhead, counter.rows, counter.seconds,
               summary)


def _asked(strategy, n: int, problem: Problem) -> np.ndarray:
    tokens = np.asarray(strategy.ask(n))
    if tokens.shape != (n, problem.dimensions) or not np.issubdtype(tokens.dtype, np.integer):
        raise StrategyError(f"strategy {strategy.name}: ask({n}) returned an array of shape {tokens.shape} "
                            f"({tokens.dtype}): expected ({n}, {problem.dimensions}) integers")
    high = np.array(problem.cardinalities)
    if ((tokens < 0) | (tokens >= high)).any():
        raise StrategyError(f"strategy {strategy.name}: ask({n}) returned a token outside its decision's range")
    return tokens.astype(np.int64)


def _evaluate(log: SearchLog, rows: list, cache: dict, judge, space, reward_fn, decoded: dict) -> tuple[list, int]:
    """Evaluate the step's pending rows: repeats from the cache, the rest in one batch, failures once
    more. (The step's rows with their outcomes, the number of evaluations spent.)"""
    pending = [r for r in rows if r.status == "pending"]
    if not pending:
        return rows, 0
    fresh = {}
    for r in pending:
        if r.tokens not in cache:
            arch = decoded[r.tokens] if r.tokens in decoded else space.decode(r.tokens)
            fresh.setdefault(r.tokens, Candidate(r.tokens, arch, r.arch))
    outcomes = _outcomes(judge, list(fresh.values()))
    records, seen, by_id = [], set(), {}
    for r in pending:
        if r.tokens in outcomes:  # evaluated now: the first row of it pays, a repeat in the step is cached
            (outcome, attempts), cached = outcomes[r.tokens], r.tokens in seen
            seen.add(r.tokens)
        else:
            first = cache[r.tokens]
            outcome = (Outcome(first.accuracy, None, 0.0, score=first.score) if first.status == "done"
                       else Outcome(None, first.error, 0.0))
            attempts, cached = 0, True
        reward = None
        if outcome.ok:
            reward = finite_or_none(float(reward_fn(outcome.accuracy, r.latency_ms)))
        record = (r.id, "done" if outcome.ok else "failed", outcome.accuracy, outcome.error, attempts, reward, cached,
                  0.0 if cached else outcome.seconds, outcome.score)
        records.append(record)
        by_id[r.id] = replace(r, status=record[1], accuracy=outcome.accuracy, error=outcome.error, attempts=attempts,
                              reward=reward, cached=cached, seconds=record[7], score=outcome.score)
        if not cached:
            cache.setdefault(r.tokens, by_id[r.id])
    log.record(records)
    return [by_id.get(r.id, r) for r in rows], len(seen)


def _outcomes(judge, candidates: list[Candidate]) -> dict:
    """tokens -> (Outcome, attempts): each candidate evaluated, a failure retried once."""
    if not candidates:
        return {}
    results = {}
    first = _submit(judge, candidates)
    retry = []
    for c, o in zip(candidates, first):
        (results.__setitem__(c.tokens, (o, 1)) if o.ok else retry.append(c))
    if retry:
        cost = {c.tokens: o.seconds for c, o in zip(candidates, first)}
        for c, o in zip(retry, _submit(judge, retry)):
            results[c.tokens] = (replace(o, seconds=o.seconds + cost[c.tokens]), 2)  # both attempts were paid for
    return results


def _submit(judge, candidates: list[Candidate]) -> list[Outcome]:
    """The evaluator's outcomes, one per candidate; an exception fails the whole batch (each row
    with the exception's text), never the search."""
    try:
        outcomes = judge.submit(candidates).result()
    except Exception as error:  # noqa: BLE001  a user's evaluator may raise anything: it is a failure
        text = f"{type(error).__name__}: {' '.join(str(error).split())}"[:500]
        return [Outcome(None, text) for _ in candidates]
    if len(outcomes) != len(candidates) or not all(isinstance(o, Outcome) for o in outcomes):
        return [Outcome(None, f"evaluator {judge.name}: expected {len(candidates)} outcomes, got "
                              f"{len(outcomes) if hasattr(outcomes, '__len__') else outcomes!r}") for _ in candidates]
    return list(outcomes)
