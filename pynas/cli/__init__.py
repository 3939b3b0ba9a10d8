"""The `pynas` command line: one module per group of sub-commands, one error handler.

Bad input (an architecture string, a file, a store, a bundle, a flag) ends the command with a
one-line error naming the field and what was expected, exit status 2, before any work is done:
flags are checked as the command line is read (`pynas.cli.flags`), files and bundles when opened,
and every such error is a ValueError (or a missing file, a backend that is not installed) that
`main` turns into that line. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import os
import sys

from pynas.cli import adapt, archs, cellfewshot, device, evaluate, export, flags, predictors, profile, scale, search, slim, store, supernet, verify


def build_parser() -> flags.Parser:
    parser = flags.Parser(prog="pynas", description="Hardware-aware neural architecture search.")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (archs, profile, predictors, cellfewshot, device, store, search, evaluate, supernet, verify, scale, adapt, export, slim):
        module.add_parsers(commands)
    return parser


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())  # a message with newlines stays one line
    if isinstance(error, KeyError) and text.startswith(("'", '"')) and len(error.args) == 1:
        text = str(error.args[0])
    return text or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    from pynas.predictor.hwnasbench import MissingKeyError
    from pynas.profiling.backends import BackendUnavailable

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a bad flag (its one-line error is printed): the status
        return done.code if isinstance(done.code, int) else 2
    command = " ".join(filter(None, [args.command, getattr(args, "db_command", None),
                                     getattr(args, "device_command", None), getattr(args, "supernet_command", None)]))
    try:
        args.run(args)
    except (ValueError, BackendUnavailable, MissingKeyError, FileNotFoundError, IsADirectoryError,
            NotADirectoryError, PermissionError) as error:  # (a search log's LogError is a ValueError)
        print(f"pynas {command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except (profile.NothingMeasured, device.NoBundle, evaluate.EvaluationFailed, export.ExportCheckFailed) as error:
        print(f"pynas {command}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pynas {command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`, which closed early: not an error. Point stdout at devnull
        # so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
