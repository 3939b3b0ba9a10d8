"""Cell networks on the native runner (pynas/native/runner.py, cpp/network/cell_steps.cc): outputs
equal the PyTorch module's (BN randomised and folded, 1e-4 relative) for NAS-Bench-201 networks and
sampled networks of the darts, nasnet and enas spaces, every op of the cell language included."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pynas import _core  # noqa: E402
from pynas.cell import OPS, parse  # noqa: E402
from pynas.native.runner import NativeNetwork  # noqa: E402
from pynas.space import get_space  # noqa: E402
from pynas.torch_builder import build_torch, randomise_batchnorm  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.skipif(not hasattr(_core.Network, "sum"), reason="pynas._core was built before the cell "
                                 "steps (cpp/network/cell_steps.cc): rebuild it (scripts/dev-build.sh)")]

NB201 = "cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_conv3~0:node_conv3~0_avg3~1:node_skip~0_conv3~1_skip~2"
# Every op of the language, from inputs (stride 2 in the reduction cell) and from nodes, a three-edge
# node, an empty node read by a later one, loose ends.
EVERY_OP = ("cellnet_res16_cls7:darts_c4_l3:normal_oall:node_sep3~0_dil5~1:node_max5~0_sep7~2:node:"
            "node_conv1~1_skip~3_max7~4:reduce_oloose:node_skip~0_avg3~1_sep5~1:node_dil3~0_max3~1_conv3~2:"
            "node_conv1~0_sep3~1:node_skip~3_avg3~4")


def relative_error(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def check(net, seed=0, threads=1):
    torch.manual_seed(seed)
    model = randomise_batchnorm(build_torch(net), seed)
    image = np.random.default_rng(seed).standard_normal((1, net.in_channels, net.resolution, net.resolution))
    image = image.astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(image))[0].numpy()
    for fused in (True, False):
        got = NativeNetwork(net, model, threads=threads, fused=fused).run(image)
        assert relative_error(got, want) < 1e-4, (str(net), fused)


def test_every_op_matches_pytorch():
    net = parse(EVERY_OP)
    assert {e.op for g in net.genotypes for n in g.nodes for e in n.edges} == set(OPS)
    check(net)
    check(net, seed=1, threads=2)


def test_nb201_networks_match_pytorch():
    check(parse(NB201))
    nb = get_space("nb201")
    for cell in nb.sample(6, seed=3) + [nb.parse("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")]:
        check(cell.network(channels=8, cells_per_stage=2))


@pytest.mark.parametrize("name", ["darts", "nasnet", "enas"])
def test_sampled_cell_space_networks_match_pytorch(name):
    for net in get_space(name, channels=4, cells=5, resolution=16).sample(3, seed=11):
        check(net)


def test_a_cell_segment_runs_alone():
    """A cell whose two inputs are one tensor (the first, reading the stem twice) builds alone; one
    reading two tensors is refused by name."""
    net = parse(EVERY_OP)
    model = randomise_batchnorm(build_torch(net), 0)
    x = np.random.default_rng(0).standard_normal((1, 12, 16, 16)).astype(np.float32)  # the stem's 3C
    with torch.no_grad():
        want = model.layers[0](torch.from_numpy(x), torch.from_numpy(x))[0].numpy().transpose(1, 2, 0)
    got = NativeNetwork(net, model, segment="c0").run(x)
    assert got.shape == (16, 16, 16) and relative_error(got, want) < 1e-4
    with pytest.raises(ValueError, match="segment c1 reads 2 tensors"):
        NativeNetwork(net, model, segment="c1")
