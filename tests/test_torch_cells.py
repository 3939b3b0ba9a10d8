"""Cell networks built by build_torch (pynas/torch_cells.py) agree with the IR (pynas/ir/cells.py),
counted independently from the modules: MACs from forward hooks on every Conv2d and Linear, params
from module.parameters() (as tests/test_torch_builder.py does for blocks)."""
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from pynas.cell import parse  # noqa: E402
from pynas.ir import lower  # noqa: E402
from pynas.torch_builder import build_torch, fold_batchnorm, randomise_batchnorm  # noqa: E402
from pynas.torch_cells import CellNetwork, FactorizedReduce  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

NB201 = "cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_conv3~0:node_conv3~0_avg3~1:node_skip~0_conv3~1_skip~2"
DARTS_V2 = ("cellnet_res32_cls10:darts_c36_l20:normal_oall:node_sep3~0_sep3~1:node_sep3~0_sep3~1:node_skip~0_sep3~1:"
            "node_skip~0_dil3~2:reduce_oall:node_max3~0_max3~1:node_max3~1_skip~2:node_max3~0_skip~2:node_max3~1_skip~2")


def hook_profile(model: nn.Module, net):
    """A forward pass; the per-layer (in, out, k, stride, dilation, groups, out HxW, MACs) list and output."""
    layers = []

    def record(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k, s, d = module.kernel_size[0], module.stride[0], module.dilation[0]
            h, w = output.shape[2:]
            macs = output.shape[1] * h * w * (module.in_channels // module.groups) * k * k
            layers.append((module.in_channels, module.out_channels, k, s, d, module.groups, (h, w), macs))
        else:
            layers.append((module.in_features, module.out_features, 1, 1, 1, 1, (1, 1),
                           module.in_features * module.out_features))

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model.eval()
        with torch.no_grad():
            output = model(torch.randn(1, net.in_channels, net.resolution, net.resolution))
    finally:
        for handle in handles:
            handle.remove()
    return layers, output


def ir_profile(graph):
    return [(op.cin, op.cout, op.kernel, op.stride, op.dilation, op.groups, (op.hout, op.wout), op.macs)
            if op.kind != "fc" else (op.cin, op.cout, 1, 1, 1, 1, (1, 1), op.macs)
            for op in graph.ops if op.kind in ("conv", "dwconv", "pwconv", "fc")]


def check_against_ir(net):
    graph = lower(net)
    model = build_torch(net)
    assert isinstance(model, CellNetwork)
    layers, output = hook_profile(model, net)
    assert output.shape == (1, net.num_classes)
    assert layers == ir_profile(graph)
    assert sum(m for *_, m in layers) == graph.macs
    assert sum(p.numel() for p in model.parameters()) == graph.params
    pools = sum(isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) for m in model.modules())
    assert pools == sum(op.kind in ("avgpool", "maxpool") for op in graph.ops)
    assert sum(isinstance(m, FactorizedReduce) for m in model.modules()) == sum(op.kind == "crop" for op in graph.ops)


@pytest.mark.parametrize("text", [NB201, DARTS_V2, "cellnet_res16_cls5_in1:nb201_c4_n2:cell_olast:node:node_skip~1:"
                                  "node_conv1~2_avg3~0", "cellnet_res16_cls5:darts_c4_l3:normal_oloose:"
                                  "node_sep5~0_dil3~1:node_skip~2_max3~0:reduce_oall:node_skip~0_avg3~1:"
                                  "node_dil5~2_skip~2:node_sep7~1_max7~0_max5~3_conv3~2"])
def test_networks_match_ir(text):
    check_against_ir(parse(text))


def test_build_torch_takes_the_string_and_keeps_default_init():
    torch.manual_seed(3)
    a = build_torch(NB201)
    torch.manual_seed(3)
    b = build_torch(parse(NB201))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    conv = a.stem[0]
    bound = (1 / (3 * 9)) ** 0.5  # PyTorch's default (kaiming uniform, a = sqrt(5)): U(-1/sqrt(fan_in), ...)
    assert conv.weight.abs().max() <= bound and conv.weight.std() > bound / 3


def test_folded_batchnorm_gives_the_same_outputs():
    for text in (NB201, DARTS_V2.replace("c36_l20", "c8_l5")):
        model = randomise_batchnorm(build_torch(text), seed=1)
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(model(x), fold_batchnorm(model)(x), atol=1e-5)


def test_factorized_reduce_is_dartss():
    fr = FactorizedReduce(4, 6).eval()
    x = torch.randn(1, 4, 8, 8)
    r = torch.relu(x)
    want = fr.bn(torch.cat([fr.conv_1(r), fr.conv_2(r[:, :, 1:, 1:])], 1))
    assert torch.equal(fr(x), want) and fr(x).shape == (1, 6, 4, 4)


def test_nodes_sum_and_cells_concatenate():
    net = parse("cellnet_res8_cls2:darts_c2_l3:normal_oall:node_skip~0_skip~1:node_skip~1_skip~2:"
                "reduce_oall:node_max3~0:node")
    cell = build_torch(net).layers[0].eval()
    s0, s1 = torch.randn(1, 6, 8, 8), torch.randn(1, 6, 8, 8)  # the stem's 3C
    with torch.no_grad():
        p0, p1 = cell.preprocess[0](s0), cell.preprocess[1](s1)
        out = cell(s0, s1)
    assert torch.allclose(out, torch.cat([p0 + p1, p1 + p0 + p1], 1), atol=1e-6)
    reduce = build_torch(net).layers[1].eval()
    with torch.no_grad():
        y = reduce(torch.randn(1, 6, 8, 8), torch.randn(1, 4, 8, 8))  # the stem's, cell 0's (2 nodes x 2)
    assert y.shape == (1, 8, 4, 4) and torch.count_nonzero(y[:, 4:]) == 0  # node 3 has no edge: zeros
