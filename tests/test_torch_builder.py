"""The PyTorch builder agrees with the IR, counted independently from the module.

MACs come from forward hooks on every Conv2d and Linear (output elements x input channels per
group x kernel area; in x out for Linear); params from module.parameters(). Same convention as
the IR (tests/test_ir.py docstring).
"""
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from pynas.arch import parse  # noqa: E402
from pynas.ir import lower  # noqa: E402
from pynas.presets import PRESETS, preset  # noqa: E402
from pynas.space import get_space  # noqa: E402
from pynas.torch_builder import Network, build_torch  # noqa: E402


def hook_profile(model: nn.Module, resolution: int):
    """Run a forward pass; return the per-layer (in, out, k, s, groups, out HxW, MACs) list and output."""
    layers = []

    def record(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k, s = module.kernel_size[0], module.stride[0]
            h, w = output.shape[2:]
            macs = output.shape[1] * h * w * (module.in_channels // module.groups) * k * k
            layers.append((module.in_channels, module.out_channels, k, s, module.groups, (h, w), macs))
        else:
            layers.append((module.in_features, module.out_features, 1, 1, 1, (1, 1), module.in_features * module.out_features))

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model.eval()
        with torch.no_grad():
            output = model(torch.randn(1, 3, resolution, resolution))
    finally:
        for handle in handles:
            handle.remove()
    return layers, output


def ir_profile(graph):
    """The same per-layer list from the IR: an SE op is two 1x1 convs on a 1x1 map."""
    layers = []
    for op in graph.ops:
        if op.kind in ("conv", "dwconv", "pwconv"):
            layers.append((op.cin, op.cout, op.kernel, op.stride, op.groups, (op.hout, op.wout), op.macs))
        elif op.kind == "se":
            r = op.se_channels
            layers += [(op.cin, r, 1, 1, 1, (1, 1), op.cin * r), (r, op.cin, 1, 1, 1, (1, 1), r * op.cin)]
        elif op.kind == "fc":
            layers.append((op.cin, op.cout, 1, 1, 1, (1, 1), op.macs))
    return layers


def check_against_ir(arch):
    graph = lower(arch)
    model = build_torch(arch)
    layers, output = hook_profile(model, arch.resolution)
    assert output.shape == (1, arch.num_classes)
    assert sum(m for *_, m in layers) == graph.macs
    assert sum(p.numel() for p in model.parameters()) == graph.params
    assert layers == ir_profile(graph)
    shortcuts = [b.shortcut for b in model.blocks if b.shortcut is not None]
    assert len(shortcuts) == sum(op.kind == "add" for op in graph.ops)
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == sum(op.kind == "avgpool" for op in graph.ops)


@pytest.mark.parametrize("name", PRESETS + ("mobilenetv2-0.75", "mobilenetv2-1.4"))
def test_presets_match_ir(name):
    check_against_ir(preset(name))


def test_two_hundred_sampled_architectures_match_ir():
    torch.manual_seed(0)
    for arch in get_space("mnasnet").sample(200, seed=2024):
        check_against_ir(arch)


@pytest.mark.parametrize("setting", ["imagenet", "cifar100"])
def test_fbnet_architectures_match_ir(setting):
    """Grouped 1x1 convs (groups 2 in the hooks and the IR), shuffles (no MACs, no params) and id
    layers (identity: no layer at all; else a 1x1 conv with the stride)."""
    torch.manual_seed(0)
    space = get_space("fbnet", setting=setting)
    archs = space.sample(8 if setting == "cifar100" else 2, seed=8) + [space.decode([1] * 22), space.decode([8] * 22)]
    for arch in archs:
        check_against_ir(arch)
    grouped = build_torch(space.decode([1] * 22))
    from pynas.torch_builder import ChannelShuffle

    assert sum(isinstance(m, ChannelShuffle) for m in grouped.modules()) == 22
    assert {m.groups for m in grouped.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)} >= {2}
    skips = build_torch(space.decode([8] * 22))
    assert len(skips.blocks) == 22 and sum(isinstance(b.body, nn.Identity) for b in skips.blocks) == 16


def test_channel_shuffle_is_shufflenets():
    from pynas.torch_builder import ChannelShuffle

    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert ChannelShuffle(3)(x).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_grouped_block_is_hwnasbench_convblock():
    """ir g2 computes HW-NAS-Bench's ConvBlock: conv1 (groups 2) + BN + ReLU, shuffle, depthwise +
    BN + ReLU, conv3 (groups 2) + BN, residual when in == out and stride 1; written out here."""
    import torch.nn.functional as F

    arch = parse("net_res16_cls10:stem_k3_s1_c8:ir_r1_k5_s1_e1_c8_g2:head_c16")
    block = build_torch(arch).blocks[0].eval()
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    conv1, bn1 = block.body[0][0], block.body[0][1]
    dw, bn2, conv3, bn3 = block.body[2][0], block.body[2][1], block.body[3][0], block.body[3][1]
    x = torch.randn(1, 8, 16, 16)

    def bn(m, y):
        return F.batch_norm(y, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    y = F.relu(bn(bn1, F.conv2d(x, conv1.weight, groups=2)))
    y = y.view(1, 2, 4, 16, 16).transpose(1, 2).reshape(1, 8, 16, 16)
    y = F.relu(bn(bn2, F.conv2d(y, dw.weight, stride=1, padding=2, groups=8)))
    y = bn(bn3, F.conv2d(y, conv3.weight, groups=2)) + x
    with torch.no_grad():
        torch.testing.assert_close(block(x), y)


@pytest.mark.parametrize("resolution", [97, 33])
def test_odd_resolutions(resolution):
    for arch in get_space("mnasnet", resolution=resolution).sample(5, seed=resolution):
        check_against_ir(arch)


def test_blocks_are_flat_and_modules_as_in_the_papers():
    model = build_torch("mobilenetv3-large")
    assert isinstance(model, Network)
    assert len(model.blocks) == sum(s.repeats for s in model.arch.stages)
    acts = {type(m) for m in model.modules()}
    assert {nn.Hardswish, nn.ReLU, nn.Hardsigmoid} <= acts and nn.Sigmoid not in acts
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0
    assert isinstance(model.blocks[0].shortcut, nn.Identity)  # V3's first block has a residual
    a1 = build_torch(preset("mnasnet-a1"))
    assert {nn.ReLU, nn.Sigmoid} <= {type(m) for m in a1.modules()}


def test_residual_is_really_added():
    arch = parse("net_res16_cls4:stem_k3_s1_c8:ds_r1_k3_s1_c8:head_c8")
    model = build_torch(arch).eval()
    x = torch.randn(1, 8, 16, 16)
    block = model.blocks[0]
    with torch.no_grad():
        assert torch.allclose(block(x), block.body(x) + x)


def test_fold_batchnorm_keeps_outputs():
    from pynas.torch_builder import fold_batchnorm

    model = build_torch(preset("mnasnet-a1").replace(resolution=64)).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


def test_convs_get_he_init_by_their_true_fan_out():
    # A depthwise 5x5 of 480 channels: each input reaches 25 outputs, not 480 x 25 (torch's count).
    torch.manual_seed(0)
    net = build_torch("net_res32_cls10:stem_k3_s2_c16:ir_r1_k5_s1_e6_c80_noskip:ir_r1_k3_s2_e6_c80:head_c128")
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    depthwise = [m for m in convs if m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    for m in convs:
        k = m.kernel_size[0] * m.kernel_size[1]
        want = (2.0 / (m.out_channels // m.groups * k)) ** 0.5
        got = float(m.weight.detach().std())
        assert abs(got / want - 1) < 0.15, (m, got, want)
