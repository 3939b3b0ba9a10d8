"""`pynas profile`: measure a search space's segments and networks on this device."""
from __future__ import annotations

import math
import signal
import time

from pynas.cli import flags
from pynas.cli.archs import add_space_options
from pynas.cli.common import space_from_args


class NothingMeasured(RuntimeError):
    """A run in which every item failed: exit status 1, never 0."""


def cmd_profile(args) -> None:
    from pynas.profiling.backends import Backend, BackendUnavailable, unavailable
    from pynas.profiling.session import plan, prepare, run, unmeasured
    from pynas.store import Store
    from pynas.ui import Progress

    reason = unavailable(args.backend)  # checked before the (slow) planning
    if reason:
        raise BackendUnavailable(f"--backend {args.backend}: unavailable here: {reason}")
    space = space_from_args(args)
    if not (space.lowerable or space.profiled_whole):  # before the planning, which would lower every network
        raise ValueError(f"--space: expected a space pynas profiles (mnasnet, fbnet, nb201), got {space.name}: its "
                         f"cell networks lower and run natively, but profiling them (op lists, bundles) is not built "
                         f"yet")
    neighbours, networks = _plan_sizes(args, space)
    work = plan(space, neighbours=neighbours, networks=networks, seed=args.seed, limit=args.limit,
                segments_sample=args.segments)
    counts = ", ".join(f"{n} {kind}" for kind, n in work.counts.items())
    of = f" of a plan of {work.of}" if work.of else ""  # --limit: the counts are of the items kept
    print(f"space {work.space} at {work.resolution}: {len(work.items)} items to measure ({counts}){of}")
    # Per kind (defaults: pynas.profiling.steady.SEGMENT_HARNESS / NETWORK_HARNESS); `harness`, for
    # segments, is also what the adaptive rounds time theirs with.
    harness = {"budget_seconds": args.item_budget_seconds, "target_rel_ci": args.target_ci}
    network_harness = {"budget_seconds": args.network_budget_seconds, "target_rel_ci": args.network_target_ci}
    if args.pin is not None:
        harness["pin_cpu"] = network_harness["pin_cpu"] = args.pin
    if args.wall_clock or args.threads > 1:  # other threads' work is not the calling thread's CPU time
        harness["cpu_time"] = network_harness["cpu_time"] = False
    backend = Backend(args.backend, threads=args.threads)
    if args.prepare_only:
        with Store(args.db) as store:
            todo = unmeasured(work, backend, store, args.again, args.session)
        t0 = time.monotonic()
        with Progress(len(todo), description="convert") as bar:
            done, failed = prepare(todo, backend, jobs=args.jobs, progress=bar.update)
        print(f"converted {done} items for {backend.name} in {time.monotonic() - t0:.0f} s with {args.jobs} job(s); "
              f"{len(failed)} failed" + "".join(f"\nFAILED {key}: {error}" for key, error in failed[:10]))
        if failed and not done:
            raise NothingMeasured(f"every one of {len(todo)} items failed to convert")
        return
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))  # finish the item, then stop
    try:
        with Store(args.db) as store:
            print(f"backend {backend.name} ({backend.version}), {backend.threads} thread(s); store {store.path}")
            todo = unmeasured(work, backend, store, args.again, args.session)
            options = dict(harness=harness, network_harness=network_harness, session=args.session,
                           drift_tolerance=args.drift_tolerance, should_stop=lambda: bool(interrupted))
            with Progress(len(todo), description="profile") as bar:
                report = run(work, backend, store, budget_seconds=60 * args.budget_minutes or math.inf,
                             progress=bar.update, again=args.again, repeat=args.repeat, seed=args.seed, **options)
            print(report.summary())
            if report.failed and not report.measured:
                raise NothingMeasured(f"every one of {len(report.failed)} items failed: nothing was measured")
            if args.adaptive and report.stopped_by == "done":
                from pynas.predictor.adaptive import Advisor
                from pynas.profiling.campaign import rounds

                advisor = Advisor(space, backend, store, round_size=args.round_size, seed=args.seed)
                rounds(space, backend, store, advisor, count=args.adaptive, seed=args.seed,
                       make_progress=lambda n: Progress(n, description="adaptive"), **options)
    finally:
        signal.signal(signal.SIGINT, previous)


# --neighbours and --networks when not given: a space of segments measures its segments, 300
# neighbours and 120 networks (the network term's fit and check); a space profiled whole only
# networks, enough to fit a model of whole networks and hold a fifth of them out.
SEGMENT_PLAN = {"neighbours": 300, "networks": 120}
WHOLE_PLAN = {"neighbours": 0, "networks": 800}


def _plan_sizes(args, space) -> tuple[int, int]:
    """(neighbours, networks) of the plan: the flags, else the space's kind's defaults; a space
    profiled whole takes no segments (one-line errors naming the flag)."""
    if space.profiled_whole:
        for flag, value in (("--neighbours", args.neighbours), ("--segments", args.segments)):
            if value:
                raise ValueError(f"{flag}: expected none with --space {space.name}, whose networks are profiled whole "
                                 f"(no segments; --networks N says how many), got {value}")
        sizes = WHOLE_PLAN
    else:
        sizes = SEGMENT_PLAN
    return (sizes["neighbours"] if args.neighbours is None else args.neighbours,
            sizes["networks"] if args.networks is None else args.networks)


def add_parsers(commands) -> None:
    from pynas.profiling.backends import BACKENDS

    profile = commands.add_parser("profile", help="measure a search space's segments and networks on this device")
    add_space_options(profile)
    profile.add_argument("--backend", default="native", choices=BACKENDS, help="default native")
    profile.add_argument("--threads", type=flags.threads, default=1)
    profile.add_argument("--budget-minutes", type=flags.number(0, 1e6), default=0,
                         help="stop after this long (between items); rerun to resume (0: no limit)")
    profile.add_argument("--db", metavar="PATH", help="the store file (default: $PYNAS_DB or the cache path)")
    profile.add_argument("--neighbours", type=flags.integer(0, 100_000),
                         help=f"segments just outside the space (other channels and sizes), for generalisation "
                              f"(default {SEGMENT_PLAN['neighbours']}; none for nb201, profiled whole)")
    profile.add_argument("--networks", type=flags.integer(0, 100_000),
                         help=f"whole networks sampled from the space (default {SEGMENT_PLAN['networks']}; nb201: "
                              f"{WHOLE_PLAN['networks']}, the only items besides the reference's stem)")
    profile.add_argument("--seed", type=flags.integer(0), default=0)
    profile.add_argument("--limit", type=flags.integer(1), help="only the first N items of the (seeded, shuffled) plan")
    profile.add_argument("--pin", type=flags.cpu, metavar="CPU", help="pin timing to this core")
    profile.add_argument("--target-ci", type=flags.number(0, 1, low_open=True), default=0.04,
                         help="stop timing a segment once the 95%% CI of its median ratio to the reference is "
                              "within this (default 4%%)")
    profile.add_argument("--item-budget-seconds", type=flags.number(0, 3600, low_open=True), default=0.15,
                         help="timing budget per segment, its reference's samples included (default 0.15)")
    profile.add_argument("--network-target-ci", type=flags.number(0, 1, low_open=True), default=0.015,
                         help="as --target-ci, for whole networks (default 1.5%%)")
    profile.add_argument("--network-budget-seconds", type=flags.number(0, 3600, low_open=True), default=2.0,
                         help="timing budget per whole network (default 2)")
    profile.add_argument("--drift-tolerance", type=flags.number(0, 1e12, low_open=True), default=0.5,
                         help="time an item again at the end of the run when its reference, timed interleaved "
                              "with it, was more than this much slower than its fast state (an extreme state; "
                              "default 0.5: 1.5 times as slow); every item is timed as a ratio to the reference, so "
                              "milder spells cancel")
    profile.add_argument("--wall-clock", action="store_true",
                         help="time by the wall clock; by default one-thread runs are timed by the profiling "
                              "thread's CPU time, so time other processes take on its core is not counted")
    profile.add_argument("--repeat", type=flags.integer(0, 100_000), default=30, metavar="N",
                         help="at the end, time a seeded sample of N of the run's items again (half networks) "
                              "and report the relative differences: the run's repeatability (default 30; 0: none)")
    profile.add_argument("--session", help="tag stored with every measurement (default: host and time)")
    profile.add_argument("--segments", type=flags.integer(1), metavar="N",
                         help="measure a seeded random N of the space's segments (the stem always), not all: "
                              "a learned predictor prices the rest (for slow backends such as litert)")
    profile.add_argument("--prepare-only", action="store_true",
                         help="only convert (onnxruntime, litert) what the plan will time, into the cache; "
                              "needs no quiet machine and runs --jobs processes; then profile as usual")
    profile.add_argument("--jobs", type=flags.integer(1, 64), default=1, help="processes for --prepare-only (default 1)")
    profile.add_argument("--again", action="store_true",
                         help="measure the plan's items even if the store has them: another pass at another time "
                              "(each key counts with its median; e.g. --segments 1 --networks N --again); with "
                              "--session NAME, a rerun with the same NAME resumes the pass")
    profile.add_argument("--adaptive", type=flags.integer(0, 1000), default=0, metavar="ROUNDS",
                         help="then up to ROUNDS rounds of: train, measure --round-size segments where the "
                              "predictor is least sure; stop once held-out networks meet the targets")
    profile.add_argument("--round-size", type=flags.integer(1, 100_000), default=100,
                         help="segments per adaptive round (default 100)")
    profile.set_defaults(run=cmd_profile)
