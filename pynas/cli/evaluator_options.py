"""An evaluator's options as flags shared by `pynas search` and `pynas evaluate`:
``--evaluator-option KEY=VALUE`` (repeatable; VALUE read as JSON where it parses: numbers,
true/false) and the shorthands ``--width-mult W`` and ``--proxy-resolution R`` (the train and
supernet evaluators' cheap proxies: widths x W, images at R x R). The evaluator checks the keys
(an unknown one is refused, naming those it takes)."""
from __future__ import annotations

import json

from pynas.cli import flags

FLAGS = ("evaluator_option", "width_mult", "proxy_resolution")


def add_flags(parser) -> None:
    parser.add_argument("--evaluator-option", action="append", metavar="KEY=VALUE",
                        help="an evaluator's option (repeatable), e.g. train_images=10000, threads=1")
    parser.add_argument("--width-mult", type=flags.number(0, 16, low_open=True), metavar="W",
                        help="train/supernet evaluators: train the architecture with widths x W (a cheap proxy)")
    parser.add_argument("--proxy-resolution", type=flags.integer(1, 4096), metavar="R",
                        help="train/supernet evaluators: train and score at R x R images (default: the data's own)")


def key_values(pairs: list[str] | None, flag: str) -> dict:
    """KEY=VALUE pairs; VALUE read as JSON where it parses (numbers, true/false), else text."""
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"{flag}: expected KEY=VALUE, got {pair!r}")
        if key in options:
            raise ValueError(f"{flag}: expected each key once, got {key} twice")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def options_from_args(args) -> dict:
    options = key_values(args.evaluator_option, "--evaluator-option")
    for flag, key in (("width_mult", "width_mult"), ("proxy_resolution", "resolution")):
        value = getattr(args, flag)
        if value is not None:
            if key in options:
                raise ValueError(f"--{flag.replace('_', '-')}: expected it or --evaluator-option {key}=..., got both")
            options[key] = value
    return options
