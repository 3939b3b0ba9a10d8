"""Folded weights in native layouts reproduce the PyTorch module (float64 graph interpreter)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pynas.arch import parse  # noqa: E402
from pynas.ir import lower  # noqa: E402
from pynas.native.interpreter import run_reference  # noqa: E402
from pynas.native.weights import from_torch, random_weights  # noqa: E402
from pynas.presets import preset  # noqa: E402
from pynas.space import get_space  # noqa: E402
from pynas.torch_builder import build_torch, randomise_batchnorm  # noqa: E402




def _check(arch, seed=0):
    model = randomise_batchnorm(build_torch(arch), seed).double()
    graph = lower(arch)
    image = np.random.default_rng(seed).standard_normal((arch.resolution, arch.resolution, 3))
    with torch.no_grad():
        want = model(torch.tensor(image).permute(2, 0, 1)[None])[0].numpy()
    got = run_reference(graph, from_torch(graph, model, dtype=np.float64), image)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("name", ["mnasnet-a1", "mobilenetv3-large"])
def test_presets_at_low_resolution(name):
    _check(preset(name).replace(resolution=64))


def test_sampled_architectures():
    for i, arch in enumerate(get_space("mnasnet", resolution=48).sample(12, seed=4)):
        _check(arch, seed=i)


def test_fbnet_architectures():
    """Grouped 1x1 weights (Cout x Cin/groups), the shuffle and id layers, through the interpreter."""
    space = get_space("fbnet", setting="cifar100", resolution=16)
    for i, arch in enumerate(space.sample(3, seed=2) + [space.decode([1] * 22), space.decode([8] * 22)]):
        _check(arch, seed=i)
    graph = lower(space.decode([1] * 22))
    shapes = {graph.ops[i].name: w.weights.shape for i, w in random_weights(graph).items()}
    assert shapes["s1.0.expand"] == (16, 8) and shapes["s1.0.project"] == (24, 8)


def test_layouts():
    arch = parse("net_res16_cls5:stem_k3_s2_c8:ir_r1_k5_s1_e2_c8_se0.5:head_c16")
    graph = lower(arch)
    weights = random_weights(graph, seed=1)
    shapes = {graph.ops[i].name: (w.weights.shape, w.bias.shape) for i, w in weights.items()}
    assert shapes["stem"] == ((8, 3, 3, 3), (8,))
    assert shapes["s0.0.expand"] == ((16, 8), (16,))
    assert shapes["s0.0.dw"] == ((5, 5, 16), (16,))
    assert shapes["s0.0.se"] == ((4, 16), (4,))
    assert shapes["classifier"] == ((5, 16), (5,))
    assert all(w.weights.dtype == np.float32 and w.weights.flags.c_contiguous for w in weights.values())


def test_mismatched_model_is_an_error():
    graph = lower(preset("mnasnet-a1").replace(resolution=32))
    with pytest.raises(ValueError, match="model: expected"):
        from_torch(graph, build_torch(preset("mnasnet-b1")))


def test_image_shape_is_checked():
    graph = lower(preset("mnasnet-a1").replace(resolution=32))
    with pytest.raises(ValueError, match=r"image: expected shape \(32, 32, 3\)"):
        run_reference(graph, random_weights(graph), np.zeros((3, 32, 32)))
