"""MnasNet search space: decisions, size, the tokens <-> architecture bijection, sampling."""
import collections
import dataclasses

import numpy as np
import pytest

from pynas.arch import parse
from pynas.ir import lower
from pynas.presets import preset
from pynas.space import MnasNetSpace, get_space


@pytest.fixture(scope="module")
def space():
    return get_space("mnasnet")


def test_decisions_and_size(space):
    assert len(space.decisions) == 42
    assert [d.name for d in space.decisions[:6]] == [
        "b1.op", "b1.kernel", "b1.se", "b1.skip", "b1.filters", "b1.layers"]
    assert space.cardinalities == (4, 2, 2, 3, 3, 3) * 7
    assert space.size == 432 ** 7  # MnasNet's ~1e13 is 432 ** 5, its B = 5 example
    assert space.distinct_networks() == 241 * 384 * 432 ** 4 * 241  # see test_network_tokens


@pytest.mark.parametrize("name, options", [("mnasnet", {}), ("fbnet", {"setting": "imagenet"}),
                                           ("fbnet", {"setting": "cifar100"})])
def test_ten_thousand_samples_round_trip_through_strings_and_tokens(name, options):
    space = get_space(name, **options)
    tokens = space.sample_tokens(10_000, seed=1234)
    for row in tokens:
        arch = space.decode(row)
        assert parse(str(arch)) == arch
        assert space.encode(arch) == tuple(row)
        assert space.encode(parse(str(arch))) == tuple(row)


def test_sampling_is_seeded_and_uniform(space):
    a, b, c = space.sample_tokens(4000, seed=7), space.sample_tokens(4000, seed=7), space.sample_tokens(4000, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    for column, cardinality in zip(a.T, space.cardinalities):
        counts = np.bincount(column, minlength=cardinality)
        expected = len(column) / cardinality
        # 5 standard deviations of a binomial count: fails only if sampling is biased.
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts
    assert [str(x) for x in space.sample(3, seed=0)] == [str(x) for x in space.sample(3, seed=0)]


def test_mobilenetv2_skeleton_is_in_the_space(space):
    """Base choices reproduce MobileNetV2-1.0 (with MnasNet's ReLU instead of ReLU6)."""
    base = [1, 0, 0, 1, 1, 1]  # dsconv, k3, se 0, identity, 1.0x, +0 layers
    mbconv6 = [3, 0, 0, 1, 1, 1]
    arch = space.decode(base + mbconv6 * 6)
    v2 = preset("mobilenetv2-1.0")
    relu = lambda part: dataclasses.replace(part, act="re")  # noqa: E731
    expected = v2.replace(stem=relu(v2.stem), stages=tuple(map(relu, v2.stages)), head=relu(v2.head))
    assert arch == expected


def test_lowering_follows_the_choices(space):
    tokens = [0] * 42
    tokens[0:6] = [3, 1, 1, 0, 2, 2]  # b1: mbconv6 k5 se0.25 pool-skip 1.25x, 2 layers
    stage = space.decode(tokens).stages[0]
    assert (stage.block, stage.expansion, stage.kernel, stage.se_ratio, stage.skip, stage.channels,
            stage.repeats) == ("ir", 6.0, 5, 0.25, "pool", 20, 2)
    graph = lower(space.decode(tokens))
    b1 = [op for op in graph.ops if op.block and op.block.startswith("s0.")]
    assert [op.role for op in b1 if op.block == "s0.0"] == [
        "expand", "expand_act", "dw", "dw_act", "se", "project", "skip_pool", "skip_proj", "residual"]
    assert [op.role for op in b1 if op.block == "s0.1"] == [  # same width: pool without projection
        "expand", "expand_act", "dw", "dw_act", "se", "project", "skip_pool", "residual"]
    se = next(op for op in b1 if op.kind == "se")
    assert se.se_channels == 8  # round(32 input channels * 0.25)


def test_zero_layer_block_lowers_to_nothing(space):
    tokens = list(space.sample_tokens(1, seed=3)[0])
    tokens[5] = 0  # b1 layers -1: 0 layers
    arch = space.decode(tokens)
    assert arch.stages[0].repeats == 0
    assert not any(op.block and op.block.startswith("s0.") for op in lower(arch).ops)


def _fingerprint(arch):
    return tuple((op.key, op.inputs) for op in lower(arch).ops)


def test_network_tokens(space):
    """Same network_tokens <=> same lowered network; this is what distinct_networks counts."""
    rng = np.random.default_rng(5)
    rows = space.sample_tokens(400, seed=11)
    changed = 0
    for row in rows:
        # Randomise every choice that leaves network_tokens as it is: the network must not change.
        normalised, mixed = space.network_tokens(row), list(row)
        for i, value in enumerate(rng.integers(0, space.cardinalities)):
            trial = mixed[:i] + [value] + mixed[i + 1:]
            if space.network_tokens(trial) == normalised:
                mixed = trial
        if mixed != list(row):
            changed += 1
            assert _fingerprint(space.decode(mixed)) == _fingerprint(space.decode(row))
    assert changed > 50
    by_network = collections.defaultdict(set)
    for row in rows:
        by_network[space.network_tokens(row)].add(_fingerprint(space.decode(row)))
    assert all(len(f) == 1 for f in by_network.values())
    assert len({next(iter(f)) for f in by_network.values()}) == len(by_network)


def test_identity_and_none_collapse_only_on_single_layer_blocks(space):
    tokens = [0] * 42
    for layers, same in ((1, True), (2, False)):  # b1 base 1 layer: +0 -> 1 layer, +1 -> 2
        tokens[5] = layers
        identity, none = list(tokens), list(tokens)
        identity[3], none[3] = 1, 2
        assert (_fingerprint(space.decode(identity)) == _fingerprint(space.decode(none))) is same


def test_encode_rejects_architectures_outside_the_space(space):
    with pytest.raises(ValueError, match=r"stage 4 .*channels: expected one of \(72, 96, 120\), got 112"):
        space.encode(preset("mnasnet-a1"))
    with pytest.raises(ValueError, match="act"):
        space.encode(preset("mobilenetv2-1.0"))
    arch = space.sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="resolution"):
        space.encode(arch.replace(resolution=192))
    v2 = space.decode([1, 0, 0, 1, 1, 1] + [3, 0, 0, 1, 1, 1] * 6)  # ir e6 blocks from the second on
    grouped = v2.replace(stages=(v2.stages[0], dataclasses.replace(v2.stages[1], groups=2), *v2.stages[2:]))
    with pytest.raises(ValueError, match=r"stage 1 .*groups: expected one of \(1,\), got 2"):
        space.encode(grouped)


def test_bad_tokens_and_options(space):
    with pytest.raises(ValueError, match="expected 42 values"):
        space.decode([0] * 41)
    with pytest.raises(ValueError, match=r"b1.op: expected 0..3, got 4"):
        space.decode([4] + [0] * 41)
    with pytest.raises(ValueError, match="unknown search space 'fbnet2'"):
        get_space("fbnet2")
    with pytest.raises(ValueError, match="resolution"):
        MnasNetSpace(resolution=0)


def test_other_resolutions(space):
    small = MnasNetSpace(resolution=160, num_classes=10)
    arch = small.sample(1, seed=0)[0]
    assert arch.resolution == 160 and arch.num_classes == 10
    assert lower(arch).output.cout == 10
    assert small.encode(arch) == space.encode(arch.replace(resolution=224, num_classes=1000))


def test_input_channels_option(space):
    grey = MnasNetSpace(resolution=28, num_classes=10, in_channels=1)
    arch = grey.sample(1, seed=0)[0]
    assert arch.in_channels == 1 and str(arch).startswith("net_res28_cls10_in1:")
    assert grey.options() == {"resolution": 28, "num_classes": 10, "in_channels": 1}
    assert get_space("mnasnet", **grey.options()).decode(grey.encode(arch)) == arch
    assert space.options() == {"resolution": 224, "num_classes": 1000}  # RGB configs are unchanged
    with pytest.raises(ValueError, match=r"in_channels: expected one of \(3,\), got 1"):
        MnasNetSpace(resolution=28, num_classes=10).encode(arch)
    with pytest.raises(ValueError, match="in_channels"):
        MnasNetSpace(in_channels=0)
    assert grey.layout_name() == "mnasnet_res28_cls10_in1"  # a bundle of RGB networks does not price these
