"""NetAdapt on the latency model: narrow an architecture one width at a time down to a target latency.

    from pynas.ship import netadapt, tuning
    scorer = tuning.FineTuneScorer(load_dataset("fashion-mnist"), train_images=5000)  # weights carried
    result = netadapt.adapt(arch, predictor, 8.0, scorer, log=print)  # or an evaluator: pynas.search.evaluators
    result.arch, result.predicted_ms, result.accuracy, result.reached, result.steps
    baseline = netadapt.uniform_width_baseline(arch, predictor, 8.0)       # width multiplier at the same target
    figures = netadapt.compare_with_uniform(arch, predictor, 8.0, evaluator)  # both scored by one evaluator

NetAdapt (Yang et al., ECCV 2018) as MobileNetV3 applied it (Howard et al. 2019, sec. 4.2): from a
seed architecture, each step

1. proposes, per block, the smallest shrink that cuts the predicted latency by at least delta
   (MobileNetV3: delta = 1% of the seed's latency; `propose`): for every ir stage a smaller
   expansion ratio, and for every *width group* a narrower output width;
2. scores every proposal with a short evaluation: a `Scorer`. The paper's (and the default of
   `pynas adapt` with a train: evaluator) is `pynas.ship.tuning.FineTuneScorer`: the proposal's
   channels removed from the current trained network by filter magnitude, a short fine-tune, top-1
   on held-out training images; the kept proposal's network carries on. Any
   `pynas.search.evaluators` evaluator also scores (`EvaluatorScorer`: each proposal on its own:
   `train:DATASET:EPOCHS` from scratch, or a user's `python:` function);
3. keeps the proposal with the best ratio of accuracy change to latency cut,
   (acc_new - acc_current) / (ms_current - ms_new), acc_current being the accuracy of the previous
   step's architecture (the seed's own, evaluated first, for the first step);

until the predicted latency is at most the target. A failed evaluation is logged and its proposal
left out of that step (never scored 0); a step where every evaluation failed, or where no shrink
cuts delta any more, ends the run short of the target (`AdaptResult.reached` False, with the reason).

Width groups: an identity shortcut adds a block's input to its output, so both must keep one width.
Inside a stage every repeat after the first has that shortcut (all repeats share `c`); a stage
whose first repeat keeps its input's shape (stride 1, the same channels) and has a shortcut (an
identity or pool skip, or an ``id`` layer, which is then the identity) is tied to the stage (or
stem) before it, and a group of tied stages narrows together, as MobileNetV3 narrows "all blocks
that share the same bottleneck size". A stem tied this way narrows with its group; otherwise the
stem and the head keep their widths (the issue's method adapts the blocks). Stages of 0 repeats
lower to nothing and are left as they are.

Grids: widths are multiples of 8 (`WIDTH_STEP`, at least 8: what `make_divisible` gives mobile
networks), expansion ratios multiples of 0.25 (`EXPANSION_STEP`, at least `MIN_EXPANSION` = 1,
below which an inverted residual would narrow). A proposal is the largest grid value below the
current one whose predicted cut reaches delta (the predictor prices all the grid's values of a step
in one batch). A value is skipped when its architecture does not lower (grouped 1x1 convs that no
longer divide the channels) or when it would tie widths that were apart (a group narrowed to the
width of the next one, whose first repeat would gain a shortcut: NetAdapt narrows, it does not
rewire).

Why weights are carried by default: scored from scratch, a proposal's accuracy carries the
training's seed noise (on a Fashion-MNIST proxy a point or more between seeds), larger than the
differences between proposals that each cut 1-5% of the latency, so the choice is close to random
(the last from-scratch run ended 1.5 points under uniform width scaling). Fine-tuned from one
shared network, proposals differ by what they removed, as in the paper (its sec. 3.2: short-term
fine-tuning, then long-term fine-tuning of the final network).

Measured (bench/ship.py's adapt section, MnasNet-A1 to 0.75 x its latency, weights carried): at
delta 5% on an AMD Zen 3, 0.15 points behind uniform width scaling after both are fine-tuned from one
trained seed (79.42 +- 0.24 against 79.57 +- 0.34 over 3 seeds; with scoring from scratch it had
been 1.5 points behind); at delta 1% on a Xeon with measured rounds (both sides measured <= T with
their slack), 0.35 points behind fine-tuned (79.42 +- 0.37 against 79.77 +- 0.47) and 1.10 ahead
when both architectures are trained from scratch (78.47 +- 0.53 against 77.37 +- 0.68).

Differences from the papers: one expansion ratio holds for a whole stage (the architecture language
has one per stage), so an expansion proposal narrows all the stage's repeats; and the proxy budget
fine-tunes a proposal for tens of steps, not NetAdapt's 40k ImageNet iterations.

Before any work `adapt` checks that the target is reachable: the architecture with every group at
its narrowest and every expansion at its least (`smallest_arch`) predicted above the target is a
ValueError naming --target-ms. A model bundle refuses to price a network far below those its
network term was fitted on; shrinks it refuses are left out of a step (and the log says how many
and why), and when it refuses the narrowest architecture no target is ruled out beforehand: the run
then stops where no shrink it prices cuts delta.

Cost: a step evaluates one proposal per width group and ir stage (13 for MnasNet-A1), and going
from the seed to a target x% lower takes about x / (100 delta_fraction) steps; a larger delta
fraction (fewer, coarser steps) or a cheaper evaluator (fewer images, `width_mult`) bounds it.

Measured rounds (`verify_rounds`, `pynas adapt --verify-rounds`, default 3): the steps follow the
latency model, and the greedy keeps what the model under-prices (on the Xeon the delta-1% run
reached 7.576 ms predicted at T = 7.659 and measured 8.058 ms, 1.052 x T; two more rounds, five
more steps, ended at 6.915 predicted, 7.382 measured). When the bundle
describes the machine in hand (`pynas.ship.plan_check.cannot_measure`), the network reached is
timed as `pynas verify` times it; it is accepted when measured x (1 + slack) <= T (the slack as
`pynas slim`'s: the larger of the passes' spread and the bundle's network repeatability), else the
steps go on down to T x predicted / (measured x (1 + slack)) of the network measured, and the
network reached is measured again, for up to `verify_rounds` measurements (one too unsteady to
judge under T is measured again). Every measurement is in `result.rounds` and the checkpoint; a
run whose last round still measured over T says so (`result.measured_fits` False, the reason in
`stop_reason`). With another machine's bundle nothing is measured (`result.rounds_skipped` says why).

Resuming: at delta 1% a run takes hours (25 steps of ~13 fine-tunes), so `adapt(..., checkpoint=DIR)`
makes the seed's evaluation and every accepted step durable (`pynas.ship.checkpoint`: the steps as
JSON, the scorer's `state()` as a torch.save of tensors, each written to a temporary file, fsynced
and renamed). Called again with DIR, `adapt` refuses another run's checkpoint (seed architecture,
target, delta, latency model or scorer description: a ValueError naming the field), restores the
scorer (`restore`: the seed is not trained again), logs "resumed at step N" and continues as the
uninterrupted run would (every fine-tune is seeded by (seed, architecture)).

For a comparison at one target (the issue's bench): `compare_with_uniform` runs (or takes) NetAdapt's
result, finds the widest uniform width multiplier predicted within the target
(`uniform_width_baseline`), and scores both with the same evaluator in one batch (and times both
with a `measure` callback when given).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from pynas.arch import Arch, Stage
from pynas.ir.lower import lower
from pynas.ship import checkpoint as durable
from pynas.ship.uniform import UNIFORM_STEP, UniformBaseline, predict_all as _predict, uniform_width_baseline  # noqa: F401

WIDTH_STEP = 8
EXPANSION_STEP = 0.25
MIN_EXPANSION = 1.0
DEFAULT_DELTA_FRACTION = 0.01  # MobileNetV3's delta: 1% of the seed's latency
STOPS = ("target", "max-steps", "no-proposal", "all-failed")


# ---------------------------------------------------------------------------------------------
# Width groups and proposals

@dataclass(frozen=True)
class WidthGroup:
    """Stages (indices into `Arch.stages`) whose output widths identity shortcuts tie together;
    `stem` when the stem's width is tied to them too."""
    stages: tuple[int, ...]
    stem: bool
    channels: int


def _tied_to_input(stage: Stage, block_in: int) -> bool:
    """Whether the stage's first repeat adds (or is) its input unchanged: narrowing one side only
    would remove that shortcut (or turn an identity id layer into a 1x1 conv)."""
    keeps_shape = stage.stride == 1 and stage.channels == block_in
    return keeps_shape and (stage.block == "id" or stage.skip in ("identity", "pool"))


def width_groups(arch: Arch) -> list[WidthGroup]:
    """The width groups holding at least one stage, in network order."""
    groups: list[dict] = [{"stages": [], "stem": True, "channels": arch.stem.channels}]
    for index, stage in enumerate(arch.stages):
        if stage.repeats == 0:
            continue
        if _tied_to_input(stage, groups[-1]["channels"]):
            groups[-1]["stages"].append(index)
        else:
            groups.append({"stages": [index], "stem": False, "channels": stage.channels})
    return [WidthGroup(tuple(g["stages"]), g["stem"], g["channels"]) for g in groups if g["stages"]]


@dataclass(frozen=True)
class Proposal:
    """One shrink: `kind` "channels" (the group's output width) or "expansion" (one ir stage's
    ratio), the stages it changes, the value before and after, the new architecture, its
    predicted ms and the cut from the current one."""
    kind: str
    stages: tuple[int, ...]
    before: float
    after: float
    arch: Arch
    predicted_ms: float
    cut_ms: float

    def describe(self) -> str:
        where = ("stage " if len(self.stages) == 1 else "stages ") + ",".join(map(str, self.stages))
        if self.kind == "channels":
            return f"{where} c{int(self.before)}->c{int(self.after)}"
        return f"{where} e{self.before:g}->e{self.after:g}"

    def to_json(self) -> dict:
        return {"change": self.describe(), "kind": self.kind, "stages": list(self.stages), "before": self.before,
                "after": self.after, "arch": str(self.arch), "predicted_ms": self.predicted_ms, "cut_ms": self.cut_ms}

    @classmethod
    def from_json(cls, data: dict) -> "Proposal":
        """The proposal `to_json` wrote (a checkpoint's); a ValueError, KeyError or TypeError if it is not one."""
        from pynas.arch import parse

        if data["kind"] not in ("channels", "expansion"):
            raise ValueError(f"kind: expected channels or expansion, got {data['kind']!r}")
        return cls(data["kind"], tuple(int(i) for i in data["stages"]), _number(data["before"]),
                   _number(data["after"]), parse(data["arch"]), _number(data["predicted_ms"]), _number(data["cut_ms"]))


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _with_channels(arch: Arch, group: WidthGroup, channels: int) -> Arch:
    stages = list(arch.stages)
    for index in group.stages:
        stages[index] = dataclasses.replace(stages[index], channels=channels)
    stem = dataclasses.replace(arch.stem, channels=channels) if group.stem else arch.stem
    return arch.replace(stem=stem, stages=tuple(stages))


def _with_expansion(arch: Arch, index: int, expansion: float) -> Arch:
    stages = list(arch.stages)
    stages[index] = dataclasses.replace(stages[index], expansion=expansion)
    return arch.replace(stages=tuple(stages))


def _channel_values(current: int) -> list[int]:
    """Grid widths below `current`, widest first."""
    top = (current - 1) // WIDTH_STEP * WIDTH_STEP
    return list(range(top, WIDTH_STEP - 1, -WIDTH_STEP))


def _expansion_values(current: float) -> list[float]:
    """Grid expansions below `current`, largest first."""
    steps = math.ceil(round(current / EXPANSION_STEP, 9)) - 1  # the grid value just below current
    return [k * EXPANSION_STEP for k in range(steps, round(MIN_EXPANSION / EXPANSION_STEP) - 1, -1)]


def _ties(arch: Arch) -> list[tuple[tuple[int, ...], bool]]:
    return [(g.stages, g.stem) for g in width_groups(arch)]


def _families(arch: Arch) -> list[tuple[str, tuple[int, ...], float]]:
    """(kind, stages, current value) for every width group's width and every ir stage's expansion."""
    families = [("channels", g.stages, float(g.channels)) for g in width_groups(arch)]
    families += [("expansion", (i,), s.expansion) for i, s in enumerate(arch.stages) if s.block == "ir" and s.repeats]
    return families


def _grid(arch: Arch, kind: str, stages: tuple[int, ...], current: float) -> list[tuple[float, Callable[[], Arch]]]:
    """(grid value, a maker of its architecture) below `current`, largest first."""
    if kind == "channels":
        group = next(g for g in width_groups(arch) if g.stages == stages)
        return [(float(c), lambda c=c: _with_channels(arch, group, c)) for c in _channel_values(int(current))]
    return [(e, lambda e=e: _with_expansion(arch, stages[0], e)) for e in _expansion_values(current)]


def _valid(arch: Arch, make: Callable[[], Arch]) -> Arch | None:
    """The shrunk architecture, or None if it is invalid, does not lower (grouped 1x1 convs must
    divide their channels) or ties widths `arch` keeps apart (a narrower width equal to the next
    group's would add a shortcut: NetAdapt only narrows)."""
    try:
        candidate = make()
        lower(candidate)
    except ValueError:
        return None
    return candidate if _ties(candidate) == _ties(arch) else None


def _predict_each(predictor, archs: Sequence[Arch]) -> tuple[list[float | None], str | None]:
    """Latencies of `archs`, None for one the predictor refuses (a model bundle refuses a network
    far below the range its network term was fitted on, and a batch fails with its worst row: the
    batch is halved until the refused rows stand alone), and the first refusal's reason."""
    try:
        return list(_predict(predictor, archs)), None
    except ValueError as error:
        if len(archs) == 1:
            return [None], " ".join(str(error).split())
    half = len(archs) // 2
    left, left_reason = _predict_each(predictor, archs[:half])
    right, right_reason = _predict_each(predictor, archs[half:])
    return left + right, left_reason or right_reason


def propose(arch: Arch, predictor, delta_ms: float, current_ms: float | None = None,
            log: Callable[[str], None] | None = None) -> list[Proposal]:
    """Per width group and per ir stage, the smallest shrink of `arch` whose predicted latency is at
    least `delta_ms` below the current one (`current_ms`, else predicted now); none for a width or
    expansion no grid value cuts that much. `predictor.predict_batch(archs)` prices them all at once;
    values it refuses to price are left out, and `log` told how many and why."""
    if not (isinstance(delta_ms, (int, float)) and math.isfinite(delta_ms) and delta_ms > 0):
        raise ValueError(f"delta_ms: expected a number > 0, got {delta_ms!r}")
    if current_ms is None:
        current_ms = _predict(predictor, [arch])[0]
    families = []
    for kind, stages, before in _families(arch):
        values = [(value, _valid(arch, make)) for value, make in _grid(arch, kind, stages, before)]
        families.append((kind, stages, before, [(value, a) for value, a in values if a is not None]))
    flat = [candidate for *_, values in families for _, candidate in values]
    latencies, refusal = _predict_each(predictor, flat)
    if refusal is not None and log is not None:
        log(f"{sum(ms is None for ms in latencies)} of {len(flat)} shrinks left out: the latency model cannot "
            f"price them ({refusal})")
    predicted = iter(latencies)
    proposals = []
    for kind, stages, before, values in families:
        priced = [(value, candidate, next(predicted)) for value, candidate in values]
        chosen = next(((v, a, ms) for v, a, ms in priced if ms is not None and current_ms - ms >= delta_ms), None)
        if chosen is not None:
            value, candidate, ms = chosen
            proposals.append(Proposal(kind, stages, before, value, candidate, ms, current_ms - ms))
    return proposals


def smallest_arch(arch: Arch) -> Arch:
    """`arch` with every width group at its narrowest grid width and every ir stage at its least
    expansion (each the least valid value, in network order): the bound below which NetAdapt's
    steps cannot go."""
    for kind, stages, current in _families(arch):
        for _, make in reversed(_grid(arch, kind, stages, current)):
            candidate = _valid(arch, make)
            if candidate is not None:
                arch = candidate
                break
    return arch


# ---------------------------------------------------------------------------------------------
# The loop

@dataclass(frozen=True)
class Scored:
    """A proposal's evaluation: its accuracy and ratio, or the error that left it out."""
    proposal: Proposal
    accuracy: float | None
    ratio: float | None
    error: str | None = None

    def to_json(self) -> dict:
        return {**self.proposal.to_json(), "accuracy": self.accuracy, "ratio": self.ratio, "error": self.error}

    @classmethod
    def from_json(cls, data: dict) -> "Scored":
        if data["error"] is None:
            return cls(Proposal.from_json(data), _number(data["accuracy"]), _number(data["ratio"]))
        if data["accuracy"] is not None or data["ratio"] is not None or not isinstance(data["error"], str):
            raise ValueError("a failed proposal: expected an error and no accuracy or ratio")
        return cls(Proposal.from_json(data), None, None, data["error"])


@dataclass(frozen=True)
class Step:
    """One NetAdapt step: the proposal kept and every proposal scored."""
    index: int
    chosen: Scored
    scored: tuple[Scored, ...]

    def line(self) -> str:
        c = self.chosen
        return (f"step {self.index}: {c.proposal.describe()}  {c.proposal.predicted_ms:.3f} ms "
                f"(-{c.proposal.cut_ms:.3f})  accuracy {c.accuracy:.2f}  ratio {c.ratio:+.3f} %/ms  "
                f"({sum(s.error is None for s in self.scored)} of {len(self.scored)} proposals scored)")

    def to_json(self) -> dict:
        return {"step": self.index, "chosen": self.chosen.to_json(), "proposals": [s.to_json() for s in self.scored]}

    @classmethod
    def from_json(cls, data: dict) -> "Step":
        scored = tuple(Scored.from_json(s) for s in data["proposals"])
        chosen = Scored.from_json(data["chosen"])
        if chosen.error is not None or chosen not in scored:
            raise ValueError("chosen: expected one of the step's scored proposals")
        return cls(int(data["step"]), scored[scored.index(chosen)], scored)


@dataclass
class AdaptResult:
    start: Arch
    start_ms: float
    start_accuracy: float
    target_ms: float
    delta_ms: float
    steps: list[Step] = field(default_factory=list)
    stop: str = ""  # why it stopped: one of STOPS
    stop_reason: str = ""  # the same in words, with the figures
    # Measured rounds: per measurement the step it measured, aim_ms (the predicted latency the steps
    # went down to), predicted, measured, p10/p90, slack, upper_ms, verdict, fits.
    rounds: list[dict] = field(default_factory=list)
    rounds_skipped: str | None = None  # why nothing was measured (another machine's bundle, 0 rounds)

    @property
    def measured_fits(self) -> bool | None:
        """The last measurement fits T with its slack (None: nothing measured)."""
        return self.rounds[-1]["fits"] if self.rounds else None

    @property
    def aim_ms(self) -> float:
        """The predicted latency the steps go down to: T, or lower after a measurement over T."""
        return self.rounds[-1]["next_aim_ms"] if self.rounds and self.rounds[-1].get("next_aim_ms") else self.target_ms

    @property
    def arch(self) -> Arch:
        return self.steps[-1].chosen.proposal.arch if self.steps else self.start

    @property
    def predicted_ms(self) -> float:
        return self.steps[-1].chosen.proposal.predicted_ms if self.steps else self.start_ms

    @property
    def accuracy(self) -> float:
        return self.steps[-1].chosen.accuracy if self.steps else self.start_accuracy

    @property
    def reached(self) -> bool:
        return self.predicted_ms <= self.aim_ms

    @property
    def stalled(self) -> bool:
        """Stopped above the target with nothing left to try (not for want of --max-steps)."""
        return self.stop in ("no-proposal", "all-failed")

    def to_json(self) -> dict:
        return {"start": str(self.start), "start_ms": self.start_ms, "start_accuracy": self.start_accuracy,
                "target_ms": self.target_ms, "delta_ms": self.delta_ms, "reached": self.reached,
                "stop": self.stop, "stop_reason": self.stop_reason, "arch": str(self.arch),
                "predicted_ms": self.predicted_ms, "accuracy": self.accuracy, "steps": [s.to_json() for s in self.steps],
                "rounds": list(self.rounds), "measured_fits": self.measured_fits,
                **({"rounds_skipped": self.rounds_skipped} if self.rounds_skipped else {})}


class EvaluationError(RuntimeError):
    """The seed architecture's evaluation failed: without its accuracy no ratio can be computed."""


def check_target(arch: Arch, predictor, target_ms: float) -> float | None:
    """The predicted ms of `smallest_arch(arch)` (None if the predictor cannot price it: a model
    bundle refuses networks far below those it was fitted on, and then no target is ruled out
    here); a ValueError naming --target-ms if the target is below it (no sequence of NetAdapt's
    shrinks can reach it)."""
    if not (isinstance(target_ms, (int, float)) and not isinstance(target_ms, bool) and math.isfinite(target_ms)
            and target_ms > 0):
        raise ValueError(f"--target-ms: expected a latency in ms > 0, got {target_ms!r}")
    try:
        floor_ms = _predict(predictor, [smallest_arch(arch)])[0]
    except ValueError:
        return None
    if floor_ms > target_ms:
        raise ValueError(f"--target-ms: {target_ms:g} ms is below the smallest architecture NetAdapt reaches from "
                         f"{arch} ({floor_ms:.3f} ms predicted, every width at its narrowest and every expansion at "
                         f"its least)")
    return floor_ms


def _evaluate(evaluator, archs: Sequence[Arch]) -> list:
    from pynas.search.evaluators import Candidate

    # No tokens: an adapted architecture leaves any space's grid; train: and python: evaluators
    # score the architecture itself (as `pynas evaluate` does for one outside the space).
    outcomes = evaluator.submit([Candidate((), a, str(a)) for a in archs]).result()
    if len(outcomes) != len(archs):
        raise ValueError(f"evaluator {evaluator.name}: expected {len(archs)} outcomes, got {len(outcomes)}")
    return outcomes


def _accuracy(outcome) -> tuple[float | None, str | None]:
    if outcome.error is not None:
        return None, outcome.error
    if outcome.accuracy is None or not math.isfinite(outcome.accuracy):
        return None, f"no finite accuracy ({outcome.accuracy!r})"
    return float(outcome.accuracy), None


class Scorer:
    """How `adapt` scores architectures: `start(arch)` the seed's accuracy (it raises if it cannot),
    `score(archs)` one (accuracy, None) or (None, error) per proposal of a step, `accept(index)`
    the proposal a step keeps (a scorer that carries weights makes its network the current one).
    For a checkpoint (`adapt(..., checkpoint=)`): `state()` what the scorer carries after `start` or
    `accept` (a plain dict of tensors, strings and numbers for torch.save, weights_only; {} if
    nothing), `restore(state)` puts it back instead of `start`, and `describe()` says everything its
    numbers depend on (a checkpoint made with another description is refused)."""

    name = "scorer"

    def describe(self) -> str:
        return self.name

    def start(self, arch: Arch) -> float:
        raise NotImplementedError

    def score(self, archs: Sequence[Arch]) -> list[tuple[float | None, str | None]]:
        raise NotImplementedError

    def accept(self, index: int) -> None:
        raise NotImplementedError

    def state(self) -> dict:
        raise NotImplementedError

    def restore(self, state: dict) -> None:
        raise NotImplementedError


class EvaluatorScorer(Scorer):
    """Every architecture scored on its own by a `pynas.search.evaluators` evaluator (train: trains
    each from scratch; python: is the user's function): no state carried between steps."""

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self.name = getattr(evaluator, "name", "evaluator")

    def describe(self) -> str:
        # The fingerprint, not the evaluator's describe(): where evaluations run (workers, executor)
        # changes no number, and a resumed run may run them elsewhere.
        import json

        return f"{self.name} {json.dumps(self.evaluator.fingerprint(), sort_keys=True, default=str)}"

    def start(self, arch: Arch) -> float:
        accuracy, error = _accuracy(_evaluate(self.evaluator, [arch])[0])
        if error is not None:
            raise EvaluationError(f"evaluating the starting architecture {arch} failed: {error}")
        return accuracy

    def score(self, archs: Sequence[Arch]) -> list[tuple[float | None, str | None]]:
        return [_accuracy(outcome) for outcome in _evaluate(self.evaluator, archs)]

    def accept(self, index: int) -> None:
        pass

    def state(self) -> dict:
        return {}  # every architecture scored on its own: nothing carried

    def restore(self, state: dict) -> None:
        pass


def as_scorer(evaluator) -> Scorer:
    """`evaluator` itself if it is a `Scorer`, else an `EvaluatorScorer` of it."""
    return evaluator if isinstance(evaluator, Scorer) else EvaluatorScorer(evaluator)


def adapt(arch: Arch, predictor, target_ms: float, evaluator, *, delta_fraction: float = DEFAULT_DELTA_FRACTION,
          max_steps: int | None = None, log: Callable[[str], None] | None = None,
          checkpoint: str | os.PathLike | None = None, verify_rounds: int = 0, passes: int | None = None,
          verify=None) -> AdaptResult:
    """NetAdapt from `arch` down to `target_ms` (see the module docstring). `predictor` answers
    `predict_batch(archs)` in ms (a model bundle: a table bundle cannot price widths off its
    space's grid); `evaluator` is a `pynas.search.evaluators.Evaluator` that scores architectures
    without tokens (train:, python:), each proposal scored on its own (`EvaluatorScorer`), or a
    `Scorer` such as `pynas.ship.tuning.FineTuneScorer` (weights carried from step to step, the
    paper's way). `log` receives one line per step and per failed evaluation.

    `checkpoint`: a folder (`pynas.ship.checkpoint`) made durable after the seed's evaluation and
    after every accepted step; called again with it, the run checks that the checkpoint is this
    run's (seed architecture, target, delta, latency model, scorer: else a ValueError naming the
    field), restores the scorer's state (the seed is not trained again) and continues at the next
    step, as the uninterrupted run would have (`max_steps` counts every step, those before too).

    `verify_rounds` > 0: the network reached is measured here and the steps go on under a tightened
    aim while it measures over T (the module docstring's "Measured rounds"; `passes` per
    measurement, `verify` stands in for `pynas.verify.measure.verify` in tests)."""
    from pynas.ship import plan_check

    plan_check.check_rounds(verify_rounds)
    say = log or (lambda line: None)
    if not (isinstance(delta_fraction, (int, float)) and math.isfinite(delta_fraction) and 0 < delta_fraction < 1):
        raise ValueError(f"--delta: expected a fraction of the start latency in (0, 1), got {delta_fraction!r}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"--max-steps: expected an integer >= 1, got {max_steps!r}")
    folder = None if checkpoint is None else durable.check_folder(checkpoint)
    check_target(arch, predictor, target_ms)
    start_ms = _predict(predictor, [arch])[0]
    scorer = as_scorer(evaluator)
    identity = None
    if folder is not None:
        if type(scorer).state is Scorer.state or type(scorer).restore is Scorer.restore:
            raise ValueError(f"--checkpoint: expected a scorer with state() and restore(), got {type(scorer).__name__}")
        identity = {"seed_arch": str(arch), "target_ms": float(target_ms), "delta_ms": delta_fraction * start_ms,
                    "predictor": durable.predictor_identity(predictor), "scorer": scorer.describe()}
    saved = None if folder is None else durable.load(folder, identity)
    if saved is None:
        try:
            accuracy = scorer.start(arch)
        except EvaluationError:
            raise
        except (ValueError, RuntimeError) as error:  # a scorer's own failure to score the seed
            raise EvaluationError(f"evaluating the starting architecture {arch} failed: {error}") from error
        result = AdaptResult(arch, start_ms, accuracy, float(target_ms), delta_fraction * start_ms)
    else:
        result = _restored(folder, saved, scorer, arch, start_ms)
    say(f"start: {start_ms:.3f} ms  accuracy {result.start_accuracy:.2f}  target {target_ms:g} ms  "
        f"delta {result.delta_ms:.3f} ms")

    def keep() -> None:
        if folder is not None:
            record = {"start_ms": result.start_ms, "start_accuracy": result.start_accuracy,
                      "steps": [s.to_json() for s in result.steps], "rounds": list(result.rounds)}
            durable.save(folder, identity, record, scorer.state(), len(result.steps))

    if saved is None:
        keep()
    else:
        say(f"resumed at step {len(result.steps) + 1} from checkpoint {folder} ({len(result.steps)} step(s) done: "
            f"{result.predicted_ms:.3f} ms, accuracy {result.accuracy:.2f})")
    unmeasured = "not measured (verify_rounds 0)" if verify_rounds == 0 else plan_check.cannot_measure(predictor)
    if unmeasured is not None:
        result.rounds_skipped = unmeasured
    while True:
        _steps(result, predictor, scorer, max_steps, say, keep)
        # Done: nothing to measure, a stop, the rounds used up, or (resumed) the last round ended them.
        ended = bool(result.rounds) and result.rounds[-1]["next_aim_ms"] is None
        if unmeasured is not None or result.stop != "" or len(result.rounds) >= verify_rounds or ended:
            break
        go_on = _measure_round(result, predictor, verify_rounds, passes, verify, say)
        keep()
        if not go_on:
            break
    if result.stop == "":
        result.stop = "target"
        result.stop_reason = f"reached the target: {result.predicted_ms:.3f} ms <= {result.aim_ms:g} ms" + (
            "" if result.aim_ms == target_ms else f" (the aim under T = {target_ms:g} ms after measuring)")
        if result.measured_fits is False:
            last = result.rounds[-1]
            result.stop_reason += (f"; but measured {last['measured_ms']:.3f} ms ({last['upper_ms']:.3f} with its "
                                   f"slack) over T after {len(result.rounds)} measurement(s)")
    return result


def _steps(result: AdaptResult, predictor, scorer: Scorer, max_steps: int | None, say, keep) -> None:
    """NetAdapt's steps from `result`'s network until its predicted latency is <= `result.aim_ms`
    (or a stop: `result.stop` set)."""
    current, current_ms, accuracy = result.arch, result.predicted_ms, result.accuracy
    while current_ms > result.aim_ms:
        if max_steps is not None and len(result.steps) >= max_steps:
            result.stop, result.stop_reason = "max-steps", f"--max-steps {max_steps} taken"
            break
        proposals = propose(current, predictor, result.delta_ms, current_ms, log=say)
        if not proposals:
            result.stop = "no-proposal"
            result.stop_reason = f"no shrink of any stage cuts {result.delta_ms:.3f} ms (delta) any more"
            break
        scored = []
        scores = scorer.score([p.arch for p in proposals])
        if len(scores) != len(proposals):
            raise ValueError(f"scorer {scorer.name}: expected {len(proposals)} scores, got {len(scores)}")
        for proposal, (new_accuracy, error) in zip(proposals, scores):
            if error is not None:
                say(f"step {len(result.steps) + 1}: {proposal.describe()} left out: evaluation failed: {error}")
                scored.append(Scored(proposal, None, None, error))
            else:
                scored.append(Scored(proposal, new_accuracy, (new_accuracy - accuracy) / proposal.cut_ms))
        ok = [s for s in scored if s.error is None]
        if not ok:
            result.stop = "all-failed"
            result.stop_reason = f"every proposal's evaluation failed at step {len(result.steps) + 1}"
            break
        # The best accuracy per ms given up; ties to the bigger cut, then the earlier block.
        best = max(ok, key=lambda s: (s.ratio, s.proposal.cut_ms, -ok.index(s)))
        scorer.accept(next(i for i, s in enumerate(scored) if s is best))
        result.steps.append(Step(len(result.steps) + 1, best, tuple(scored)))
        keep()
        say(result.steps[-1].line())
        current, current_ms, accuracy = best.proposal.arch, best.proposal.predicted_ms, best.accuracy


def _measure_round(result: AdaptResult, predictor, rounds: int, passes: int | None, verify, say) -> bool:
    """Measure the network reached; record the round. True when the steps should go on (it measured
    over T with its slack and rounds are left: the aim tightened in the round's `next_aim_ms`)."""
    from pynas.ship.plan_check import measure, next_aim
    from pynas.verify.measure import DEFAULT_PASSES

    target = result.target_ms
    row = {"round": len(result.rounds), "step": len(result.steps), "aim_ms": result.aim_ms, "arch": str(result.arch),
           "predicted_ms": result.predicted_ms,
           **measure(result.arch, result.predicted_ms, predictor, target, passes=passes or DEFAULT_PASSES,
                     verify=verify), "next_aim_ms": None}
    result.rounds.append(row)
    say(f"measured after step {row['step']}: {row['measured_ms']:.3f} ms ({row['p10_ms']:.3f}..{row['p90_ms']:.3f}), "
        f"{row['measured_over_target']:.3f} x T, with {100 * row['slack']:.1f}% slack {row['upper_ms']:.3f} ms, "
        f"predicted {result.predicted_ms:.3f}: " + ("fits T" if row["fits"] else f"over T ({row['verdict']})"))
    if row["fits"] or len(result.rounds) >= rounds:
        return False
    aim = next_aim(row, result.predicted_ms, target)
    if aim is None:
        row["next_aim_ms"] = result.aim_ms  # too noisy to trust under T: the same network measured again
        return True
    row["next_aim_ms"] = aim
    say(f"going on down to {row['next_aim_ms']:.3f} ms predicted (T x predicted / measured with its slack)")
    return True


def _restored(folder: Path, saved: tuple[dict, dict | None], scorer: Scorer, arch: Arch,
              start_ms: float) -> AdaptResult:
    """The AdaptResult of a checkpoint's record, its scorer's state put back."""
    record, state = saved
    record_path = folder / durable.RECORD
    try:
        steps = [Step.from_json(step) for step in record["steps"]]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise durable.damaged(record_path, f"steps: {type(error).__name__}: {' '.join(str(error).split())[:200]}") \
            from None
    if [s.index for s in steps] != list(range(1, len(steps) + 1)):
        raise durable.damaged(record_path, f"steps: expected steps 1..{len(steps)}, got {[s.index for s in steps]}")
    if record["start_ms"] != start_ms:  # the model and seed were checked: only a damaged record differs here
        raise durable.damaged(record_path, f"start_ms: expected {start_ms!r} (predicted now), got {record['start_ms']!r}")
    try:
        scorer.restore({} if state is None else state)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        where = record_path if state is None else folder / record["scorer_state"]["file"]
        raise durable.damaged(where, f"the scorer's state: {type(error).__name__}: "
                                     f"{' '.join(str(error).split())[:200]}") from None
    rounds = record.get("rounds", [])  # checkpoints written before measured rounds have none
    if not isinstance(rounds, list) or not all(isinstance(r, dict) and "fits" in r for r in rounds):
        raise durable.damaged(record_path, "rounds: expected a list of measured rounds")
    return AdaptResult(arch, start_ms, float(record["start_accuracy"]), float(record["target_ms"]),
                       float(record["delta_ms"]), steps, rounds=rounds)


# ---------------------------------------------------------------------------------------------
# The baseline: one width multiplier for the whole network

def compare_with_uniform(arch: Arch, predictor, target_ms: float, evaluator, *, adapted: AdaptResult | None = None,
                         measure: Callable[[Arch], float] | None = None, **adapt_options) -> dict:
    """NetAdapt's architecture against the uniform width multiplier at the same target, both scored
    by `evaluator` in one batch (and timed by `measure(arch) -> ms` if given, e.g. a profiling
    backend's steady timing): {"netadapt": {...}, "uniform": {...}, "accuracy_gain": points}.
    `adapted` reuses a finished run; else `adapt(arch, ..., **adapt_options)` runs here."""
    if isinstance(evaluator, Scorer):
        raise ValueError("evaluator: expected a pynas.search.evaluators evaluator that scores each architecture on "
                         "its own, got a Scorer (weights carried: compare its network as bench/ship.py's adapt "
                         "section does)")
    baseline = uniform_width_baseline(arch, predictor, target_ms)
    if adapted is None:
        adapted = adapt(arch, predictor, target_ms, evaluator, **adapt_options)
    if not adapted.reached:
        raise ValueError(f"--target-ms: NetAdapt stopped at {adapted.predicted_ms:.3f} ms above {target_ms:g} ms "
                         f"({adapted.stop_reason}): no architecture at the target to compare")
    rows = {"netadapt": {"arch": adapted.arch, "predicted_ms": adapted.predicted_ms, "steps": len(adapted.steps)},
            "uniform": {"arch": baseline.arch, "predicted_ms": baseline.predicted_ms,
                        "multiplier": baseline.multiplier}}
    outcomes = _evaluate(evaluator, [rows["netadapt"]["arch"], rows["uniform"]["arch"]])
    for row, outcome in zip(rows.values(), outcomes):
        row["accuracy"], row["error"] = _accuracy(outcome)
        if measure is not None:
            row["measured_ms"] = float(measure(row["arch"]))
        row["arch"] = str(row["arch"])
    a, u = rows["netadapt"]["accuracy"], rows["uniform"]["accuracy"]
    return {**rows, "target_ms": target_ms, "accuracy_gain": None if a is None or u is None else a - u}


__all__ = ["AdaptResult", "DEFAULT_DELTA_FRACTION", "EXPANSION_STEP", "EvaluationError", "EvaluatorScorer",
           "MIN_EXPANSION", "Proposal", "STOPS", "Scored", "Scorer", "as_scorer", "Step", "UniformBaseline", "WIDTH_STEP", "WidthGroup", "adapt", "check_target",
           "compare_with_uniform", "propose", "smallest_arch", "uniform_width_baseline", "width_groups"]
