"""FBNet search space (HW-NAS-Bench's definition): decisions, the two settings' skeletons, the
tokens <-> architecture bijection, lowering of each choice, segments."""
import numpy as np
import pytest

from pynas.arch import parse
from pynas.ir import lower
from pynas.ir.segments import segments
from pynas.space import FBNetSpace, get_space
from pynas.space.catalogue import space_items
from pynas.space.fbnet import CHOICES

SETTINGS = ("imagenet", "cifar100")


@pytest.fixture(scope="module", params=SETTINGS)
def space(request):
    return get_space("fbnet", setting=request.param)


def test_decisions_and_size(space):
    assert len(space.decisions) == 22
    assert [d.name for d in space.decisions[:3]] == ["layer0", "layer1", "layer2"]
    assert all(d.choices == ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
               for d in space.decisions)
    assert space.size == 9 ** 22
    assert "9.848e+20" in space.describe() and space.setting in space.describe()


def test_default_setting_and_options():
    assert get_space("fbnet").setting == "imagenet"
    assert FBNetSpace("cifar100").resolution == 32 and FBNetSpace("cifar100").num_classes == 100
    small = FBNetSpace("imagenet", resolution=64, num_classes=10)
    arch = small.sample(1, seed=0)[0]
    assert (arch.resolution, arch.num_classes) == (64, 10) and lower(arch).output.cout == 10
    with pytest.raises(ValueError, match="setting: expected one of imagenet, cifar100, got 'cifar10'"):
        FBNetSpace("cifar10")
    with pytest.raises(ValueError, match="resolution"):
        FBNetSpace(resolution=0)
    with pytest.raises(ValueError, match="search space 'fbnet': unknown option 'width'"):
        get_space("fbnet", width=2)


@pytest.mark.parametrize("setting, res, stem_stride, strides, sizes, head, classes", [
    ("imagenet", 224, 2, (1, 2, 2, 2, 1, 2, 1), (112, 112, 56, 28, 14, 14, 7), 1984, 1000),
    ("cifar100", 32, 1, (1, 1, 2, 2, 1, 2, 1), (32, 32, 32, 16, 8, 8, 4), 1504, 100),
])
def test_skeleton_follows_the_readme(setting, res, stem_stride, strides, sizes, head, classes):
    """Stages of [1, 4, 4, 4, 4, 4, 1] layers to [16, 24, 32, 64, 112, 184, 352] channels; only a
    stage's first layer changes channels and stride; stem 16 channels; head and classes."""
    space = FBNetSpace(setting)
    arch = space.decode([0] * 22)
    assert (arch.resolution, arch.num_classes, arch.head.channels) == (res, classes, head)
    assert (arch.stem.kernel, arch.stem.stride, arch.stem.channels) == (3, stem_stride, 16)
    firsts = [0, 1, 5, 9, 13, 17, 21]
    for stage, first in enumerate(firsts):
        layer = space.layers[first]
        assert (layer.stage, layer.stride, layer.size) == (stage, strides[stage], sizes[stage])
        assert layer.cout == (16, 24, 32, 64, 112, 184, 352)[stage]
        assert layer.cin == (16, 16, 24, 32, 64, 112, 184)[stage]
    for layer in space.layers:
        if layer.index not in firsts:
            assert layer.stride == 1 and layer.cin == layer.cout
    assert space.head_size == (7 if setting == "imagenet" else 4)
    assert all(s.repeats == 1 for s in arch.stages)


def test_choices_lower_as_hwnasbench_blocks(space):
    """Layer 1 under every choice: k/e/g2 as an ir stage (e1 keeps its expand conv), skip as id."""
    expected = {
        "k3_e1": "ir_r1_k3_s{s}_e1_c24", "k3_e1_g2": "ir_r1_k3_s{s}_e1_c24_g2", "k3_e3": "ir_r1_k3_s{s}_e3_c24",
        "k3_e6": "ir_r1_k3_s{s}_e6_c24", "k5_e1": "ir_r1_k5_s{s}_e1_c24", "k5_e1_g2": "ir_r1_k5_s{s}_e1_c24_g2",
        "k5_e3": "ir_r1_k5_s{s}_e3_c24", "k5_e6": "ir_r1_k5_s{s}_e6_c24", "skip": "id_r1_s{s}_c24",
    }
    s = space.layers[1].stride
    for token, choice in enumerate(CHOICES):
        tokens = [0] * 22
        tokens[1] = token
        arch = space.decode(tokens)
        assert str(arch.stages[1]) == expected[choice].format(s=s)
        assert space.choices(tokens)[1] == choice
        roles = [op.role for op in lower(arch).ops if op.block == "s1.0"]
        if choice == "skip":
            assert roles == ["conv", "conv_act"]  # 16 -> 24 channels: the 1x1 projection
        elif choice.endswith("_g2"):
            assert roles == ["expand", "expand_act", "shuffle", "dw", "dw_act", "project"]
        else:
            assert roles == ["expand", "expand_act", "dw", "dw_act", "project"]


def test_identity_skips_and_residuals(space):
    tokens = [8] * 22  # every layer skip
    graph = lower(space.decode(tokens))
    blocks = {op.block for op in graph.ops if op.block}
    # Only the stage-first layers that change the shape project; layer 0 (16 -> 16, stride 1) does not.
    assert blocks == {"s1.0", "s5.0", "s9.0", "s13.0", "s17.0", "s21.0"}
    residual = lower(space.decode([3] * 22))  # k3_e6 everywhere: residuals where in == out, stride 1
    adds = sorted((op.block for op in residual.ops if op.kind == "add"), key=lambda b: int(b[1:].split(".")[0]))
    assert adds == [f"s{i}.0" for i in range(22) if i not in (1, 5, 9, 13, 17, 21)]


def test_distinct_tokens_lower_to_distinct_networks(space):
    rows = {tuple(r) for r in space.sample_tokens(300, seed=3)}
    networks = {tuple((op.key, op.inputs) for op in lower(space.decode(r)).ops) for r in rows}
    assert len(networks) == len(rows)


def test_sampling_is_seeded_and_uniform(space):
    a, b = space.sample_tokens(4000, seed=7), space.sample_tokens(4000, seed=7)
    assert np.array_equal(a, b)
    for column in a.T:
        counts = np.bincount(column, minlength=9)
        assert np.all(np.abs(counts - 4000 / 9) < 5 * np.sqrt(4000 / 9)), counts


def test_encode_rejects_architectures_outside_the_space(space):
    arch = space.sample(1, seed=0)[0]
    other = FBNetSpace("cifar100" if space.setting == "imagenet" else "imagenet").sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="resolution"):
        space.encode(other)
    text = str(space.decode([0] * 22))
    first = "ir_r1_k3_s1_e1_c16:"
    cases = [
        ("layer 0 .*act", first.replace(":", "_nhs:")),
        ("layer 0 .*se_ratio", first.replace(":", "_se0.25:")),
        ("layer 0 .*skip", first.replace(":", "_noskip:")),
        (r"layer 0 .*\(block, kernel, expansion, groups\).*got \('ir', 7", "ir_r1_k7_s1_e1_c16:"),
        (r"layer 0 .*\(block, kernel, expansion, groups\).*got \('ds', 3", "ds_r1_k3_s1_c16:"),
        (r"layer 0 .*\(block, kernel, expansion, groups\).*got \('ir', 3, 1.0, 4\)", "ir_r1_k3_s1_e1_c16_g4:"),
        ("layer 0 .*repeats", "ir_r2_k3_s1_e1_c16:"),
        ("layer 0 .*channels", "ir_r1_k3_s1_e1_c18:"),
        ("number of stages", ""),
    ]
    for match, replacement in cases:
        bad = text.replace(first, replacement, 1)
        assert bad != text
        with pytest.raises(ValueError, match=match):
            space.encode(parse(bad))
    with pytest.raises(ValueError, match="head"):
        space.encode(parse(text.replace("head_c", "head_c1")))
    assert space.encode(arch) == space.encode(parse(str(arch)))
    with pytest.raises(ValueError, match=r"layer21: expected 0..8, got 9"):
        space.decode([0] * 21 + [9])


def test_segment_archs_cover_every_segment(space):
    """segment_archs gives every distinct segment any architecture has: 8 ConvBlocks x 12 shapes,
    6 shape-changing skips, stem and head = 104; samples find nothing more."""
    configs = space_items(space)
    kinds = [c.kind for c in configs.values()]
    assert len(configs) == 104
    assert (kinds.count("mbconv"), kinds.count("convblock"), kinds.count("stem"), kinds.count("head")) == (96, 6, 1, 1)
    for arch in space.sample(300, seed=11):
        for seg in segments(lower(arch)):
            assert seg.key in configs, (str(arch), seg.id)


def test_cli_samples_the_fbnet_space(capsys):
    from pynas.cli import main

    assert main(["sample", "--space", "fbnet", "--setting", "cifar100", "-n", "3", "--seed", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    space = FBNetSpace("cifar100")
    assert [space.encode(parse(line)) for line in lines] == [tuple(r) for r in space.sample_tokens(3, seed=0)]
    assert main(["sample", "--space", "mnasnet", "--setting", "cifar100"]) == 2
    assert "unknown option 'setting'" in capsys.readouterr().err


def test_table_layout_equals_the_python_dict_path(space):
    """The compiled table of the FBNet layout (22 one-token slots, identity skips as cells with no
    segment) sums exactly what lowering and summing segments does; identity skips cost 0 unless
    `empty` prices them."""
    import hashlib

    from pynas.predictor.table import compile_table, python_predict

    def ms(key):
        return 0.05 + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2 ** 32

    spec = space.table_layout()
    assert len(spec.layout.blocks) == 22 and spec.layout.states == ("fixed",)
    assert spec.layout.space == f"fbnet_{space.setting}_res{space.resolution}_cls{space.num_classes}"
    identity_cells = [c for c in spec.cells if c.segment is None]
    assert len(identity_cells) == sum(layer.keeps_shape for layer in space.layers)
    keys = space_items(space)
    table = compile_table(space, {k: ms(k) for k in keys}, overhead_ms=0.25)
    tokens = space.sample_tokens(300, seed=4)
    tokens[0] = 8  # all skips: every identity cell read
    want = python_predict(space, {k: ms(k) for k in keys}, tokens, overhead_ms=0.25)
    np.testing.assert_allclose(table.predict_batch(tokens), want, rtol=2e-6)

    priced = compile_table(space, {k: ms(k) for k in keys}, empty=lambda cell: 0.5 + cell.block)
    identity_cost = [sum(0.5 + layer.index for layer in space.layers if layer.keeps_shape and row[layer.index] == 8)
                     for row in tokens]
    np.testing.assert_allclose(priced.predict_batch(tokens), want - 0.25 + np.array(identity_cost), rtol=2e-6)
    rows = priced.explain(tokens[0])
    assert [r["part"] for r in rows] == ["stem"] + [f"l{i}" for i in range(22)] + ["head", "overhead"]
    assert sum(r["ms"] for r in rows) == pytest.approx(float(priced.predict(tokens[0])), rel=1e-5)


def test_table_layout_refuses_a_bad_empty_price(space):
    from pynas.predictor.table import PricingError, compile_table

    keys = space_items(space)
    with pytest.raises(PricingError, match=r"expected a latency in ms in \[0, 1e\+06\]"):
        compile_table(space, {k: 1.0 for k in keys}, empty=lambda cell: -1.0)


def test_options_rebuild_the_space(space):
    again = get_space(space.name, **space.options())
    assert again.table_layout().layout == space.table_layout().layout
