"""`python:MODULE:FUNCTION` (or `python:path/to/file.py:FUNCTION`): a user's accuracy function.

The function takes a list of architecture strings (the space's own: timm-style blocks for MnasNet
and FBNet, the benchmark's string for NAS-Bench-201) and returns one accuracy in percent per
string, or None / NaN for an architecture it could not evaluate (a failure with that reason). An
exception fails the whole batch (each architecture is retried once by the loop). MODULE is imported
with the current directory first on the path, as `python -m` would.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import sys
import time
from pathlib import Path
from typing import Sequence

from pynas.search.evaluators.base import Candidate, Evaluator, Outcome

PREFIX = "python:"


def _load(target: str):
    """The function named by `target` ('MODULE:FUNCTION' or 'FILE.py:FUNCTION')."""
    where, sep, function = target.rpartition(":")
    if not sep or not where or not function.isidentifier():
        raise ValueError(f"evaluator: expected python:MODULE:FUNCTION or python:FILE.py:FUNCTION, got {PREFIX}{target}")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"evaluator {PREFIX}{target}: expected a Python file at {where}, got "
                             f"{'a folder' if path.exists() else 'nothing'}")
        spec = importlib.util.spec_from_file_location(f"pynas_user_evaluator_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # noqa: BLE001  the user's file: report what broke, in one line
            raise ValueError(f"evaluator {PREFIX}{target}: importing {where} failed: {type(error).__name__}: "
                             f"{error}") from None
        source = path.read_bytes()
    else:
        sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(where)
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"evaluator {PREFIX}{target}: importing module {where} failed: "
                             f"{type(error).__name__}: {error}") from None
        finally:
            sys.path.pop(0)
        file = getattr(module, "__file__", None)
        source = Path(file).read_bytes() if file else where.encode()
    fn = getattr(module, function, None)
    if not callable(fn):
        raise ValueError(f"evaluator {PREFIX}{target}: expected a function {function} in {where}, got "
                         f"{'nothing' if fn is None else type(fn).__name__}")
    return fn, hashlib.sha256(source).hexdigest()


class PythonEvaluator(Evaluator):
    def __init__(self, target: str):
        self.target = target
        self.name = PREFIX + target
        self.function, self.sha256 = _load(target)

    def evaluate(self, candidates: Sequence[Candidate]) -> list[Outcome]:
        start = time.perf_counter()
        values = self.function([c.text for c in candidates])
        seconds = (time.perf_counter() - start) / max(len(candidates), 1)
        values = list(values)
        if len(values) != len(candidates):
            raise ValueError(f"{self.name}: expected {len(candidates)} accuracies, got {len(values)}")
        return [_outcome(v, seconds) for v in values]

    def fingerprint(self) -> dict:
        # The source file's hash: a resumed run refuses a changed function (its numbers would differ).
        return {"evaluator": "python", "target": self.target, "sha256": self.sha256}


def _outcome(value, seconds: float) -> Outcome:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Outcome(None, "the function returned no accuracy for it", seconds)
    try:
        accuracy = float(value)
    except (TypeError, ValueError):
        return Outcome(None, f"the function returned {value!r}: expected an accuracy in percent", seconds)
    if not (math.isfinite(accuracy) and 0 <= accuracy <= 100):
        return Outcome(None, f"the function returned {accuracy!r}: expected an accuracy in percent in [0, 100]",
                       seconds)
    return Outcome(accuracy, None, seconds)
