"""The NAS-Bench-201 table evaluator (pynas.search.evaluators.table) and the ground truth a search
is scored against (pynas.search.groundtruth), the latter checked against brute force."""
import numpy as np
import pytest

from pynas.search.evaluators.base import Candidate, Outcome
from pynas.search.evaluators.table import NB201Evaluator
from pynas.search.groundtruth import NB201Truth
from pynas.space import get_space
from pynas.space.nb201 import benchmark

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"  # index 1


def candidates(space, tokens):
    return [Candidate(tuple(int(t) for t in row), space.decode(row), str(space.decode(row))) for row in tokens]


@pytest.mark.parametrize("dataset", ("cifar10", "cifar100", "imagenet16"))
@pytest.mark.parametrize("fidelity, column", [(12, "{}_valid_acc_12ep"), (200, "{}_test_acc")])
def test_accuracy_is_the_benchmark_s_by_index(dataset, fidelity, column):
    space = get_space("nb201")
    tokens = space.sample_tokens(300, seed=1)
    outcomes = NB201Evaluator(dataset, fidelity).evaluate(candidates(space, tokens))
    want = benchmark().columns[column.format(dataset)][space.index_of(tokens)]
    assert [o.accuracy for o in outcomes] == want.tolist()
    assert all(o.ok and o.seconds == 0.0 and isinstance(o.accuracy, float) for o in outcomes)


def test_known_values_and_the_proxy_differs_from_the_final_figure():
    space = get_space("nb201")
    one = candidates(space, [space.encode(CELL)])
    assert NB201Evaluator("cifar10").evaluate(one)[0].accuracy == 82.834  # 12-epoch validation: the default
    assert NB201Evaluator("cifar10", fidelity=200).evaluate(one)[0].accuracy == 93.66  # 200-epoch test
    assert NB201Evaluator("imagenet16", 200).evaluate(one)[0].accuracy == 44.0333


def test_bad_candidates_fail_alone_and_nothing_scores_zero():
    space = get_space("nb201")
    good = candidates(space, [space.encode(CELL)])[0]
    bad = [Candidate((0, 0, 0), None, "short"), Candidate((0, 0, 0, 0, 0, 9), None, "out of range")]
    outcomes = NB201Evaluator("cifar100").evaluate([bad[0], good, bad[1]])
    assert [o.ok for o in outcomes] == [False, True, False] and outcomes[1].accuracy == 57.8  # index 1's
    assert outcomes[0].accuracy is None and "tokens: expected 6 values for space 'nb201', got 3" in outcomes[0].error
    assert "token edge2to3: expected 0..4, got 9" in outcomes[2].error
    assert NB201Evaluator("cifar100").evaluate([]) == []
    pending = NB201Evaluator("cifar100").submit([good])
    assert pending.ready() and isinstance(pending.result()[0], Outcome)


def test_fingerprint_describe_and_spec():
    e = NB201Evaluator("imagenet16", 12)
    assert e.fingerprint() == {"evaluator": "nb201", "dataset": "imagenet16", "fidelity": 12,
                               "sha256": benchmark().sha256}
    assert "table lookup" in e.describe() and "12-epoch validation" in e.describe()
    assert NB201Evaluator.from_spec("nb201:cifar100", fidelity=200).fingerprint()["fidelity"] == 200
    with pytest.raises(ValueError, match="evaluator: expected nb201:cifar10 or nb201:cifar100 or nb201:imagenet16, "
                                         "got 'nb201:imagenet'"):
        NB201Evaluator.from_spec("nb201:imagenet")
    with pytest.raises(ValueError, match="got 'cifar10'"):
        NB201Evaluator.from_spec("cifar10")
    with pytest.raises(ValueError, match="dataset: expected one of cifar10, cifar100, imagenet16, got 'svhn'"):
        NB201Evaluator("svhn")
    with pytest.raises(ValueError, match=r"fidelity: expected one of 12, 200 \(epochs\), got 100"):
        NB201Evaluator("cifar10", 100)


# -- ground truth ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def truth():
    return NB201Truth("imagenet16", "pixel3")


def test_best_under_a_target_is_the_brute_force_best(truth):
    data = benchmark()
    acc, lat = data.accuracy("imagenet16", 200), data.latency("pixel3")
    for target in (*truth.quantiles([0.01, 0.25, 0.5, 0.9]), lat.max()):
        under = [i for i in range(len(acc)) if lat[i] <= target]
        best = max(acc[i] for i in under)
        assert truth.best_accuracy_under(target) == best
        i = truth.best_under(target)
        assert lat[i] <= target and acc[i] == best
        proxy = data.accuracy("imagenet16", 12)
        j = truth.best_under(target, by="proxy")
        assert lat[j] <= target and proxy[j] == max(proxy[k] for k in under)
        assert truth.floor_under(target) == acc[j] <= best
        assert truth.regret(target, j) == best - acc[j] >= 0 and truth.regret(target, i) == 0


def test_ties_go_to_the_lower_latency_then_the_lower_index():
    t = NB201Truth("cifar10", "raspi4")
    t.accuracy = np.array([50.0, 70.0, 70.0, 70.0, 60.0])
    t.latency_ms = np.array([1.0, 3.0, 2.0, 2.0, 1.5])
    assert t.best_under(10.0) == 2 and t.best_under(1.9) == 4
    assert t.pareto_front().tolist() == [0, 4, 2]  # 3 equals 2 (one index per point), 1 is slower


def test_pareto_front_is_exactly_the_non_dominated_set(truth):
    acc, lat = truth.accuracy, truth.latency_ms
    front = truth.pareto_front()
    assert np.all(np.diff(lat[front]) > 0) and np.all(np.diff(acc[front]) > 0)  # a staircase
    for i in front:  # nothing beats a front member on both
        beats = (lat <= lat[i]) & (acc >= acc[i]) & ((lat < lat[i]) | (acc > acc[i]))
        assert not beats.any()
    # every architecture is matched or beaten on both by a front member
    covered = np.zeros(len(acc), dtype=bool)
    for i in front:
        covered |= (lat >= lat[i]) & (acc <= acc[i])
    assert covered.all()
    assert truth.best_under(lat.max()) in front and 5 <= len(front) < 200


def test_quantiles_share_and_bad_targets(truth):
    q25, q50 = truth.quantiles([0.25, 0.5])
    assert q25 < q50 and truth.share_under(q50) == pytest.approx(0.5, abs=1e-3)
    assert truth.quantiles(0.5) == np.median(truth.latency_ms)
    with pytest.raises(ValueError, match=r"target_ms: expected at least the fastest architecture's 0.00327686 ms on "
                                         r"pixel3, got 0.001"):
        truth.best_under(0.001)
    with pytest.raises(ValueError, match="by: expected 'accuracy' or 'proxy', got 'valid'"):
        truth.best_under(q50, by="valid")
    with pytest.raises(ValueError, match="device: expected one of pixel3, raspi4, eyeriss, fpga, got 'edgegpu'"):
        NB201Truth("cifar10", "edgegpu")


def test_hypervolume_is_the_area_of_the_union_of_dominated_rectangles():
    from pynas.search.groundtruth import hypervolume

    # Two points (1, 50) and (2, 70), reference (4, 40): [1,2]x[40,50] + [2,4]x[40,70] = 10 + 60.
    assert hypervolume([1, 2], [50, 70], 4, 40) == pytest.approx(70.0)
    assert hypervolume([1, 2, 3], [50, 70, 60], 4, 40) == pytest.approx(70.0)  # a dominated point adds nothing
    assert hypervolume([5, 1], [90, 30], 4, 40) == 0.0  # beyond the reference point on one side
    rng = np.random.default_rng(0)
    lat, acc = rng.uniform(0, 10, 50), rng.uniform(0, 100, 50)
    grid_l, grid_a = np.meshgrid(np.linspace(0, 10, 801)[:-1] + 10 / 1600, np.linspace(0, 100, 801)[:-1] + 100 / 1600)
    covered = ((lat[:, None, None] <= grid_l) & (acc[:, None, None] >= grid_a)).any(axis=0)
    assert hypervolume(lat, acc, 10, 0) == pytest.approx(covered.mean() * 1000, rel=0.02)  # vs a grid count
