"""What several command modules share: reading an architecture or a space from the arguments,
loading the bundle to predict with, printing numbers and warnings."""
from __future__ import annotations

from pynas.arch import Arch
from pynas.presets import resolve

MAX_RESOLUTION = 4096  # also pynas.arch's bound on the header


def human(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(int(value))


def arch_from_args(args) -> Arch:
    if args.arch.startswith("|"):  # a NAS-Bench-201 string: the benchmark's cells are not lowered
        shown = args.arch if len(args.arch) <= 60 else args.arch[:57] + "..."
        raise ValueError(f"ARCH: expected a preset or a pynas architecture string, got the NAS-Bench-201 cell "
                         f"{shown}: this command takes block networks (a cell's latency: `pynas predict CELL "
                         f"--predictor nb201-pixel3`; `pynas describe CELL` and `pynas run CELL` take its network)")
    arch = resolve(args.arch)
    return arch if args.resolution is None else arch.replace(resolution=args.resolution)


def space_from_args(args):
    """The space of --space with the options given (the space's own defaults for the others)."""
    from pynas.space import get_space

    options = {name: getattr(args, name) for name in ("setting", "resolution") if getattr(args, name, None) is not None}
    return get_space(args.space, **options)


def load_for_prediction(name: str | None, backend: str = "native", threads: int = 1, flag: str = "--predictor"):
    """The bundle `name`, or without one this machine's default (`pynas device init`)."""
    from pynas.predictor import bundle, device

    if name is None:
        name = device.default_bundle(backend, threads)
        if name is None:
            raise ValueError(f"{flag}: none given and this machine has no bundle of its own for {backend} at "
                             f"{threads} thread(s): run `pynas device init`, or name one (`pynas predictors` lists them)")
    return bundle.load(name)


def print_warnings(command: str, caught: list) -> None:
    """Warnings raised while predicting, as one line each on stderr."""
    import sys

    seen = set()
    for w in caught:
        if str(w.message) not in seen:  # the same bundle loaded twice warns twice: say it once
            seen.add(str(w.message))
            print(f"pynas {command}: warning: {w.message}", file=sys.stderr)
