"""The zero-cost evaluator (pynas/search/evaluators/zero_cost.py): specs, the percentile mapping,
failures as outcomes with errors, data given or random, and a search through it."""
import math

import numpy as np
import pytest
import torch

from pynas import search
from pynas.search.evaluators import Candidate, make_evaluator
from pynas.search.evaluators.zero_cost import ZeroCostEvaluator, parse_spec
from pynas.space import get_space
from pynas.train.nb201 import count_params

DISCONNECTED = "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def candidates(space, rows):
    return [Candidate(tuple(int(t) for t in row), space.decode(row), str(space.decode(row))) for row in rows]


@pytest.fixture(scope="module")
def nb201():
    return get_space("nb201")


@pytest.fixture(scope="module")
def by_params(nb201):
    return make_evaluator("zero-cost:params", nb201)


def test_specs(nb201):
    assert parse_spec("zero-cost:jacob_cov") == "jacob_cov"
    for bad in ("zero-cost:zen", "zero-cost", "zero-cost:", "zerocost:snip", 3):
        with pytest.raises(ValueError, match="evaluator: expected zero-cost:PROXY with PROXY one of synflow, naswot"):
            parse_spec(bad)
    with pytest.raises(ValueError, match="evaluator: expected zero-cost:PROXY"):
        make_evaluator("zero-cost:zen", nb201)
    with pytest.raises(ValueError, match="fidelity: expected none with a zero-cost: evaluator"):
        make_evaluator("zero-cost:params", nb201, fidelity=12)
    with pytest.raises(ValueError, match="batch: expected an integer >= 2, got 1"):
        ZeroCostEvaluator("params", nb201, batch=1)
    with pytest.raises(ValueError, match="space: expected nb201, mnasnet or fbnet"):
        ZeroCostEvaluator("params", object())


def test_percentile_of_the_log_score_over_32_random_architectures(nb201, by_params):
    logs = np.log([count_params(c) for c in nb201.sample(32, seed=0)])
    assert by_params.mu == pytest.approx(logs.mean()) and by_params.sd == pytest.approx(logs.std(ddof=1))
    assert by_params.percentile(by_params.mu) == 50.0
    assert by_params.percentile(by_params.mu + by_params.sd) == pytest.approx(84.1345, abs=1e-4)
    rows = nb201.sample_tokens(6, seed=7)
    outcomes = by_params.evaluate(candidates(nb201, rows))
    for row, o in zip(rows, outcomes):
        s = math.log(count_params(nb201.decode(row)))
        assert o.ok and o.score == pytest.approx(s)
        assert o.accuracy == pytest.approx(50 * (1 + math.erf((s - by_params.mu) / (by_params.sd * math.sqrt(2)))))
    order = np.argsort([o.score for o in outcomes])
    assert np.all(np.diff([outcomes[i].accuracy for i in order]) >= 0)  # the ranking is kept
    assert by_params.fingerprint() == {"evaluator": "zero-cost", "proxy": "params", "batch": 64, "seed": 0,
                                       "data": "random", "calibration": 32}


def test_non_finite_scores_are_errors_never_accuracies(nb201, by_params):
    one = candidates(nb201, [nb201.encode(DISCONNECTED)])
    by_params.function, saved = (lambda model, x, y: float("nan")), by_params.function
    try:
        (o,) = by_params.evaluate(one)
    finally:
        by_params.function = saved
    assert o.accuracy is None and o.score is None and "not finite" in o.error
    by_params.function = lambda model, x, y: 0.0  # a log-scale proxy's 0 (synflow's of a disconnected cell): no log
    try:
        (o,) = by_params.evaluate(one)
    finally:
        by_params.function = saved
    assert not o.ok and "a score <= 0" in o.error
    (bad,) = by_params.evaluate([Candidate((0, 0, 9, 0, 0, 0), None, "x")])
    assert not bad.ok and "expected 0..4, got 9" in bad.error


def test_deterministic_and_data_given(nb201):
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.arange(6) % 10
    one = candidates(nb201, nb201.sample_tokens(2, seed=2))
    # flops: a forward of the data (the proxies' own determinism: tests/test_train_proxies.py)
    a = ZeroCostEvaluator("flops", nb201, data=(x, y), calibration=8)
    b = ZeroCostEvaluator("flops", nb201, data=(x.clone(), y.clone()), calibration=8)
    assert [o.score for o in a.evaluate(one)] == [o.score for o in b.evaluate(one)]
    assert a.fingerprint()["data"].startswith("sha256:") and a.fingerprint() == b.fingerprint() and a.batch == 6
    with pytest.raises(ValueError, match=r"data: x: expected a float tensor N x 3 x 32 x 32 \(N >= 2\), got \(6, 3, 28, 28\)"):
        ZeroCostEvaluator("naswot", nb201, data=(torch.zeros(6, 3, 28, 28), y))
    with pytest.raises(ValueError, match="data: y: expected 6 integer labels in 0..9"):
        ZeroCostEvaluator("naswot", nb201, data=(x, y + 10))


def test_mnasnet_space_through_the_torch_builder():
    space = get_space("mnasnet", resolution=32, num_classes=10)
    e = ZeroCostEvaluator("params", space, batch=2, calibration=8)
    (o,) = e.evaluate(candidates(space, space.sample_tokens(1, seed=0)))
    assert o.ok and 0 <= o.accuracy <= 100 and o.score > math.log(1e5)


def test_a_search_runs_on_zero_cost_params(tmp_path):
    result = search.run("nb201", "nb201-pixel3", target_ms=5.0, evaluator="zero-cost:params", budget=10,
                        out=tmp_path / "run", strategy="random", seed=0)
    assert result.evaluated == 10 and result.stop_reason == "budget"
    assert result.config["evaluator"]["fingerprint"]["proxy"] == "params"
    import pynas
    from pynas.search.log import SearchLog

    with SearchLog.open(tmp_path / "run", pynas.__version__) as log:
        done = [r for r in log.samples() if r.status == "done" and not r.cached]
    # the raw score (log of the parameter count) is logged beside the percentile the reward used
    truth = {str(c): math.log(count_params(c)) for c in (get_space("nb201").decode(r.tokens) for r in done)}
    assert all(r.score == pytest.approx(truth[r.arch]) and 0 <= r.accuracy <= 100 for r in done)


def test_dataset_inputs_as_an_option():
    """`--evaluator-option data=digits`: real images (8x8 grey, resized to 32, replicated to 3 channels)
    replace the Gaussian batch; the data is in the fingerprint; a bad dataset or option is refused."""
    space = get_space("nb201")
    real = make_evaluator("zero-cost:naswot", space, options={"data": "digits", "batch": 16, "calibration": 8})
    gauss = make_evaluator("zero-cost:naswot", space, options={"batch": 16, "calibration": 8})
    assert tuple(real.inputs.shape) == (16, 3, 32, 32) and real.fingerprint()["data"].startswith("digits sha256:")
    assert not torch.equal(real.inputs, gauss.inputs) and "digits images" in real.describe()
    rows = space.sample_tokens(2, seed=4)
    a, b = real.evaluate(candidates(space, rows)), real.evaluate(candidates(space, rows))
    assert [o.score for o in a] == [o.score for o in b] and all(o.ok for o in a)
    with pytest.raises(ValueError, match="no such file or folder"):
        make_evaluator("zero-cost:naswot", space, options={"data": "/nonexistent/data"})
    with pytest.raises(ValueError, match="batch: expected at most the 1438 training images of digits, got 5000"):
        make_evaluator("zero-cost:naswot", space, options={"data": "digits", "batch": 5000})
    with pytest.raises(ValueError, match="evaluator option batchsize: expected one of batch, seed, data, calibration"):
        make_evaluator("zero-cost:naswot", space, options={"batchsize": 8})
