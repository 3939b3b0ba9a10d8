"""EfficientNet compound scaling (pynas.ship.scaling): the arithmetic against EfficientNet's own
formula (written out again here, independently), the largest phi under a latency target, the grid
search over (alpha, beta, gamma), and the bench's table."""
import math
import warnings

import pytest

from pynas.arch import parse
from pynas.ir import lower
from pynas.predictor.manifest import BundleError
from pynas.presets import PRESETS, resolve
from pynas.ship import scaling

TINY = "net_res32_cls10:stem_k3_s2_c8:ds_r1_k3_s1_c8:ir_r1_k3_s2_e6_c16:ir_r0_k5_s1_e3_c16:ir_r2_k3_s2_e6_c20:head_c64"


def efficientnet_round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """efficientnet_model.round_filters (Tan & Le's code), min_depth = divisor."""
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return new


def efficientnet_round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


class FakePredictor:
    """Latency as a closed form of the architecture: grows with resolution, repeats and widths."""
    name = "fake"

    def __init__(self, dip=None):
        self.dip = dip  # (low, high) resolutions priced at a tenth: a non-monotone predictor
        self.calls = 0

    def predict(self, arch) -> float:
        self.calls += 1
        work = sum(s.repeats * s.channels ** 2 for s in arch.stages) + arch.stem.channels ** 2 + arch.head.channels
        ms = arch.resolution ** 2 * work / 1e8
        if self.dip and self.dip[0] <= arch.resolution <= self.dip[1]:
            ms /= 10
        return ms


def grid(step=scaling.PHI_STEP):
    return [round(scaling.PHI_RANGE[0] + i * step, 10)
            for i in range(round((scaling.PHI_RANGE[1] - scaling.PHI_RANGE[0]) / step) + 1)]


# -- the arithmetic ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PRESETS)
def test_phi_zero_is_the_identity(name):
    assert scaling.compound_scale(name, 0) == resolve(name)
    odd = parse(TINY)  # a 20-channel stage is not re-rounded to 24 at width 1
    assert scaling.compound_scale(odd, 0) == odd
    assert scaling.compound_scale(odd, 2, beta=1.0).stages[-1].channels == 20


@pytest.mark.parametrize("phi", [1, 2, 3])
def test_mnasnet_a1_against_efficientnets_formula(phi):
    base = resolve("mnasnet-a1")
    scaled = scaling.compound_scale(base, phi)
    depth, width = 1.2 ** phi, 1.1 ** phi
    assert scaled.resolution == int(224 * 1.15 ** phi + 0.5)
    assert scaled.stem.channels == efficientnet_round_filters(base.stem.channels, width)
    assert scaled.head.channels == efficientnet_round_filters(1280, width)  # EfficientNet scales its head
    for old, new in zip(base.stages, scaled.stages):
        assert new.repeats == efficientnet_round_repeats(old.repeats, depth)
        assert new.channels == efficientnet_round_filters(old.channels, width)
        assert new.channels % 8 == 0 and new.channels >= 0.9 * old.channels * width
        # only repeats and channels change
        assert (new.block, new.kernel, new.stride, new.expansion, new.se_ratio, new.act, new.skip) == \
            (old.block, old.kernel, old.stride, old.expansion, old.se_ratio, old.act, old.skip)
    assert parse(str(scaled)) == scaled


def test_the_published_figures_at_phi_1():
    # Written out by hand: 224 * 1.15 = 257.6; 40 * 1.1 = 44 -> 48 (round to the nearest 8, half up);
    # 1280 * 1.1 = 1408; one repeat -> 2 (ceil 1.2), four -> 5 (ceil 4.8).
    scaled = scaling.compound_scale("mnasnet-a1", 1)
    assert scaled.resolution == 258
    assert [s.channels for s in scaled.stages][2] == 48 and scaled.head.channels == 1408
    assert [s.repeats for s in scaled.stages] == [2, 3, 4, 5, 3, 4, 2]


def test_fractional_and_negative_phi_floor_at_one_repeat_and_8_channels():
    tiny = parse(TINY)
    half = scaling.compound_scale(tiny, 0.5)
    assert [s.repeats for s in half.stages] == [2, 2, 0, 3]  # ceil(1 * 1.095) = 2; an empty stage stays empty
    small = scaling.compound_scale(tiny, -4)
    assert [s.repeats for s in small.stages] == [1, 1, 0, 1]  # ceil(2 * 0.48) = 1
    assert small.stem.channels == 8 and min(s.channels for s in small.stages) == 8
    assert small.head.channels == 64  # a width < 1 keeps the head (MobileNetV2's convention)
    assert small.resolution == int(32 * 1.15 ** -4 + 0.5) == 18
    assert parse(str(small)) == small


def test_header_and_block_options_stay():
    v3 = resolve("mobilenetv3-large")
    scaled = scaling.compound_scale(v3.replace(in_channels=1, num_classes=10), 1.5)
    assert (scaled.se_style, scaled.in_channels, scaled.num_classes) == ("v3", 1, 10)
    assert (scaled.stem.act, scaled.head.act, scaled.head.pool_first) == ("hs", "hs", True)
    assert [s.expansion for s in scaled.stages] == [s.expansion for s in v3.stages]  # e2.3, e2.5 kept
    assert parse(str(scaled)) == scaled


def test_scaled_network_builds_in_torch():
    torch = pytest.importorskip("torch")
    from pynas.torch_builder import build_torch

    scaled = scaling.compound_scale(TINY, 1)
    model = build_torch(scaled).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, scaled.resolution, scaled.resolution))
    assert out.shape == (1, 10)


def test_bad_values_name_the_field():
    with pytest.raises(ValueError, match=r"^phi: expected a finite number in \[-4, 8\]"):
        scaling.compound_scale("mnasnet-a1", 9)
    with pytest.raises(ValueError, match="^phi: expected"):
        scaling.compound_scale("mnasnet-a1", float("nan"))
    with pytest.raises(ValueError, match="^alpha: expected a finite number > 0"):
        scaling.compound_scale("mnasnet-a1", 1, alpha=0)
    deep = parse(TINY.replace("ds_r1", "ds_r13"))
    with pytest.raises(ValueError, match=r"^phi: 8 .*out of pynas's bounds: stage.repeats"):
        scaling.compound_scale(deep, 8, alpha=1.4)


def test_coefficients():
    scaling.check_coefficients(1.2, 1.1, 1.15)  # EfficientNet's: 1.92
    with pytest.raises(ValueError, match=r"^--alpha, --beta, --gamma: expected alpha \* beta\^2 \* gamma\^2 within"):
        scaling.check_coefficients(1.5, 1.1, 1.15, prefix="--")
    with pytest.raises(ValueError, match="^beta: expected a finite number >= 1"):
        scaling.check_coefficients(2.2, 0.95, 1.0)
    triples = scaling.coefficient_grid()
    assert (1.2, 1.1, 1.15) in triples and len(triples) > 20
    assert all(abs(a * b * b * g * g - 2) <= scaling.COEFFICIENT_TOLERANCE for a, b, g in triples)


# -- the largest phi under a target ---------------------------------------------------------------

def brute_force(arch, predictor, target_ms):
    """The largest grid phi whose prediction fits, pricing every phi."""
    fits = [phi for phi in grid() if predictor.predict(scaling.compound_scale(arch, phi)) <= target_ms]
    return max(fits)


@pytest.mark.parametrize("target_ms", [0.2, 1.0, 3.0, 30.0])
def test_largest_phi_is_the_largest_grid_phi_that_fits(target_ms):
    fake = FakePredictor()
    fit = scaling.largest_phi(TINY, fake, target_ms)
    assert fit.predicted_ms <= target_ms
    assert fit.phi == brute_force(TINY, fake, target_ms)
    assert fit.arch == scaling.compound_scale(TINY, fit.phi)


def test_largest_phi_grows_with_the_target():
    phis = [scaling.largest_phi("mnasnet-a1", FakePredictor(), t).phi for t in (20, 50, 100, 200, 1000, 5000)]
    assert phis == sorted(phis) and phis[0] < phis[-1]


def test_largest_phi_does_not_stop_at_the_first_miss():
    # A predictor that dips (cheaper) over a band of resolutions: a phi past a miss fits again.
    fake = FakePredictor(dip=(60, 70))
    plain = scaling.largest_phi(TINY, FakePredictor(), 0.5)
    dipped = scaling.largest_phi(TINY, fake, 0.5)
    assert 60 <= dipped.arch.resolution <= 70 and dipped.phi > plain.phi
    assert dipped.phi == brute_force(TINY, fake, 0.5)


def test_target_below_reach_names_the_flag():
    with pytest.raises(ValueError, match=r"^--target-ms: 0.001 ms is below the smallest architecture compound "
                                         r"scaling reaches \(.* ms at phi=-4"):
        scaling.largest_phi(TINY, FakePredictor(), 0.001)
    with pytest.raises(ValueError, match="^--target-ms: expected a finite number > 0"):
        scaling.largest_phi(TINY, FakePredictor(), -1)


def test_a_huge_target_stops_at_the_top_of_the_scan():
    fit = scaling.largest_phi(TINY, FakePredictor(), 1e9)
    assert fit.phi == scaling.PHI_RANGE[1] and fit.at_upper_end
    assert not scaling.largest_phi(TINY, FakePredictor(), 1.0).at_upper_end


def test_a_refusal_of_the_bundle_names_the_phi():
    class Refusing(FakePredictor):
        def predict_batch(self, archs):
            for arch in archs:
                if arch.resolution == 41:  # 32 * 1.15^phi rounds to 41 for phi 1.7 .. 1.85
                    raise BundleError(f"bundle fake cannot price segment stem (res {arch.resolution})")
            return [self.predict(a) for a in archs]

    with pytest.raises(ValueError, match=r"^predictor: fake cannot price the architecture scaled at phi=1\.7 "
                                         r"\(net_res41_.*\): bundle fake cannot price segment stem \(res 41\)$"):
        scaling.largest_phi(TINY, Refusing(), 1e-3)  # below reach: the scan prices every phi


def test_a_table_bundle_is_refused():
    from pynas.predictor import bundle

    with pytest.raises(ValueError, match="^predictor: expected a model bundle .* table bundle pixel3"):
        scaling.largest_phi("mnasnet-a1", bundle.load("pixel3"), 10.0)


# -- the grid search ----------------------------------------------------------------------------------

TRIPLES = [(1.2, 1.1, 1.15), (1.0, 1.1, 1.3), (1.4, 1.0, 1.2), (1.0, 1.3, 1.1)]


def test_grid_search_keeps_the_most_macs():
    result = scaling.grid_search(TINY, FakePredictor(), 2.0, triples=TRIPLES)
    assert result.chosen_by == "macs" and len(result.rows) == len(TRIPLES) and all(r["fits"] for r in result.rows)
    assert result.best.macs == max(r["macs"] for r in result.rows)
    for row in result.rows:
        fit = scaling.largest_phi(TINY, FakePredictor(), 2.0, row["alpha"], row["beta"], row["gamma"])
        assert (row["phi"], row["macs"]) == (fit.phi, lower(fit.arch).macs)
        assert row["predicted_ms"] <= 2.0


def test_grid_search_with_an_evaluator_keeps_the_best_score():
    result = scaling.grid_search(TINY, FakePredictor(), 2.0, triples=TRIPLES, evaluator=lambda a: a.resolution)
    assert result.chosen_by == "evaluator"
    assert result.best.arch.resolution == max(r["resolution"] for r in result.rows)
    assert (result.best.alpha, result.best.beta, result.best.gamma) == (1.0, 1.1, 1.3)  # the resolution-heavy one


def test_grid_search_below_every_reach():
    with pytest.raises(ValueError, match=r"^--target-ms: 1e-05 ms is below .* the least over 4 coefficient triples"):
        scaling.grid_search(TINY, FakePredictor(), 1e-5, triples=TRIPLES)


# -- the bench's table and a real bundle -----------------------------------------------------------

def test_scaling_table_without_predictor():
    rows = scaling.scaling_table(TINY, None, phis=(0, 1))
    assert [r["phi"] for r in rows] == [0, 1] and all(r["predicted_ms"] is None for r in rows)
    assert rows[0]["arch"] == str(parse(TINY))
    graph = lower(parse(rows[1]["arch"]))
    assert (rows[1]["macs"], rows[1]["params"]) == (graph.macs, graph.params)


def test_a_shipped_bundle_prices_scaled_networks():
    from pynas.predictor import bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shipped bundle was made on another machine
        p = bundle.load("x86-avx512-native")
        rows = scaling.scaling_table("mnasnet-a1", p, phis=(0, 1, 2, 3))
        ms = [r["predicted_ms"] for r in rows]
        assert ms == sorted(ms) and ms[0] > 0
        assert [r["resolution"] for r in rows] == [224, 258, 296, 341]
        assert rows[0]["beyond_fitted"] is False and rows[-1]["beyond_fitted"] is True  # fitted on up to ~8 ms
        fit = scaling.largest_phi("mnasnet-a1", p, ms[1])
    assert fit.phi >= 1 and fit.predicted_ms <= ms[1]
