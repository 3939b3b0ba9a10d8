"""Typed command-line values: each converter checks a flag's value when the command line is read,
before any work, and says what was expected (argparse turns its message into a one-line error
naming the flag, exit status 2)."""
from __future__ import annotations

import argparse
import math
import os

MAX_THREADS = 256  # beyond any phone or desktop this targets; also pynas.native's bound


def integer(low: int, high: int | None = None):
    """An integer in [low, high] (no upper bound when high is None)."""
    def convert(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"expected an integer {bound}, got {text!r}")
        return value
    convert.__name__ = "integer"
    return convert


def number(low: float, high: float = math.inf, *, low_open: bool = False):
    """A finite number in [low, high] ((low, high] with low_open)."""
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
            left = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"expected a finite number in {left}{low:g}, {high:g}], got {text!r}")
        return value
    convert.__name__ = "number"
    return convert


def _decimal_or_none(text: str) -> int | None:
    try:
        return int(text, 10)
    except ValueError:
        return None


def integer_of(values: tuple[int, ...]):
    """One of `values` (integers)."""
    def convert(text: str) -> int:
        value = _decimal_or_none(text)
        if value not in values:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(map(str, values))}, got {text!r}")
        return value
    convert.__name__ = "integer"
    return convert


def cpu(text: str) -> int:
    """A CPU this process may run on (pinning to another one would fail every item)."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    value = _decimal_or_none(text)
    if value not in allowed:
        raise argparse.ArgumentTypeError(f"expected one of this machine's CPUs {_ranges(allowed)}, got {text!r}")
    return value


def _ranges(values: list[int]) -> str:
    return f"{values[0]}..{values[-1]}" if values == list(range(values[0], values[-1] + 1)) else str(values)


threads = integer(1, MAX_THREADS)
threads.__name__ = "threads"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `pynas profile: error: argument --pin: expected ...`, exit 2
    (argparse prints the whole usage first, which buries the message)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
