"""`pynas device init | show`: this machine's own latency predictor."""
from __future__ import annotations

import signal

from pynas.cli import flags


class NoBundle(RuntimeError):
    """`pynas device show --require` on a machine without a bundle of its own: exit status 1."""


def cmd_device_init(args) -> None:
    from pynas.predictor.onboard import init_device, init_device_fewshot
    from pynas.profiling.backends import BackendUnavailable, unavailable
    from pynas.ui import Progress

    reason = unavailable(args.backend)
    if reason:
        raise BackendUnavailable(f"--backend {args.backend}: unavailable here: {reason}")
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))  # finish the item, then stop
    try:
        common = dict(backend=args.backend, threads=args.threads, db=args.db, pin=args.pin,
                      make_progress=lambda n: Progress(n, description="profile"), should_stop=lambda: bool(interrupted))
        if args.method == "fewshot":
            result = init_device_fewshot(**common)
        else:
            result = init_device(budget_seconds=60 * args.budget_minutes if args.budget_minutes else float("inf"),
                                 **common)
    finally:
        signal.signal(signal.SIGINT, previous)
    if result.name is None:
        return
    r = result.report.get("heldout_networks")
    figures = (f"held-out networks n={r['n']}: within 10% {r['within10']:.1f}%, RMSPE {r['rmspe']:.2f}%, "
               f"Spearman {r['spearman']:.4f}" if r else "no networks measured")
    if "bases" in result.report:
        figures += f" (calibrated from {', '.join(result.report['bases'])})"
    print(f"bundle {result.name} ({result.folder}): {figures}")
    print("minutes: " + ", ".join(f"{phase} {m:.1f}" for phase, m in result.minutes.items()))
    print(f"this machine's default for {args.backend} at {args.threads} thread(s): `pynas predict ARCH` uses it")


def cmd_device_show(args) -> None:
    from pynas.predictor import device
    from pynas.store import this_device

    here = this_device()
    print(f"this machine: {here.cpu_model or '(no CPU model)'} ({device.describe_here(here)}), device id "
          f"{here.device_id}")
    name = device.default_bundle(args.backend, args.threads, here.device_id)
    stale = _stale(name) if name else []
    print(f"its {args.backend} bundle at {args.threads} thread(s): "
          + (name if name else f"none yet ({device.FIX})")
          + (f" (stale: {'; '.join(stale)}: profile again, `pynas device init`)" if stale else ""))
    if args.require and (not name or stale):
        raise NoBundle(f"this machine has no {'up-to-date ' if name else ''}{args.backend} bundle at {args.threads} "
                       f"thread(s) of its own")


def _stale(name: str) -> list[str]:
    """What no longer matches between this machine's default bundle `name` and the machine as it is
    now (e.g. a native backend whose runs changed since it was profiled); empty if it still does.
    Here, not in pynas.predictor.device: the bundle module imports that one."""
    from pynas.predictor import bundle, device
    from pynas.predictor.manifest import Manifest

    try:
        return device.differences(Manifest.read(bundle.resolve(name)))
    except ValueError as error:  # the folder removed or damaged since `device init` recorded it
        return [f"unreadable ({error})"]


def add_parsers(commands) -> None:
    from pynas.profiling.backends import BACKENDS

    group = commands.add_parser("device", help="this machine's own latency predictor: init, show")
    device_commands = group.add_subparsers(dest="device_command", required=True)
    init = device_commands.add_parser(
        "init", help="profile this machine, calibrate a bundle named after it, make it this machine's default",
        description="Profiles the MnasNet space on this machine (resumable: rerun after an interruption), trains "
                    "and saves a bundle under ~/.local/share/pynas/predictors, and records it as this machine's "
                    "default, which `pynas predict` uses without --predictor.")
    init.add_argument("--method", default="profile", choices=("profile", "fewshot"),
                      help="profile: measure the space's segments and networks (about 15 minutes for native); "
                           "fewshot: time 40 networks, calibrate the space's bundles to 20, check on 20 (minutes)")
    init.add_argument("--backend", default="native", choices=[b for b in BACKENDS if b != "torch_cl"])
    init.add_argument("--threads", type=flags.threads, default=1)
    init.add_argument("--pin", type=flags.cpu, metavar="CPU", help="pin timing to this core")
    init.add_argument("--db", metavar="PATH", help="the store file (default: $PYNAS_DB or the cache path)")
    init.add_argument("--budget-minutes", type=flags.number(0, 1e6), default=0,
                      help="profile: stop after this long; rerun to resume (0: no limit)")
    init.set_defaults(run=cmd_device_init)
    show = device_commands.add_parser("show", help="this machine's fingerprint and its own bundle")
    show.add_argument("--backend", default="native", choices=BACKENDS)
    show.add_argument("--threads", type=flags.threads, default=1)
    show.add_argument("--require", action="store_true", help="exit 1 when this machine has no bundle of its own")
    show.set_defaults(run=cmd_device_show)
