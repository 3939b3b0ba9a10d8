"""`pynas export ARCH|RUN_DIR --format torch|onnx|tflite -o PATH`: a file a runtime loads, checked.

    pynas export runs/a --format onnx -o a.onnx          # a search's pick, its supernet's weights if any
    pynas export mnasnet-a1 --format torch -o a1.pt      # initialised weights (seeded: --seed)
    pynas export --weights a1.pt --format tflite -o a1.tflite

Prints the file, its size, where its weights come from, the BatchNorm layers folded (onnx, tflite)
and the check of the file on its runtime against PyTorch (tolerance: torch bit-exact, onnx 1e-4,
tflite 1e-3 of the output's scale; `pynas.ship.export` says why), then the command that times it.
Bad input (a format whose runtime is not installed, an existing folder or file as -o, an
architecture, a run folder without best.txt, a --weights file) is a one-line error before any work,
exit 2; a file that fails its check is kept, exit 1.
"""
from __future__ import annotations

from pynas.cli import flags
from pynas.ship.export import FORMATS  # numpy only: torch is imported when a file is written


class ExportCheckFailed(RuntimeError):
    """The exported file does not compute what the PyTorch module does (kept; exit status 1)."""


def cmd_export(args) -> None:
    from pynas.ship.export import export

    done = export(args.arch_or_run, args.format, args.out, weights=args.weights, seed=args.seed, force=args.force)
    print(done.report())
    if not done.check.passed:
        raise ExportCheckFailed(f"check failed: {done.check.describe()} (the file is kept at {done.path})")


def add_parsers(commands) -> None:
    p = commands.add_parser(
        "export", help="write an architecture or a search's pick as a torch, ONNX or TFLite file, checked "
                       "against PyTorch",
        description="Weights: a supernet search's pick gets its sub-network (BatchNorm recalibrated as the search "
                    "did; a proxy supernet's own resolution/classes), --weights FILE a torch export or a supernet "
                    "file, anything else initialised weights (seeded). ONNX and TFLite get BatchNorm folded. The "
                    "file is run on its runtime on 3 seeded inputs against PyTorch: torch must be bit-exact, onnx "
                    "within 1e-4 and tflite 1e-3 of the output's scale (exit 1 past it; the file is kept).")
    p.add_argument("arch_or_run", nargs="?", metavar="ARCH_OR_RUN",
                   help="an architecture string, a preset, or a `pynas search` folder (its best.txt); optional with "
                        "--weights of a torch export")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="torch (torch.save dict), onnx (pip install 'pynas[onnx]'), tflite (pip install "
                        "'pynas[litert]')")
    p.add_argument("-o", "--out", required=True, metavar="PATH", help="the file to write (a new one unless --force)")
    p.add_argument("--weights", metavar="FILE", help="a torch export of this command, or a supernet file "
                                                     "(`pynas supernet train`) to take ARCH's sub-network from")
    p.add_argument("--seed", type=flags.integer(0, 2**32 - 1), default=0,
                   help="the initialised weights' seed (default 0), where there are no trained weights")
    p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    p.set_defaults(run=cmd_export)
