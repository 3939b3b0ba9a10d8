"""EfficientNet compound scaling of an architecture, and the largest scaling a latency target allows.

    from pynas.predictor import bundle
    from pynas.ship import scaling

    bigger = scaling.compound_scale("mnasnet-a1", phi=2)          # an Arch: deeper, wider, 296 px
    p = bundle.load("amd-epyc-avx2-native-c5f008")
    fit = scaling.largest_phi("mnasnet-a1", p, target_ms=30)     # Scaled: fit.phi, fit.arch, fit.predicted_ms
    grid = scaling.grid_search("mnasnet-a1", p, target_ms=30)    # grid.best, grid.rows (every triple tried)
    rows = scaling.scaling_table("mnasnet-a1", p, phis=(0, 1, 2, 3))

Compound scaling (Tan & Le 2019, EfficientNet, section 3.3) grows depth by alpha^phi, width by
beta^phi and resolution by gamma^phi with alpha * beta^2 * gamma^2 ~ 2, so that the FLOPs grow by
about 2^phi; EfficientNet's grid search on B0 found alpha = 1.2, beta = 1.1, gamma = 1.15 (their
product is 1.92: `COEFFICIENT_TOLERANCE` lets it pass). The rounding follows EfficientNet's code
(`round_repeats`, `round_filters` in efficientnet_model.py):

* depth: each stage's repeats become ceil(repeats * alpha^phi). A one-repeat stage is two at any
  phi > 0 (the ceil jumps at once), an empty stage (0 repeats, the MnasNet space's dropped layer)
  stays empty, and for phi < 0 the ceil keeps every other stage at >= 1 repeat.
* width: `pynas.arch.scale_width` with multiplier beta^phi: its `make_divisible` is EfficientNet's
  round_filters (the nearest multiple of 8, never below 8, never more than 10% below the exact
  value). The head grows with a multiplier > 1 as EfficientNet's round_filters(1280) does (B7's
  head is 2560) and keeps its width for a multiplier < 1 as MobileNetV2 keeps 1280 (EfficientNet
  has no narrower-than-B0 model to follow). A multiplier of exactly 1 (phi = 0, or beta = 1)
  leaves every width as written: a 20-channel stage is not re-rounded to 24.
* resolution: res * gamma^phi rounded half up. EfficientNet's published B1-B7 resolutions (240,
  260, 300, 380, 456, 528, 600) were picked by hand, not by this formula (224 * 1.15 = 257.6 for
  B1): this module follows the formula.

Kernels, strides, expansion and SE ratios, activations, shortcuts, groups and the header's classes,
input channels and SE style stay. phi may be fractional or negative (shrinking), within
`PHI_RANGE`; a phi whose architecture leaves pynas's size bounds (`pynas.arch.LIMITS`) is refused.

The largest phi under a target: predicted latency grows with phi before rounding, but not
monotonically after it (the ceil on repeats jumps, channels snapping to multiples of 8 change how
they fill SIMD vectors), so `largest_phi` does not bisect: it prices a grid of phi (step
`PHI_STEP`) and takes the largest phi whose prediction fits. It prices the grid from the top down,
a chunk at a time, and stops at the first chunk with a fit: the same answer as pricing all of it.
Predictions come from a latency bundle that prices any pynas network (an XGBoost one): scaled
architectures leave the search space, so a table bundle, which prices only its space, is refused;
a segment the bundle cannot price is reported with the phi that made it. The bundle's network term
was fitted on networks of a known latency range (`fitted_ms`); rows beyond it are marked
`beyond_fitted`: there the prediction extrapolates, and tree models extrapolate flat. MnasNet-A1
on this repository's AMD EPYC (AVX2, one thread; this machine's own bundle, fitted on 3-29 ms
networks; medians of a few runs on shared cores, noisy) came out predicted / measured 0.92 at
phi 0, 0.98 at 1, 0.93 at 2, 1.18 at 3, 0.82 at 5 and 0.40 at 8 (822 ms predicted, 2074 measured):
trust the scan up to a few times the fitted range, and measure what is shipped.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pynas.arch import Arch, round_half_up, scale_width
from pynas.presets import resolve

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # EfficientNet's depth, width and resolution coefficients
FLOPS_FACTOR = 2.0  # alpha * beta^2 * gamma^2: the FLOPs grow by this per unit of phi
COEFFICIENT_TOLERANCE = 0.1  # |alpha * beta^2 * gamma^2 - 2| allowed; EfficientNet's own is 1.92
PHI_RANGE = (-4.0, 8.0)  # phi = 8 is past EfficientNet-B7 (FLOPs ~ 2^6.6 B0's); -4: ~1/16 of the FLOPs
PHI_STEP = 0.05  # the grid largest_phi scans
SCAN_CHUNK = 40  # phis priced at a time by largest_phi's top-down scan
# grid_search's coefficient grid, step 0.05 around EfficientNet's (whose search ranges are unpublished);
# coefficient_grid keeps the 63 triples within the constraint.
GRID_ALPHAS = tuple(round(1.0 + 0.05 * i, 2) for i in range(9))  # 1.0 .. 1.4
GRID_BETAS = tuple(round(1.0 + 0.05 * i, 2) for i in range(7))  # 1.0 .. 1.3
GRID_GAMMAS = GRID_BETAS
_CEIL_SLACK = 1e-9  # products like 5 * 1.2 may come out a hair above an integer in floating point


class BelowReach(ValueError):
    """The latency target is below every architecture the scan reaches; names --target-ms."""

    def __init__(self, target_ms: float, least_ms: float, least_phi: float, where: str):
        super().__init__(f"--target-ms: {target_ms:g} ms is below the smallest architecture compound scaling reaches "
                         f"({least_ms:.4g} ms at phi={least_phi:g}, {where})")
        self.least_ms, self.least_phi = least_ms, least_phi


@dataclass(frozen=True)
class Scaled:
    """One scaled architecture: its coefficients, phi, and what it costs."""
    phi: float
    alpha: float
    beta: float
    gamma: float
    arch: Arch
    predicted_ms: float | None = None
    at_upper_end: bool = False  # largest_phi: the top of the scan still fits (T allows more)

    @property
    def macs(self) -> int:
        return _counts(self.arch)[0]

    @property
    def params(self) -> int:
        return _counts(self.arch)[1]

    def row(self, predictor=None) -> dict:
        """A JSON-ready row (the bench's and `pynas scale --json`'s)."""
        macs, params = _counts(self.arch)
        out = {"phi": self.phi, "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma,
               "flops_factor": self.alpha * self.beta ** 2 * self.gamma ** 2, "arch": str(self.arch),
               "resolution": self.arch.resolution, "repeats": sum(s.repeats for s in self.arch.stages),
               "macs": macs, "params": params, "predicted_ms": self.predicted_ms}
        if predictor is not None and self.predicted_ms is not None:
            out["beyond_fitted"] = beyond_fitted(predictor, self.predicted_ms)
        return out


def _counts(arch: Arch) -> tuple[int, int]:
    from pynas.ir import lower

    graph = lower(arch)
    return graph.macs, graph.params


def _as_arch(arch: Arch | str) -> Arch:
    return arch if isinstance(arch, Arch) else resolve(arch)


def _check_number(value, field: str, low: float, high: float = math.inf, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bounds = f"> {low:g}" if high == math.inf and low_open else f">= {low:g}" if high == math.inf \
            else f"in [{low:g}, {high:g}]"
        raise ValueError(f"{field}: expected a finite number {bounds}, got {value!r}")
    return float(value)


def round_repeats(repeats: int, multiplier: float) -> int:
    """EfficientNet's round_repeats: ceil(repeats * multiplier) (0 stays 0, >= 1 stays >= 1)."""
    return math.ceil(repeats * multiplier - _CEIL_SLACK)


def compound_scale(arch: Arch | str, phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA,
                   divisor: int = 8) -> Arch:
    """`arch` (an Arch, preset or string) with depth alpha^phi, width beta^phi, resolution gamma^phi,
    rounded as EfficientNet (the module docstring); ValueError naming the field on a bad value, or
    on a phi whose architecture leaves pynas's size bounds."""
    arch = _as_arch(arch)
    phi = _check_number(phi, "phi", *PHI_RANGE)
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        _check_number(value, name, 0.0, low_open=True)
    if not (isinstance(divisor, int) and not isinstance(divisor, bool) and divisor >= 1):
        raise ValueError(f"divisor: expected an integer >= 1, got {divisor!r}")
    depth, width, resolution = alpha ** phi, beta ** phi, gamma ** phi
    try:
        scaled = arch if width == 1 else scale_width(arch, width, divisor)
        return scaled.replace(
            resolution=round_half_up(arch.resolution * resolution),
            stages=tuple(dataclasses.replace(s, repeats=round_repeats(s.repeats, depth)) for s in scaled.stages))
    except ValueError as error:  # a bound of pynas.arch (repeats <= 64, resolution <= 4096, ...)
        raise ValueError(f"phi: {phi:g} (depth x{depth:.3g}, width x{width:.3g}, resolution x{resolution:.3g}) "
                         f"scales the architecture out of pynas's bounds: {error}") from None


def check_coefficients(alpha: float, beta: float, gamma: float, tolerance: float = COEFFICIENT_TOLERANCE,
                       prefix: str = "") -> None:
    """EfficientNet's constraint: alpha, beta, gamma >= 1 and alpha * beta^2 * gamma^2 within
    `tolerance` of 2. ValueError naming the field (`prefix` + name: "--" for the command line)."""
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        _check_number(value, prefix + name, 1.0)
    product = alpha * beta ** 2 * gamma ** 2
    if abs(product - FLOPS_FACTOR) > tolerance:
        raise ValueError(f"{prefix}alpha, {prefix}beta, {prefix}gamma: expected alpha * beta^2 * gamma^2 within "
                         f"{tolerance:g} of {FLOPS_FACTOR:g} (FLOPs x2 per unit of phi, EfficientNet's constraint), "
                         f"got {alpha:g} * {beta:g}^2 * {gamma:g}^2 = {product:.4g}")


def check_predictor(predictor) -> None:
    """A bundle that prices any pynas network (kind xgboost); a table or lookup bundle prices only
    its space's architectures, which scaled ones leave. Objects without a manifest (a caller's own
    predictor) are taken as they are."""
    manifest = getattr(predictor, "manifest", None)
    if manifest is not None and manifest.kind != "xgboost":
        space = f"{manifest.space['name']}@{manifest.space['resolution']}" if manifest.space else "its own"
        raise ValueError(f"predictor: expected a model bundle (kind xgboost), which prices any pynas network, got "
                         f"{manifest.kind} bundle {manifest.name}, which prices only {space} architectures: "
                         f"compound scaling leaves the space")


def beyond_fitted(predictor, ms: float) -> bool | None:
    """Whether `ms` lies outside the latencies of the networks the bundle's network term was
    fitted on (None: the predictor does not say)."""
    fitted = getattr(getattr(predictor, "term", None), "fitted_ms", ())
    if not fitted:
        return None
    return not fitted[0] <= ms <= fitted[1]


def predict(predictor, archs: Sequence[Arch], phis: Sequence[float]) -> np.ndarray:
    """ms of each architecture (scaled at `phis`), with the predictor's `predict_batch` if it has
    one, else `predict`. A bundle's refusal (a segment it never measured, a network outside its
    term) comes out as a ValueError naming the phi of the architecture refused."""
    if not archs:
        return np.zeros(0)
    try:
        if hasattr(predictor, "predict_batch"):
            return np.asarray(predictor.predict_batch(list(archs)), dtype=np.float64)
        return np.array([float(predictor.predict(a)) for a in archs])
    except ValueError as error:  # BundleError is one; say which architecture it was about
        name = getattr(predictor, "name", type(predictor).__name__)
        if len(archs) > 1:
            for arch, phi in zip(archs, phis):
                predict(predictor, [arch], [phi])  # raises for the first one refused
            raise ValueError(f"predictor: {name} cannot price the architectures scaled at phi {min(phis):g}.."
                             f"{max(phis):g} together: {error}") from None
        raise ValueError(f"predictor: {name} cannot price the architecture scaled at phi={phis[0]:g} ({archs[0]}): "
                         f"{error}") from None


def _phi_grid(phi_min: float, phi_max: float, step: float) -> list[float]:
    _check_number(phi_min, "phi_min", *PHI_RANGE)
    _check_number(phi_max, "phi_max", phi_min, PHI_RANGE[1])
    _check_number(step, "step", 0.0, low_open=True)
    count = math.floor((phi_max - phi_min) / step + 1e-9)
    return [round(phi_min + i * step, 10) for i in range(count + 1)]


def _reachable(arch: Arch, phis: list[float], alpha: float, beta: float, gamma: float,
               divisor: int) -> list[tuple[float, Arch]]:
    """(phi, scaled arch) for the phis whose architecture stays within pynas's bounds: repeats,
    widths and resolution only grow with phi, so they are a prefix of the grid."""
    out = []
    for phi in phis:
        try:
            out.append((phi, compound_scale(arch, phi, alpha, beta, gamma, divisor)))
        except ValueError:
            if not out:
                raise
            break
    return out


def largest_phi(arch: Arch | str, predictor, target_ms: float, alpha: float = ALPHA, beta: float = BETA,
                gamma: float = GAMMA, phi_min: float = PHI_RANGE[0], phi_max: float = PHI_RANGE[1],
                step: float = PHI_STEP, divisor: int = 8, cache: dict | None = None) -> Scaled:
    """The largest phi on the grid phi_min, phi_min + step, ..., phi_max whose predicted latency
    is <= target_ms (the module docstring says why a grid). ValueError naming --target-ms when no
    phi of the grid fits: the target is below the smallest architecture compound scaling reaches.
    `cache` (arch string -> ms) shares predictions between calls (grid_search passes one)."""
    arch = _as_arch(arch)
    target_ms = _check_number(target_ms, "--target-ms", 0.0, low_open=True)
    check_predictor(predictor)
    cache = {} if cache is None else cache
    reach = _reachable(arch, _phi_grid(phi_min, phi_max, step), alpha, beta, gamma, divisor)
    least = (math.inf, None)
    for end in range(len(reach), 0, -SCAN_CHUNK):  # top down: the first chunk with a fit holds the answer
        chunk = reach[max(0, end - SCAN_CHUNK):end]
        todo: dict[str, tuple[float, Arch]] = {}  # distinct architectures not priced yet, at their least phi
        for phi, scaled in chunk:
            if str(scaled) not in cache:
                todo.setdefault(str(scaled), (phi, scaled))
        ms = predict(predictor, [a for _, a in todo.values()], [phi for phi, _ in todo.values()])
        cache.update(zip(todo, ms.tolist()))
        for phi, scaled in reversed(chunk):
            ms = cache[str(scaled)]
            if ms <= target_ms:
                return Scaled(phi, alpha, beta, gamma, scaled, ms, at_upper_end=end == len(reach) and
                              scaled is chunk[-1][1])
            least = min(least, (ms, phi))
    raise BelowReach(target_ms, *least, f"the least over phi {reach[0][0]:g}..{reach[-1][0]:g} with alpha {alpha:g}, "
                                        f"beta {beta:g}, gamma {gamma:g}; {getattr(predictor, 'name', 'predicted')}")


def coefficient_grid(alphas: Sequence[float] = GRID_ALPHAS, betas: Sequence[float] = GRID_BETAS,
                     gammas: Sequence[float] = GRID_GAMMAS,
                     tolerance: float = COEFFICIENT_TOLERANCE) -> list[tuple[float, float, float]]:
    """The (alpha, beta, gamma) of the grid that satisfy EfficientNet's constraint."""
    return [(a, b, g) for a in alphas for b in betas for g in gammas
            if a >= 1 and b >= 1 and g >= 1 and abs(a * b * b * g * g - FLOPS_FACTOR) <= tolerance]


@dataclass(frozen=True)
class GridResult:
    best: Scaled
    rows: list[dict]  # one per coefficient triple: its largest phi (None: T is below its reach), MACs, ms, score
    chosen_by: str  # "macs" or "evaluator"


def grid_search(arch: Arch | str, predictor, target_ms: float, evaluator: Callable[[Arch], float] | None = None,
                triples: Sequence[tuple[float, float, float]] | None = None, phi_min: float = PHI_RANGE[0],
                phi_max: float = PHI_RANGE[1], step: float = PHI_STEP, divisor: int = 8,
                progress: Callable[[int, str], None] | None = None) -> GridResult:
    """For each (alpha, beta, gamma) of `triples` (default: `coefficient_grid()`), the largest phi
    whose prediction fits target_ms; the chosen one has the most MACs (the FLOPs the budget buys),
    or with an `evaluator` (any callable Arch -> score, higher is better; scaled architectures are
    outside any search space, so a search evaluator needs wrapping) the best score. Ties go to the
    earlier triple. ValueError naming --target-ms when T is below every triple's reach.
    `progress(done, label)` is called after each triple (a progress bar's update)."""
    arch = _as_arch(arch)
    triples = coefficient_grid() if triples is None else list(triples)
    if not triples:
        raise ValueError("triples: expected at least one (alpha, beta, gamma), got none")
    cache: dict[str, float] = {}
    rows, fits, least = [], [], None
    for done, (alpha, beta, gamma) in enumerate(triples, start=1):
        if progress is not None and done > 1:
            progress(done - 1, f"alpha {alpha:g} beta {beta:g} gamma {gamma:g}")
        try:
            fit = largest_phi(arch, predictor, target_ms, alpha, beta, gamma, phi_min, phi_max, step, divisor, cache)
        except BelowReach as error:
            if least is None or error.least_ms < least[0]:
                least = (error.least_ms, error.least_phi, f"alpha {alpha:g}, beta {beta:g}, gamma {gamma:g}")
            rows.append({"alpha": alpha, "beta": beta, "gamma": gamma, "flops_factor": alpha * beta ** 2 * gamma ** 2,
                         "phi": None, "fits": False})
            continue
        row = fit.row(predictor)
        row["fits"] = True
        if evaluator is not None:
            row["score"] = float(evaluator(fit.arch))
        rows.append(row)
        fits.append((fit, row))
    if progress is not None:
        progress(len(triples), "")
    if not fits:
        raise BelowReach(target_ms, least[0], least[1], f"{least[2]}: the least over {len(triples)} coefficient "
                                                        f"triples and phi {phi_min:g}..{phi_max:g}")
    key = (lambda pair: pair[1]["score"]) if evaluator is not None else (lambda pair: pair[1]["macs"])
    best = max(fits, key=key)[0]  # max keeps the first of equals
    return GridResult(best, rows, "evaluator" if evaluator is not None else "macs")


def scaling_table(arch: Arch | str, predictor, phis: Sequence[float] = (0, 1, 2, 3), alpha: float = ALPHA,
                  beta: float = BETA, gamma: float = GAMMA, divisor: int = 8) -> list[dict]:
    """One row per phi (`Scaled.row`): phi, coefficients, arch string, resolution, total repeats,
    MACs, params, predicted ms (None without a predictor) and whether that lies beyond the
    bundle's fitted range. The bench adds the measured latency."""
    scaled = [compound_scale(arch, phi, alpha, beta, gamma, divisor) for phi in phis]
    if predictor is None:
        ms = [None] * len(scaled)
    else:
        check_predictor(predictor)
        ms = predict(predictor, scaled, list(phis)).tolist()
    return [Scaled(float(phi), alpha, beta, gamma, a, m).row(predictor) for phi, a, m in zip(phis, scaled, ms)]
