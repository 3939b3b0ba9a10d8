"""`pynas device init`: a latency predictor for the machine in hand, from nothing.

Two ways (`method`):

* "profile" (`init_device`, the default): profiles this machine (`pynas.profiling`: the space's segments, neighbours and whole networks, into
the measurement store; a rerun resumes where an interrupted one stopped), trains a bundle from its
series (`pynas.predictor.train`), saves it under this user's bundles with a name that says which
machine it is (`pynas.predictor.device.bundle_name`), with the measurements it was trained on, and
records it as this machine's default for the backend and thread count, which `pynas predict` then
uses without --predictor. About 15 minutes on one core for the native backend.
* "fewshot" (`init_device_fewshot`): times FEWSHOT_NETWORKS + FEWSHOT_HELD_OUT sampled networks of
  the space here (a minute or two), calibrates every bundle of the space on the search path to the
  first ones (`pynas.predictor.multibase`), and says how well it predicts the held-out ones, timed
  here too: the quick, honest answer where 15 minutes is too long. Saved and made the default the
  same way, named with '-fewshot'; a later "profile" replaces it as the default.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pynas.predictor import device
from pynas.predictor.bundle import user_bundles
from pynas.predictor.predictors import MEASUREMENTS

DEFAULT_PLAN = {"neighbours": 300, "networks": 120}  # as `pynas profile`'s defaults
DEFAULT_RUN = {"repeat": 30}  # as `pynas profile`'s: the run's own repeatability
FEWSHOT_NETWORKS, FEWSHOT_HELD_OUT = 20, 20


@dataclass
class InitResult:
    name: str | None  # the bundle made, None when profiling was cut short (rerun to resume)
    folder: Path | None
    report: dict = field(default_factory=dict)  # the bundle's training report (held-out figures)
    profile_summary: str = ""
    minutes: dict = field(default_factory=dict)  # phase -> minutes


def init_device(*, backend: str = "native", threads: int = 1, db=None, pin: int | None = None, space_name="mnasnet",
                resolution: int = 224, budget_seconds: float = float("inf"), log: Callable[[str], None] = print,
                make_progress=None, should_stop: Callable[[], bool] = lambda: False, run_options: dict | None = None,
                plan_options: dict | None = None) -> InitResult:
    """Profile, train, save and record this machine's bundle (see the module docstring).
    `plan_options` override DEFAULT_PLAN (`pynas.profiling.session.plan`'s arguments: neighbours,
    networks, segments_sample); `run_options` go to `pynas.profiling.session.run`."""
    from pynas.predictor.train import load_dataset, train
    from pynas.predictor.writers import save
    from pynas.profiling.backends import Backend
    from pynas.profiling.session import plan, run, unmeasured
    from pynas.space import get_space
    from pynas.store import Store, export_jsonl, this_device

    space = get_space(space_name, resolution=resolution)
    runner = Backend(backend, threads=threads)
    here = this_device()
    name = device.bundle_name(backend, threads)
    result = InitResult(None, None)
    t0 = time.monotonic()
    work = plan(space, seed=0, **dict(DEFAULT_PLAN, **(plan_options or {})))
    harness = {} if pin is None else {"pin_cpu": pin}
    with Store(db) as store:
        todo = unmeasured(work, runner, store)
        log(f"device init: {here.cpu_model or here.machine} ({device.describe_here(here)}), {backend} "
            f"({runner.version}), {threads} thread(s); {len(todo)} of {len(work.items)} items left to measure "
            f"into {store.path}")
        progress = make_progress(len(todo)) if make_progress else None
        options = dict({"harness": harness, "session": "device-init"}, **DEFAULT_RUN, **(run_options or {}))
        report = run(work, runner, store, budget_seconds=budget_seconds, progress=progress.update if progress else None,
                     should_stop=should_stop, **options)
        if progress:
            progress.close()
        result.profile_summary = report.summary()
        result.minutes["profile"] = (time.monotonic() - t0) / 60
        log(result.profile_summary)
        if report.stopped_by != "done":
            log(f"device init: stopped ({report.stopped_by}) with {report.remaining} items left: run it again to "
                f"resume")
            return result
        t1 = time.monotonic()
        data = load_dataset(store, backend=backend, threads=threads, device_id=here.device_id,
                            backend_version=runner.version)
        with tempfile.TemporaryDirectory() as tmp:
            export = Path(tmp) / MEASUREMENTS
            export_jsonl(store, export, device_id=data.device_id, backend=backend, threads=threads)
            measurements = export.read_bytes()
    trained = train(data, space=space)
    folder = save(user_bundles() / name, trained, data, name=name, space=space, overwrite=True,
                  source=f"pynas device init: {len(data.segments)} segments, {len(data.networks)} networks",
                  extra_files={MEASUREMENTS: measurements})
    device.set_default(name, backend, threads, here.device_id)
    result.name, result.folder, result.report = name, folder, trained.report
    result.minutes["calibrate"] = (time.monotonic() - t1) / 60
    return result


def init_device_fewshot(*, backend: str = "native", threads: int = 1, db=None, pin: int | None = None,
                        space_name="mnasnet", resolution: int = 224, log: Callable[[str], None] = print,
                        make_progress=None, should_stop: Callable[[], bool] = lambda: False,
                        run_options: dict | None = None, networks: int = FEWSHOT_NETWORKS,
                        held_out: int = FEWSHOT_HELD_OUT) -> InitResult:
    """Time `networks` + `held_out` sampled networks here, calibrate the space's bundles to the
    first `networks` of them, report accuracy on the others, save and record (module docstring)."""
    from pynas.predictor import fewshot
    from pynas.predictor.bundle import load
    from pynas.predictor.metrics import accuracy
    from pynas.predictor.train import load_dataset
    from pynas.profiling.backends import Backend
    from pynas.profiling.session import plan, run, unmeasured
    from pynas.space import get_space
    from pynas.store import Store, this_device

    if networks < 2 or held_out < 1:
        raise ValueError(f"networks, held_out: expected >= 2 and >= 1, got {networks} and {held_out}")
    space = get_space(space_name, resolution=resolution)
    runner = Backend(backend, threads=threads)
    here = this_device()
    name = device.bundle_name(backend, threads) + "-fewshot"
    result = InitResult(None, None)
    t0 = time.monotonic()
    work = plan(space, segments_sample=1, networks=networks + held_out, seed=0)  # the stem (reference) + networks
    harness = {} if pin is None else {"pin_cpu": pin}
    with Store(db) as store:
        todo = unmeasured(work, runner, store)
        log(f"device init (few-shot): {here.cpu_model or here.machine} ({device.describe_here(here)}), {backend} "
            f"({runner.version}): {len(todo)} of {networks + held_out} networks left to time into {store.path}")
        progress = make_progress(len(todo)) if make_progress else None
        options = dict({"harness": harness, "session": "device-init-fewshot"}, **(run_options or {}))
        report = run(work, runner, store, progress=progress.update if progress else None, should_stop=should_stop,
                     **options)
        if progress:
            progress.close()
        result.profile_summary = report.summary()
        log(result.profile_summary)
        if report.stopped_by != "done":
            log(f"device init: stopped ({report.stopped_by}): run it again to resume")
            return result
        data = load_dataset(store, backend=backend, threads=threads, device_id=here.device_id,
                            backend_version=runner.version)
    result.minutes["time networks"] = (time.monotonic() - t0) / 60
    t1 = time.monotonic()
    timed = [item for item in work.items if item.is_network and item.key in data.networks]
    if len(timed) < networks + held_out:
        raise ValueError(f"device init: expected {networks + held_out} timed networks, got {len(timed)} "
                         f"({len(report.failed)} failed to time)")
    calibration, checks = timed[:networks], timed[networks:]
    bases = [b for b in fewshot.bases_for([i.arch for i in calibration]) if b.name != name]
    target = fewshot.Target(dict(here.to_dict(), device_id=here.device_id), backend, runner.version, threads)
    folder = fewshot.calibrated_bundle(bases, [i.arch for i in calibration], [data.networks[i.key] for i in calibration],
                                       user_bundles() / name, target, name=name, overwrite=True)
    predicted = load(folder).predict_batch([i.arch for i in checks])
    heldout = accuracy(predicted, [data.networks[i.key] for i in checks])
    device.set_default(name, backend, threads, here.device_id)
    result.name, result.folder = name, folder
    result.report = {"heldout_networks": heldout, "bases": [b.name for b in bases]}
    result.minutes["calibrate"] = (time.monotonic() - t1) / 60
    return result
