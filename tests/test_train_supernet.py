"""The MnasNet supernet: its sub-networks are the space's architectures (with extracted weights,
`build_torch(arch)` computes the same outputs), sandwich training, the file and its errors."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pynas.data import load_dataset  # noqa: E402
from pynas.space import get_space  # noqa: E402
from pynas.space.mnasnet import BASE_LAYERS  # noqa: E402
from pynas.torch_builder import randomise_batchnorm  # noqa: E402
from pynas.train.supernet import (  # noqa: E402
    largest_tokens, load_supernet, sandwich_step, save_supernet, smallest_tokens, train_supernet)
from pynas.train.supernet_layers import Supernet  # noqa: E402

RES = 16


@pytest.fixture(scope="module")
def space():
    return get_space("mnasnet", resolution=RES, num_classes=10, in_channels=1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def supernet(space):
    torch.manual_seed(0)
    return randomise_batchnorm(Supernet(space), seed=1)  # BN statistics that a wrong copy would show


def sampled_tokens(space):
    """Extremes (largest, smallest: 0-layer blocks 1 and 7), every op with pool shortcuts, and random."""
    width = 6
    tokens = [largest_tokens(space), smallest_tokens(space)]
    for op in range(4):
        block = (op, 1, 1, 0, 1, 1)  # kernel 5, SE, pool shortcut, 1.0x filters, base layers
        tokens.append(block * 7)
    empty_ends = list(space.sample_tokens(1, seed=3)[0])
    empty_ends[5] = empty_ends[6 * width - 1] = 0  # blocks 1 and 7 with 0 layers
    tokens.append(tuple(empty_ends))
    tokens += [tuple(t) for t in space.sample_tokens(4, seed=0)]
    return tokens


def test_extremes_are_what_they_say(space):
    largest, smallest = space.decode(largest_tokens(space)), space.decode(smallest_tokens(space))
    assert [s.repeats for s in largest.stages] == [b + 1 for b in BASE_LAYERS]
    assert [s.repeats for s in smallest.stages] == [b - 1 for b in BASE_LAYERS]
    assert all(s.block == "ir" and s.expansion == 6 and s.kernel == 5 and s.se_ratio for s in largest.stages)


@pytest.mark.parametrize("index", range(11))
def test_subnetwork_is_the_built_architecture(space, supernet, index):
    tokens = sampled_tokens(space)[index]
    net = supernet.extract(tokens)
    assert net.arch == space.decode(tokens)
    x = torch.randn(3, 1, RES, RES, generator=torch.Generator().manual_seed(index))
    supernet.eval()
    with torch.no_grad():
        got, want = supernet(x, tokens), net(x)
    assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()
    # ... and not by accident: another architecture's outputs differ.
    other = sampled_tokens(space)[(index + 1) % 11]
    with torch.no_grad():
        assert not torch.allclose(supernet(x, other), want, atol=1e-3)


def test_sandwich_step_changes_weights_and_is_deterministic(space, digits):
    from pynas.train.supernet import _optimizer, images, normalisation

    mean, std = normalisation(digits.x_train)
    x = images(digits.x_train[:16], mean, std, RES)
    y = torch.from_numpy(digits.y_train[:16])
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        net = Supernet(space).train()
        before = {k: v.clone() for k, v in net.state_dict().items()}
        loss = sandwich_step(net, x, y, _optimizer(net, 0.05, 0.9, 3e-5), np.random.default_rng(0))
        assert np.isfinite(loss)
        changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
        # The largest (inverted residual) and the smallest (depthwise-separable) trained at least.
        assert any(".ir." in k for k in changed) and any(".ds." in k for k in changed)
        results.append(net.state_dict())
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


def test_fair_subnets_run_every_op_once_per_block_and_are_seeded(space):
    from pynas.space.mnasnet import OPS
    from pynas.train.supernet import fair_subnets

    subnets = fair_subnets(space, np.random.default_rng(3))
    assert len(subnets) == len(OPS) and subnets == fair_subnets(space, np.random.default_rng(3))
    ops = [i for i, d in enumerate(space.decisions) if d.name.endswith(".op")]
    assert len(ops) == 7
    for i in ops:  # each block: every op exactly once across the step's sub-networks
        assert sorted(t[i] for t in subnets) == list(range(len(OPS)))
    others = {tuple(t[i] for i in range(len(t)) if i not in ops) for t in subnets}
    assert len(others) > 1  # the other choices are sampled, not shared
    for t in subnets:
        space.decode(t)  # every one is an architecture of the space


def test_a_fair_step_trains_every_op_candidate(space, digits):
    from pynas.train.supernet import _optimizer, fair_subnets, images, normalisation, train_step

    mean, std = normalisation(digits.x_train)
    x, y = images(digits.x_train[:16], mean, std, RES), torch.from_numpy(digits.y_train[:16])
    torch.manual_seed(0)
    net = Supernet(space).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    subnets = fair_subnets(space, np.random.default_rng(0))
    assert np.isfinite(train_step(net, x, y, _optimizer(net, 0.05, 0.9, 3e-5), subnets))
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    for block in range(1, 6):  # blocks 2-6 have >= 1 layer: their first runs in every sub-network
        for op in (".conv.conv.", ".ds.dw.", ".ir.expand."):
            assert any(k.startswith(f"blocks.{block}.0{op}") for k in changed), (block, op)


def test_progressive_subnets_free_the_choices_phase_by_phase(space):
    from pynas.train.supernet import PHASES, progressive_subnets

    largest, smallest = largest_tokens(space), smallest_tokens(space)
    fields = [d.name.split(".", 1)[1] for d in space.decisions]
    rng = np.random.default_rng(0)
    for phase in range(len(PHASES)):
        free = {name for names in PHASES[:phase + 1] for name in names}
        subnets = [t for _ in range(20) for t in progressive_subnets(space, rng, (phase + 0.5) / len(PHASES))[1:]]
        for t in subnets:  # a choice not yet free is the largest's
            assert all(v == b for v, b, f in zip(t, largest, fields) if f not in free)
        for f in free:  # a free one varies (and the phase's smallest takes the smallest's value)
            column = [v for t in subnets for v, name in zip(t, fields) if name == f]
            assert len(set(column)) > 1, (phase, f)
        low = progressive_subnets(space, rng, phase / len(PHASES))[1]
        assert all(v == (s if f in free else b) for v, s, b, f in zip(low, smallest, largest, fields))
    assert progressive_subnets(space, rng, 0.99)[0] == largest
    with pytest.raises(ValueError, match=r"done: expected a fraction of the steps in \[0, 1\), got 1.0"):
        progressive_subnets(space, rng, 1.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(sampling="spos"), "sampling: expected one of sandwich, fair, progressive, got 'spos'"),
    (dict(sampling="fair", distill=True), "distill: expected only with sampling sandwich or progressive"),
])
def test_bad_sampling_is_refused(space, digits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_supernet(space, digits, 1, max_steps=1, **kwargs)


@pytest.fixture(scope="module")
def trained(space, digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("supernet") / "digits.pt"
    net, meta = train_supernet(space, digits, 1, out=path, batch_size=16, train_images=64, max_steps=2)
    return path, net, meta


def test_train_writes_a_file_that_loads_back(space, trained):
    path, net, meta = trained
    assert meta["dataset"] == "digits" and meta["steps"] == 2 and meta["space_options"] == space.options()
    loaded, got = load_supernet(path, space)
    assert got == meta
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in loaded.state_dict().items())
    plain = torch.load(path, weights_only=True)  # primitives and tensors only
    assert plain["format"] == "pynas-supernet"
    own_space, _ = load_supernet(path)  # the file's own space when none is given
    assert own_space.space.options() == space.options()


def test_training_is_deterministic(space, digits, trained):
    _, net, _ = trained
    again, _ = train_supernet(space, digits, 1, batch_size=16, train_images=64, max_steps=2)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in again.state_dict().items())


def test_wrong_space_and_malformed_files(space, trained, tmp_path):
    path, net, meta = trained
    with pytest.raises(ValueError, match=r"digits.pt: expected space mnasnet .*'resolution': 32.*got mnasnet .*16"):
        load_supernet(path, get_space("mnasnet", resolution=32, num_classes=10, in_channels=1))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="garbage.pt: expected a torch.save file of format pynas-supernet"):
        load_supernet(garbage, space)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else", "version": 1}, other)
    with pytest.raises(ValueError, match="other.pt: expected format pynas-supernet version 1, got something-else"):
        load_supernet(other, space)
    no_meta = tmp_path / "nometa.pt"
    torch.save({"format": "pynas-supernet", "version": 1, "meta": {"space": "mnasnet"}, "state_dict": {}}, no_meta)
    with pytest.raises(ValueError, match="nometa.pt: expected meta with .* got meta without space_options"):
        load_supernet(no_meta, space)
    truncated = tmp_path / "truncated.pt"
    state = net.state_dict()
    state.pop(next(iter(state)))
    save_supernet(truncated, net, meta)
    blob = torch.load(truncated, weights_only=True)
    blob["state_dict"] = state
    torch.save(blob, truncated)
    with pytest.raises(ValueError, match="truncated.pt: expected the state dict of space mnasnet"):
        load_supernet(truncated, space)
    with pytest.raises(ValueError, match="missing.pt: expected a file written by `pynas supernet train`, got nothing"):
        load_supernet(tmp_path / "missing.pt", space)


def test_bad_training_input(space, digits, tmp_path):
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1, got 0"):
        train_supernet(space, digits, 0)
    with pytest.raises(ValueError, match="dataset digits: expected 3-channel images"):
        train_supernet(get_space("mnasnet", resolution=RES, num_classes=10), digits, 1)
    with pytest.raises(ValueError, match="train_images: expected an integer in"):
        train_supernet(space, digits, 1, train_images=10**6)
    with pytest.raises(ValueError, match="out: expected a file path, got the folder"):
        train_supernet(space, digits, 1, out=tmp_path)
