"""Evaluations as tasks on workers: in-process (`serial`), a local process pool (`pool`) or Ray (`ray`).

    execution = Execution("pool", workers=2, threads=1)
    judge = with_workers(make_evaluator(spec, space), {"spec": spec, "fidelity": None}, space, execution)
    outcomes = judge.submit(candidates).result()     # in candidate order, whatever finished first
    judge.close()

One task per candidate. A task carries only JSON-able data: the evaluator's config as the search
log holds it (spec, fidelity, options), the space's name and options, the candidate's tokens and string,
and the driver's working folder (`python:MODULE:FUNCTION` imports from it). A worker rebuilds the
evaluator once per process (cached by that config) and evaluates the one candidate. So the
evaluator must give a candidate the same numbers on any worker, in any order: an evaluation seeds
itself from its candidate, never from a per-process counter. Then serial, pool and Ray runs of one
seed are the same search.

A worker that dies mid-evaluation (killed, out of memory, a crash in native code) loses nothing:
the evaluation runs again elsewhere. Ray retries the task once (`max_retries=1`); the pool is
rebuilt, the evaluations that were running when it broke are run again one at a time (so a second
crash is that evaluation's own), and the rest resubmitted. An evaluation that kills its worker
twice is a failed Outcome saying so, never a hang. An exception or NaN inside an evaluation is
that candidate's failed Outcome, as in-process.

The executor is not part of what decides the numbers (`Evaluator.fingerprint`): a run started on
a pool resumes on Ray.
"""
from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import importlib.util
import json
import multiprocessing
import os
import socket
import sys
import threading
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pynas.search.evaluators import Candidate, Evaluator, Outcome, Pending, make_evaluator

EXECUTORS = ("serial", "pool", "ray")
# Evaluator kinds (the spec's prefix) that cost seconds to minutes each: spread on a pool by default.
TRAINING_KINDS = ("train", "supernet")
CONNECT_TIMEOUT_S = 30.0
CRASHED = "the evaluation killed its worker process twice (a crash, out of memory or a kill): not retried again"


@dataclass(frozen=True)
class Execution:
    """Where a search's evaluations run: `executor` one of EXECUTORS, `workers` parallel evaluations
    (pool processes; Ray CPUs of a local Ray = workers x threads), `threads` torch threads per
    evaluation (Ray: the task's num_cpus), `ray_address` an existing Ray cluster (None: pynas starts
    a local one)."""
    executor: str = "serial"
    workers: int = 1
    threads: int = 1
    ray_address: str | None = None

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor: expected one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        for name in ("workers", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.ray_address is not None:
            if self.executor != "ray":
                raise ValueError(f"ray_address: expected only with executor ray, got executor {self.executor}")
            if not isinstance(self.ray_address, str) or not self.ray_address.strip():
                raise ValueError(f"ray_address: expected HOST:PORT, ray://HOST:PORT or auto, got {self.ray_address!r}")
        if self.executor == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError("executor ray: expected the ray package, not installed (pip install 'pynas[ray]')")


def default_execution(spec: str) -> Execution | None:
    """A pool of this machine's CPUs for training evaluators; None (the evaluator's own submit,
    in-process) for the others, whose evaluations cost microseconds."""
    kind = spec.partition(":")[0] if isinstance(spec, str) else ""
    if kind in TRAINING_KINDS:
        return Execution("pool", workers=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                         else os.cpu_count() or 1)
    return None


def task_config(evaluator_config: dict, space) -> dict:
    """What a worker needs to rebuild the evaluator: JSON only."""
    config = {"evaluator": {"spec": evaluator_config["spec"], "fidelity": evaluator_config.get("fidelity"),
                            "options": dict(evaluator_config.get("options") or {})},
              "space": {"name": space.name, "options": space.options()}, "cwd": str(Path.cwd())}
    json.dumps(config)  # a TypeError here is a bug: a task carries JSON-able data only
    return config


# -- in the worker ----------------------------------------------------------------------------
_JUDGES: dict[str, tuple[object, Evaluator]] = {}
_IN_WORKER = False
_STARTED = None  # the pool's queue of task ids that began (to tell which ones a crash took down)


def _key(config: dict) -> str:
    return json.dumps({k: config[k] for k in ("evaluator", "space")}, sort_keys=True)


def _judge(config: dict) -> tuple[object, Evaluator]:
    key = _key(config)
    if key not in _JUDGES:
        from pynas.space import get_space

        cwd = config.get("cwd")
        if _IN_WORKER and cwd and os.path.isdir(cwd) and os.getcwd() != cwd:
            os.chdir(cwd)  # a worker started elsewhere (Ray, a forkserver): python:MODULE imports from here
        space = get_space(config["space"]["name"], **config["space"]["options"])
        _JUDGES[key] = (space, make_evaluator(config["evaluator"]["spec"], space,
                                              fidelity=config["evaluator"]["fidelity"],
                                              options=config["evaluator"]["options"]))
    return _JUDGES[key]


def _set_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")  # set only where the evaluator uses torch (importing it costs seconds)
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def evaluate_task(config: dict, candidate: dict, threads: int, task_id: int | None = None) -> dict:
    """One evaluation in a worker: the Outcome's fields as a dict (never raises for the candidate's sake)."""
    if _STARTED is not None and task_id is not None:
        _STARTED.put(task_id)
    try:
        space, judge = _judge(config)
        _set_threads(threads)
        tokens = tuple(int(t) for t in candidate["tokens"])
        outcomes = judge.evaluate([Candidate(tokens, _architecture(space, tokens, candidate["text"]), candidate["text"])])
        if len(outcomes) != 1 or not isinstance(outcomes[0], Outcome):
            raise ValueError(f"evaluator {judge.name}: expected 1 outcome, got {len(outcomes)}")
        return dataclasses.asdict(outcomes[0])
    except Exception as error:  # noqa: BLE001  a user's evaluator may raise anything: this candidate failed
        return {"accuracy": None, "error": f"{type(error).__name__}: {' '.join(str(error).split())}"[:500]}


def _architecture(space, tokens: tuple, text: str):
    """The candidate's architecture: decoded from its tokens, or (no tokens: an architecture outside
    the space, which `pynas evaluate` gives a train: or python: evaluator) parsed from its string."""
    if tokens:
        return space.decode(tokens)
    if space.name == "nb201":
        return space.parse(text)
    from pynas.arch import parse

    return parse(text)


def _init_pool_worker(threads: int, started) -> None:
    global _IN_WORKER, _STARTED
    _IN_WORKER, _STARTED = True, started
    os.environ["OMP_NUM_THREADS"] = str(threads)


def _ray_task(config: dict, candidate: dict, threads: int) -> dict:
    global _IN_WORKER
    _IN_WORKER = True
    return evaluate_task(config, candidate, threads)


def _ray_entry(shadowing: tuple[str, ...]):
    """The function Ray runs on a worker. Ray puts the driver's working directory (and script
    directory) at the front of every worker's sys.path; when that directory holds another pynas (a
    checkout: sources without the compiled _core), the worker's `import pynas` would find it instead
    of the pynas the driver runs, and every task would fail to import. The function is made inside
    this one so that Ray's cloudpickle ships it by value: it runs, and drops those entries, before
    the worker imports pynas."""

    def run(config: dict, candidate: dict, threads: int) -> dict:
        import sys

        sys.path[:] = [entry for entry in sys.path if entry not in shadowing]
        from pynas.search.workers import _ray_task

        return _ray_task(config, candidate, threads)

    return run


def _shadowing_entries() -> tuple[str, ...]:
    """The directories Ray adds to its workers' sys.path that hold a pynas other than this one."""
    import pynas

    ours = os.path.realpath(os.path.dirname(pynas.__file__))
    found = []
    for folder in (os.path.abspath(os.curdir), os.path.dirname(os.path.realpath(sys.argv[0] or "."))):
        other = os.path.join(folder, "pynas")
        if os.path.isdir(other) and os.path.realpath(other) != ours:
            found += [folder, os.path.realpath(folder)]
    return tuple(dict.fromkeys(found))


# -- in the driver ----------------------------------------------------------------------------
def _outcome(fields: dict) -> Outcome:
    return Outcome(**fields)


class _Done(Pending):
    pass


class _Streamed(Pending):
    """Outcomes of tasks in flight, collected as they finish, returned in candidate order."""

    def __init__(self, collect, ready):
        self._collect, self._ready, self._outcomes = collect, ready, None

    def ready(self) -> bool:
        return self._outcomes is not None or self._ready()

    def result(self) -> list[Outcome]:
        if self._outcomes is None:
            self._outcomes = self._collect()
        return self._outcomes


class _Serial:
    def __init__(self, execution: Execution):
        self.threads = execution.threads

    def submit(self, config: dict, tasks: list[dict]) -> Pending:
        return _Done([_outcome(evaluate_task(config, t, self.threads)) for t in tasks])

    def close(self) -> None:
        pass


class _Pool:
    """A local process pool; rebuilt when a worker dies (see the module docstring)."""

    def __init__(self, execution: Execution):
        self.workers, self.threads = execution.workers, execution.threads
        # forkserver: workers start from a clean process, not a fork of a driver holding threads (torch, Ray).
        self.context = multiprocessing.get_context("forkserver")
        self.pool, self.started, self.next_id = None, None, 0
        self._start()

    def _start(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.started = self.context.SimpleQueue()  # fresh: a killed worker may have held the old one's lock
        self.pool = futures.ProcessPoolExecutor(self.workers, mp_context=self.context, initializer=_init_pool_worker,
                                                initargs=(self.threads, self.started))

    def _send(self, config: dict, task: dict):
        self.next_id += 1
        return self.pool.submit(evaluate_task, config, task, self.threads, self.next_id), self.next_id

    def _began(self) -> set[int]:
        began = set()
        while not self.started.empty():
            began.add(self.started.get())
        return began

    def submit(self, config: dict, tasks: list[dict]) -> Pending:
        sent = {i: self._send(config, t) for i, t in enumerate(tasks)}
        return _Streamed(lambda: self._collect(config, tasks, sent),
                         lambda: all(f.done() for f, _ in sent.values()))

    def _collect(self, config: dict, tasks: list[dict], sent: dict) -> list[Outcome]:
        results: dict[int, Outcome] = {}
        crashes = dict.fromkeys(range(len(tasks)), 0)
        began: set[int] = set()
        while len(results) < len(tasks):
            broken = False
            index = {f: i for i, (f, _) in sent.items()}
            for future in futures.as_completed(index):
                try:
                    results[index[future]] = _outcome(future.result())
                except BrokenProcessPool:
                    broken = True
                    break
            if not broken:
                break
            for future, i in index.items():  # finished before the pool broke: kept
                if future.done() and not future.cancelled() and future.exception() is None:
                    results[i] = _outcome(future.result())
            began |= self._began()
            suspects = sorted(i for i, (_, task_id) in sent.items() if task_id in began and i not in results)
            self._start()
            for i in suspects:  # one at a time: a crash now is this evaluation's own
                crashes[i] += 1
                while i not in results:
                    future, _ = self._send(config, tasks[i])
                    try:
                        results[i] = _outcome(future.result())
                    except BrokenProcessPool:
                        self._start()
                        crashes[i] += 1
                        if crashes[i] >= 2:
                            results[i] = Outcome(None, CRASHED)
            sent = {i: self._send(config, t) for i, t in enumerate(tasks) if i not in results}
        return [results[i] for i in range(len(tasks))]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class _Ray:
    """Ray tasks (num_cpus = threads per evaluation), retried once when their worker dies."""

    def __init__(self, execution: Execution):
        import ray

        self.ray, self.threads, self.started_ray = ray, execution.threads, False
        if not ray.is_initialized():
            if execution.ray_address is None:
                ray.init(num_cpus=execution.workers * execution.threads, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
            else:
                _connect(ray, execution.ray_address)
            self.started_ray = True
        self.remote = ray.remote(_ray_entry(_shadowing_entries())).options(num_cpus=execution.threads, max_retries=1, retry_exceptions=False)

    def submit(self, config: dict, tasks: list[dict]) -> Pending:
        config_ref = self.ray.put(config)
        refs = [self.remote.remote(config_ref, t, self.threads) for t in tasks]
        return _Streamed(lambda: self._collect(refs), lambda: not self.ray.wait(refs, num_returns=len(refs),
                                                                                timeout=0)[1])

    def _collect(self, refs: list) -> list[Outcome]:
        from ray.exceptions import RayError, WorkerCrashedError

        place = {ref: i for i, ref in enumerate(refs)}
        results: dict[int, Outcome] = {}
        waiting = list(refs)
        while waiting:
            done, waiting = self.ray.wait(waiting, num_returns=1)
            for ref in done:
                try:
                    results[place[ref]] = _outcome(self.ray.get(ref))
                except WorkerCrashedError:
                    results[place[ref]] = Outcome(None, CRASHED)
                except RayError as error:
                    text = " ".join(str(error).split())[:300]
                    results[place[ref]] = Outcome(None, f"ray: {type(error).__name__}: {text}")
        return [results[i] for i in range(len(refs))]

    def close(self) -> None:
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False


def _connect(ray, address: str, timeout: float | None = None) -> None:
    """ray.init(address) that fails in one line within `timeout` (Ray itself waits minutes on an
    address that does not answer)."""
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    host_port = address.removeprefix("ray://")
    host, sep, port = host_port.rpartition(":")
    if address not in ("auto", "local") and sep and port.isdigit():
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
        except OSError as error:
            raise ValueError(f"ray address {address}: expected a Ray cluster there, got no answer "
                             f"({error.strerror or type(error).__name__})") from None
    failure: list[BaseException] = []

    def init():
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except BaseException as error:  # noqa: BLE001  re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=init, daemon=True)  # a hung init is abandoned, not waited for
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ValueError(f"ray address {address}: expected a Ray cluster there, got no answer within {timeout:.0f} s")
    if failure:
        raise ValueError(f"ray address {address}: connecting failed: {type(failure[0]).__name__}: "
                         f"{' '.join(str(failure[0]).split())[:300]}")


BACKENDS = {"serial": _Serial, "pool": _Pool, "ray": _Ray}


class WorkerEvaluator(Evaluator):
    """Any evaluator (by its config) with its evaluations spread over workers; numbers as the
    wrapped one's, so its fingerprint is the wrapped one's."""

    def __init__(self, judge: Evaluator, evaluator_config: dict, space, execution: Execution):
        self.judge, self.execution, self.name = judge, execution, judge.name
        self.config = task_config(evaluator_config, space)
        _JUDGES.setdefault(_key(self.config), (space, judge))  # serial: the driver's own, not rebuilt
        self.backend = BACKENDS[execution.executor](execution)

    def evaluate(self, candidates: Sequence[Candidate]) -> list[Outcome]:
        return self.submit(candidates).result()

    def submit(self, candidates: Sequence[Candidate]) -> Pending:
        tasks = [{"tokens": [int(t) for t in c.tokens], "text": c.text} for c in candidates]
        return self.backend.submit(self.config, tasks)

    def fingerprint(self) -> dict:
        return self.judge.fingerprint()

    def describe(self) -> str:
        e = self.execution
        where = {"serial": "in-process", "pool": f"a pool of {e.workers} processes",
                 "ray": f"Ray at {e.ray_address}" if e.ray_address else f"a local Ray of {e.workers} workers"}
        return f"{self.judge.describe()}; evaluations on {where[e.executor]}, {e.threads} thread(s) each"

    def close(self) -> None:
        self.backend.close()


def with_workers(judge: Evaluator, evaluator_config: dict, space, execution: Execution | None) -> Evaluator:
    """`judge` on the workers of `execution` (None: `judge` itself)."""
    return judge if execution is None else WorkerEvaluator(judge, evaluator_config, space, execution)


def close(judge: Evaluator) -> None:
    if isinstance(judge, WorkerEvaluator):
        judge.close()


__all__ = ["CRASHED", "EXECUTORS", "Execution", "WorkerEvaluator", "close", "default_execution", "evaluate_task",
           "with_workers"]
