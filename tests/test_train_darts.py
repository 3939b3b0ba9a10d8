"""pynas.train.darts: gradients reach the alphas from the task and the latency loss, E[LAT] is the
latency model's price where the alphas are one-hot, the derive rules, the bilevel steps (first and
second order, DARTS-, paths) and the state's round trip. Tiny: digits at 8 px, 4 channels."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pynas.space.nb201 import OPS  # noqa: E402
from pynas.train.darts import (BilevelSearch, CellPathSupernet, CellSupernet, LatencyLoss, PathSupernet,  # noqa: E402
                               derive_top2, price_table, skip_count)


def tiny_data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def cell_net(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CellSupernet(10, in_channels=1, channels=4, cells_per_stage=1,
                            generator=torch.Generator().manual_seed(seed))


def nb201_latency():
    from pynas.predictor import latency_model

    return latency_model("nb201-pixel3", "nb201")


def test_the_task_loss_sends_gradients_to_every_alpha():
    net = cell_net()
    x, y = tiny_data()
    loss = torch.nn.functional.cross_entropy(net(x), y)
    grad = torch.autograd.grad(loss, net.alphas)[0]
    assert grad.shape == (6, 5) and torch.isfinite(grad).all()
    assert (grad.abs().sum(dim=1) > 0).all(), "every edge's alphas get a task gradient"


@pytest.mark.parametrize("form", ["additive", "absolute", "multiplicative"])
def test_the_latency_loss_sends_gradients_to_the_alphas_towards_cheaper_ops(form):
    model = nb201_latency()
    net = cell_net()
    base, prices = price_table(model.predict_batch, net.derive(), net.cardinalities)
    term = LatencyLoss(base, prices, target_ms=0.5 * base, weight=1.0, form=form)  # above T: every form pulls down
    loss = term.apply(torch.ones(()), net.probabilities())
    grad = torch.autograd.grad(loss, net.alphas)[0]
    assert (grad != 0).any()
    # Gradient descent on the alphas lowers E[LAT]: a small step against the gradient.
    before = float(term.expected(net.probabilities()).detach())
    with torch.no_grad():
        net.alphas -= 1.0 * grad
    assert float(term.expected(net.probabilities()).detach()) < before


def one_hot(tokens, cardinalities, scale=60.0):
    alphas = torch.full((len(cardinalities), max(cardinalities)), -scale)
    for i, t in enumerate(tokens):
        alphas[i, t] = scale
    return torch.softmax(alphas, dim=-1)


def test_expected_latency_of_one_hot_alphas_is_the_models_price():
    model = nb201_latency()
    space_rng = np.random.default_rng(0)
    cards = (5,) * 6
    for _ in range(5):
        reference = space_rng.integers(0, 5, 6)
        base, prices = price_table(model.predict_batch, reference, cards)
        term = LatencyLoss(base, prices, 1.0, 0.1)
        want = model.predict_batch(reference[None])[0]
        assert float(term.expected(one_hot(reference, cards)).detach()) == pytest.approx(want, rel=1e-6)
        neighbour = reference.copy()
        neighbour[int(space_rng.integers(6))] = int(space_rng.integers(5))
        assert float(term.expected(one_hot(neighbour, cards))) == pytest.approx(
            model.predict_batch(neighbour[None])[0], rel=1e-6)


def test_prices_from_a_compiled_table_over_fbnet():
    from pynas.predictor import latency_model

    model = latency_model("pixel3-cifar100", "fbnet", setting="cifar100")
    cards = model.space.cardinalities
    reference = np.zeros(len(cards), dtype=np.int64)
    base, prices = price_table(model.predict_batch, reference, cards)
    assert base == pytest.approx(model.predict_batch(reference[None])[0])
    assert prices.shape == (len(cards), max(cards)) and np.all(prices[np.arange(len(cards)), reference] == 0)
    row = reference.copy()
    row[3] = cards[3] - 1
    term = LatencyLoss(base, prices, 1.0, 0.1)
    assert float(term.expected(one_hot(row, cards))) == pytest.approx(model.predict_batch(row[None])[0], rel=1e-6)


def test_price_table_refuses_a_model_that_prices_nonsense():
    with pytest.raises(ValueError, match="expected 4 finite latencies > 0"):
        price_table(lambda t: -np.ones(len(t)), [0], (3,))


def test_the_absolute_form_pulls_latency_up_below_t_and_down_above_it():
    prices = np.array([[0.0, 2.0]])
    p = torch.tensor([[0.5, 0.5]], requires_grad=True)
    below = torch.autograd.grad(LatencyLoss(1.0, prices, 10.0, 1.0).apply(torch.zeros(()), p), p)[0]
    above = torch.autograd.grad(LatencyLoss(1.0, prices, 1.0, 1.0).apply(torch.zeros(()), p), p)[0]
    additive = torch.autograd.grad(LatencyLoss(1.0, prices, 10.0, 1.0, "additive").apply(torch.zeros(()), p), p)[0]
    assert below[0, 1] < 0 < above[0, 1] and additive[0, 1] > 0  # descent raises the costly op's p below T


def test_latency_loss_bad_options_are_named():
    with pytest.raises(ValueError, match="latency_form: expected one of absolute, additive, multiplicative"):
        LatencyLoss(1.0, np.zeros((1, 1)), 1.0, 0.1, "power")
    with pytest.raises(ValueError, match="target_ms: expected"):
        LatencyLoss(1.0, np.zeros((1, 1)), 0.0, 0.1)
    with pytest.raises(ValueError, match="latency_weight: expected a number >= 0"):
        LatencyLoss(1.0, np.zeros((1, 1)), 1.0, -1.0)


def test_derive_rules():
    net = cell_net()
    with torch.no_grad():
        net.alphas.zero_()
        net.alphas[:, OPS.index("none")] = 1.0  # NAS-Bench-201's rule: none is an op like the others
        net.alphas[2, OPS.index("nor_conv_3x3")] = 2.0
    assert net.derive() == (0, 0, 3, 0, 0, 0)
    assert skip_count((1, 1, 3, 0, 1, 2)) == 3
    path = PathSupernet(torch.nn.Identity(), (2, 3))
    with torch.no_grad():
        path.alphas.copy_(torch.tensor([[0.0, 1.0, 9.0], [0.5, 0.1, 0.2]]))  # choice 2 of decision 0 does not exist
    assert path.derive() == (1, 0)
    assert path.probabilities()[0, 2] == 0
    # DARTS's own cell: node k has 2 + k incoming edges; keep the 2 strongest non-none edges.
    ops = ("none", "skip_connect", "sep_conv_3x3")
    alphas = torch.zeros(5, 3)
    alphas[0] = torch.tensor([9.0, 0.0, 1.0])  # none dominates, but it is never kept: its best other op is weak
    alphas[1] = torch.tensor([0.0, 3.0, 0.0])
    alphas[2] = torch.tensor([0.0, 0.0, 4.0])
    alphas[3] = torch.tensor([0.0, 2.0, 0.0])
    alphas[4] = torch.tensor([0.0, 0.0, 1.0])
    assert derive_top2(alphas, ops) == [(0, "sep_conv_3x3"), (1, "skip_connect"), (0, "sep_conv_3x3"),
                                        (1, "skip_connect")]
    with pytest.raises(ValueError, match="expected edges of whole nodes"):
        derive_top2(torch.zeros(4, 3), ops)


def run_epochs(order=1, remedy="none", epochs=2, latency=None, seed=0):
    net = cell_net(seed)
    search = BilevelSearch(net, epochs=epochs, order=order, remedy=remedy, arch_lr=0.01)
    train, val = tiny_data(32, 1), tiny_data(32, 2)
    for e in range(epochs):
        search.epoch(e, train, val, batch_size=16, generator=torch.Generator().manual_seed(e), latency=latency)
    return search


def test_first_and_second_order_move_the_alphas_differently_and_deterministically():
    torch.set_num_threads(1)
    first, again, second = run_epochs(1), run_epochs(1), run_epochs(2)
    assert torch.equal(first.net.alphas, again.net.alphas)
    assert not torch.allclose(first.net.alphas, torch.zeros(6, 5)) and not torch.equal(first.net.alphas,
                                                                                       second.net.alphas)


def test_a_strong_latency_weight_pulls_the_derived_cell_towards_cheap_ops():
    model = nb201_latency()
    net = cell_net()
    base, prices = price_table(model.predict_batch, net.derive(), net.cardinalities)
    heavy = run_epochs(latency=LatencyLoss(base, prices, target_ms=0.5 * base, weight=50.0))
    plain = run_epochs()
    lat = lambda s: float(LatencyLoss(base, prices, 1.0, 0.0).expected(s.net.probabilities()).detach())  # noqa: E731
    assert lat(heavy) < lat(plain)


def test_darts_minus_decays_its_auxiliary_skip_and_changes_the_forward():
    search = BilevelSearch(cell_net(), epochs=4, remedy="darts-minus")
    assert [search.aux_skip(e) for e in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert BilevelSearch(cell_net(), epochs=4).aux_skip(0) == 0.0
    x, _ = tiny_data(4)
    net = search.net
    assert not torch.allclose(net(x, aux_skip=1.0), net(x))


def test_paths_get_reinforce_gradients_and_bad_combinations_are_refused():
    net = CellPathSupernet(cell_net(), torch.Generator().manual_seed(0))
    search = BilevelSearch(net, epochs=1, paths_per_step=3)
    x, y = tiny_data()
    search._reinforce(x, y, None, torch.Generator().manual_seed(0))
    assert net.alphas.grad is not None and (net.alphas.grad != 0).any()
    with pytest.raises(ValueError, match="order: expected 1 for a path supernet"):
        BilevelSearch(net, epochs=1, order=2)
    with pytest.raises(ValueError, match="remedy: expected one of"):
        BilevelSearch(cell_net(), epochs=1, remedy="pdarts")
    with pytest.raises(ValueError, match="order: expected 1"):
        BilevelSearch(cell_net(), epochs=1, order=3)


def test_state_arrays_round_trip_to_the_same_next_epoch():
    torch.set_num_threads(1)
    a = run_epochs(epochs=3)
    b = BilevelSearch(cell_net(7), epochs=3, arch_lr=0.01)
    b.load_state_arrays(a.state_arrays())
    train, val = tiny_data(32, 1), tiny_data(32, 2)
    for s in (a, b):
        s.epoch(2, train, val, batch_size=16, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a.net.alphas, b.net.alphas)
    for (k, v), (_, w) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert torch.equal(v, w), k
