"""Zero-cost proxies (pynas/train/proxies.py) on tiny models: finite, deterministic, the reference
definitions on cases worked by hand, and score_all agreeing with the functions one by one."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from pynas.train.nb201 import build_nb201, count_params
from pynas.train.proxies import PROXIES, flops, grad_norm, jacob_cov, naswot, params, score_all, snip, synflow

CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def tiny(seed=0):
    torch.manual_seed(seed)
    return build_nb201(CELL, channels=4, cells_per_stage=1)


def batch(seed=0, n=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("name", list(PROXIES))
def test_each_proxy_is_finite_deterministic_and_leaves_the_weights(name):
    x, y = batch()
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "tracked" not in k}
    first = PROXIES[name](model, x, y)
    assert math.isfinite(first) and first == PROXIES[name](tiny(), x, y)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_init_seed_matters_for_gradient_proxies():
    x, y = batch()
    assert grad_norm(tiny(0), x, y) != grad_norm(tiny(1), x, y)
    assert synflow(tiny(0), x, y) != synflow(tiny(1), x, y)


def test_synflow_ignores_the_data_and_batch_norm():
    x, y = batch(0)
    x2, y2 = batch(5, n=3)
    assert synflow(tiny(), x, y) == synflow(tiny(), x2 * 10, y2)
    # By hand: Linear(2->3) then Linear(3->1), all |w|, BN between is a no-op, ones in: the product's sum.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 3, bias=False), nn.BatchNorm1d(3), nn.Linear(3, 1, bias=False))
    a, b = model[1].weight.detach().abs().double(), model[3].weight.detach().abs().double()
    # R = b @ a @ 1; |w * dR/dw| summed: layer a gives sum_ij b_i a_ij, layer b gives sum_i b_i (a @ 1)_i: both R.
    r = float((b @ a @ torch.ones(2, 1, dtype=torch.float64)).sum())
    assert synflow(model, torch.ones(4, 1, 1, 2), torch.zeros(4, dtype=torch.long)) == pytest.approx(2 * r, rel=1e-12)


def test_grad_norm_and_snip_by_hand_on_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    x, y = torch.randn(5, 1, 2, 3), torch.tensor([0, 1, 2, 0, 1])
    loss = nn.functional.cross_entropy(model(x), y)
    (g,) = torch.autograd.grad(loss, [model[1].weight])  # the bias is not scored
    assert grad_norm(model, x, y) == pytest.approx(float(g.norm()), rel=1e-6)
    assert snip(model, x, y) == pytest.approx(float((model[1].weight.detach() * g).abs().sum()), rel=1e-6)


def test_jacob_cov_by_hand_when_every_example_has_the_same_jacobian():
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 2, bias=False))  # J_i = column sums of W, for every i
    torch.manual_seed(0)
    x, y = torch.randn(4, 1, 2, 3), torch.zeros(4, dtype=torch.long)
    k = 1e-5  # correlation all ones: eigenvalues 4, 0, 0, 0
    want = -((math.log(4 + k) + 1 / (4 + k)) + 3 * (math.log(k) + 1 / k))
    assert jacob_cov(model, x, y) == pytest.approx(want, rel=1e-6)

    class Zero(nn.Module):  # NAS-Bench-201's none op: x * 0, still in the autograd graph
        def forward(self, x):
            return x.mul(0.0)

    cut = nn.Sequential(nn.Flatten(), Zero(), nn.Linear(6, 2))  # the input never reaches the output: J = 0
    assert math.isnan(jacob_cov(cut, x, y))


def hand_naswot(codes: np.ndarray) -> float:
    units = codes.shape[1]
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(-1)
    return float(np.linalg.slogdet(units - hamming)[1])


def test_naswot_is_the_log_determinant_of_the_hamming_kernel():
    relu = nn.Sequential(nn.Flatten(), nn.ReLU())
    y = torch.zeros(4, dtype=torch.long)
    distinct = np.array([[1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 0, 0],
                         [0, 0, 0, 0, 0, 0, 1, 1]])
    close = distinct.copy()
    close[1] = [1, 1, 1, 0, 0, 0, 0, 0]  # example 1 now one unit away from example 0
    score = {name: naswot(relu, torch.tensor(2.0 * c - 1, dtype=torch.float32).view(4, 1, 1, 8), y)
             for name, c in (("distinct", distinct), ("close", close))}
    assert score["distinct"] == pytest.approx(hand_naswot(distinct)) and score["close"] == pytest.approx(
        hand_naswot(close))
    assert score["distinct"] > score["close"]  # more distinct activation patterns, a higher score
    same = torch.ones(4, 1, 1, 8)  # identical codes: K singular, no finite score
    assert math.isnan(naswot(relu, same, y))


def test_params_and_flops():
    x, y = batch()
    assert params(tiny(), x, y) == count_params(CELL, channels=4, cells_per_stage=1)
    conv = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=False), nn.Flatten(), nn.Linear(5 * 8 * 8, 7))
    assert flops(conv, x, y) == 5 * 8 * 8 * 3 * 9 + 5 * 8 * 8 * 7


def test_score_all_equals_the_functions_one_by_one():
    x, y = batch()
    together = score_all(tiny(), x, y)
    assert list(together) == list(PROXIES)
    for name, value in together.items():
        assert value == pytest.approx(PROXIES[name](tiny(), x, y), rel=1e-5, abs=1e-9), name
    assert score_all(tiny(), x, y, ["snip"]) == {"snip": together["snip"]}
    with pytest.raises(ValueError, match="proxies: expected names among synflow"):
        score_all(tiny(), x, y, ["zen"])


def test_bad_input():
    x, y = batch()
    with pytest.raises(ValueError, match=r"targets: expected 8 integer class labels \(one per input\), got \(7,\)"):
        snip(tiny(), x, y[:7])
    with pytest.raises(ValueError, match="inputs: expected a float tensor N x C x H x W"):
        naswot(tiny(), x[0], y)
    with pytest.raises(ValueError, match="model: expected a torch.nn.Module, got str"):
        params("net", x, y)
