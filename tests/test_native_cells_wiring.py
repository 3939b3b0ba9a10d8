"""The native runner's build of cell networks (pynas/native/runner.py, pynas/native/weights.py),
checked without the C++ steps: the runner builds into a stand-in network that computes each step
as `_core.Network`'s documented contract says (torch.nn.functional in float64); its output equals
the PyTorch module's. tests/test_native_cells.py checks the C++ steps themselves."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from pynas.cell import parse  # noqa: E402
from pynas.native.runner import NativeNetwork  # noqa: E402
from pynas.space import get_space  # noqa: E402
from pynas.torch_builder import build_torch, randomise_batchnorm  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EVERY_OP = ("cellnet_res16_cls7:darts_c4_l3:normal_oall:node_sep3~0_dil5~1:node_max5~0_sep7~2:node:"
            "node_conv1~1_skip~3_max7~4:reduce_oloose:node_skip~0_avg3~1_sep5~1:node_dil3~0_max3~1_conv3~2:"
            "node_conv1~0_sep3~1:node_skip~3_avg3~4")
ACT = {"none": lambda x: x, "re": F.relu}


class StandIn:
    """The builder methods of `_core.Network` the runner calls for cell networks, on 1 x C x H x W
    float64 tensors; `run` takes H x W x C."""

    def __init__(self):
        self.steps, self.shapes = [], []

    def _step(self, fn, shape):
        self.steps.append(fn)
        self.shapes.append(shape)
        return len(self.shapes) - 1

    def _conv(self, x, w, b, stride, pad, groups=1, dilation=1, act="none", residual=-1):
        w, b = torch.from_numpy(np.asarray(w, np.float64)), torch.from_numpy(np.asarray(b, np.float64))
        h = self.shapes[x]

        def fn(t):
            y = ACT[act](F.conv2d(t[x], w, b, stride, pad, dilation, groups))
            return y if residual < 0 else y + t[residual]
        out = F.conv2d(torch.zeros(1, h[2], h[0], h[1], dtype=torch.float64), w, None, stride, pad, dilation, groups)
        return self._step(fn, (out.shape[2], out.shape[3], out.shape[1]))

    def input(self, h, w, c):
        return self._step(None, (h, w, c))

    def conv(self, x, w, b, kernel, stride, act="none", residual=-1):
        return self._conv(x, np.asarray(w).transpose(0, 3, 1, 2), b, stride, kernel // 2, act=act, residual=residual)

    def pointwise(self, x, w, b, act="none", residual=-1, groups=1, shuffle=False):
        assert groups == 1 and not shuffle
        return self._conv(x, np.asarray(w)[:, :, None, None], b, 1, 0, act=act, residual=residual)

    def dwconv(self, x, w, b, stride, act="none"):
        return self.dwconv_dilated(x, w, b, stride, 1, act)

    def dwconv_dilated(self, x, w, b, stride, dilation, act="none"):
        k, c = np.asarray(w).shape[0], np.asarray(w).shape[2]
        return self._conv(x, np.asarray(w).transpose(2, 0, 1)[:, None], b, stride, dilation * (k - 1) // 2, c,
                          dilation, act)

    def act(self, x, act):
        return self._step(lambda t: ACT[act](t[x]), self.shapes[x])

    def pool(self, x, kind, kernel, stride, pad):
        h, w, c = self.shapes[x]
        size = lambda n: (n + 2 * pad - kernel) // stride + 1  # noqa: E731
        if kind == "max":
            return self._step(lambda t: F.max_pool2d(t[x], kernel, stride, pad), (size(h), size(w), c))
        return self._step(lambda t: F.avg_pool2d(t[x], kernel, stride, pad, count_include_pad=False),
                          (size(h), size(w), c))

    def avgpool(self, x, stride):
        return self.pool(x, "avg", 3, stride, 1)

    def add(self, a, b):
        return self.sum([a, b])

    def sum(self, xs):
        return self._step(lambda t: sum(t[i] for i in xs), self.shapes[xs[0]])

    def concat(self, xs):
        h, w, _ = self.shapes[xs[0]]
        return self._step(lambda t: torch.cat([t[i] for i in xs], 1), (h, w, sum(self.shapes[i][2] for i in xs)))

    def crop(self, x):
        h, w, c = self.shapes[x]
        return self._step(lambda t: t[x][:, :, 1:, 1:], (h - 1, w - 1, c))

    def zeros(self, h, w, c):
        return self._step(lambda t: torch.zeros(1, c, h, w, dtype=torch.float64), (h, w, c))

    def affine(self, x, scale, shift):
        s, b = (torch.from_numpy(np.asarray(a, np.float64))[None, :, None, None] for a in (scale, shift))
        return self._step(lambda t: t[x] * s + b, self.shapes[x])

    def gap(self, x):
        return self._step(lambda t: t[x].mean((2, 3), keepdim=True), (1, 1, self.shapes[x][2]))

    def fc(self, x, w, b):
        w, b = torch.from_numpy(np.asarray(w, np.float64)), torch.from_numpy(np.asarray(b, np.float64))
        return self._step(lambda t: F.linear(t[x].flatten(1), w, b)[:, :, None, None], (1, 1, w.shape[0]))

    def shape(self, y):
        return tuple(self.shapes[y])

    def finalize(self, output):
        self.output_id = output

    def run(self, image):
        tensors = [torch.from_numpy(np.asarray(image, np.float64).transpose(2, 0, 1)[None].copy())]
        for fn in self.steps[1:]:
            tensors.append(fn(tensors))
        return tensors[self.output_id][0].numpy().transpose(1, 2, 0)


def check(net, seed=0):
    torch.manual_seed(seed)
    model = randomise_batchnorm(build_torch(net), seed).double()
    image = np.random.default_rng(seed).standard_normal((1, net.in_channels, net.resolution, net.resolution))
    with torch.no_grad():
        want = model(torch.from_numpy(image))[0].numpy()
    for fused in (True, False):
        stand_in = StandIn()
        NativeNetwork(net, model, fused=fused, network=stand_in)
        got = stand_in.run(image[0].transpose(1, 2, 0)).reshape(-1)
        # weights are folded and cast to float32 (what the C++ steps get): 1e-6 of rounding, a wiring
        # mistake is of the order of the outputs
        assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max(), (str(net), fused)


def test_every_op_builds_as_the_module_computes():
    check(parse(EVERY_OP))


def test_nb201_and_sampled_cell_networks_build_as_the_modules_compute():
    nb = get_space("nb201")
    for cell in nb.sample(4, seed=2) + [nb.parse("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")]:
        check(cell.network(channels=4, cells_per_stage=1))
    for name in ("darts", "nasnet", "enas"):
        for net in get_space(name, channels=4, cells=4, resolution=16).sample(2, seed=4):
            check(net)
