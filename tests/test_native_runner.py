"""The native network runner: outputs equal the PyTorch module's (BN folded, 1e-4 relative) for the
presets and sampled MnasNet-space architectures, on every ISA this CPU runs."""
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pynas.ir import lower  # noqa: E402
from pynas.native.runner import NativeNetwork  # noqa: E402
from pynas.presets import PRESETS, preset  # noqa: E402
from pynas.space import get_space  # noqa: E402
from pynas.torch_builder import build_torch  # noqa: E402


def _trained_looking(model, seed):
    """Non-trivial BN statistics and affine terms, so folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = 0.5 + torch.rand(m.num_features, generator=g)
            m.bias.data = 0.1 * torch.randn(m.num_features, generator=g)
            m.running_mean = 0.1 * torch.randn(m.num_features, generator=g)
            m.running_var = 0.5 + torch.rand(m.num_features, generator=g)
    return model.eval()


def relative_error(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def check(arch, seed=0, threads=1, fused=True):
    model = _trained_looking(build_torch(arch), seed)
    image = np.random.default_rng(seed).standard_normal((1, 3, arch.resolution, arch.resolution)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(image))[0].numpy()
    got = NativeNetwork(arch, model, threads=threads, fused=fused).run(image)
    assert relative_error(got, want) < 1e-4, str(arch)


@pytest.mark.parametrize("fused", [True, False], ids=["block-steps", "op-steps"])
@pytest.mark.parametrize("name", PRESETS)
def test_presets_match_pytorch(name, fused):
    check(preset(name), fused=fused)


def test_sampled_architectures_match_pytorch():
    """Fused block steps (every op kind of the space inside a block: expand or not, SE, identity and
    pooling shortcuts with and without projection, k 3/5/7, both strides), 1 and 2 threads, and
    the per-op steps."""
    for i, arch in enumerate(get_space("mnasnet").sample(24, seed=77)):
        check(arch, seed=i, threads=1 + i % 2, fused=i % 6 != 5)


@pytest.mark.parametrize("resolution", [33, 97])
def test_odd_resolutions(resolution):
    for i, arch in enumerate(get_space("mnasnet", resolution=resolution).sample(4, seed=resolution)):
        check(arch, seed=i)


def test_two_threads_give_the_same_output():
    arch = preset("mnasnet-a1")
    net1, net2 = NativeNetwork(arch, seed=3), NativeNetwork(arch, seed=3, threads=2)
    image = np.random.default_rng(0).standard_normal((224, 224, 3)).astype(np.float32)
    # Not bitwise: SE blocks pool per row chunk and then add the chunks' sums, so float rounding
    # differs; scale the tolerance to the logits (random weights make some of them ~200).
    one, two = net1.run(image), net2.run(image)
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-5 * np.abs(one).max())


@pytest.mark.parametrize("isa", ["scalar", "avx2"])
def test_lower_isas_match(isa, tmp_path):
    """PYNAS_ISA forces a lower ISA for every kernel: outputs still match PyTorch."""
    from pynas import _core

    if isa not in _core.supported_isas():
        pytest.skip(f"this CPU cannot run {isa}")
    code = ("import sys; sys.path.insert(0, %r); from test_native_runner import check; "
            "from pynas.presets import preset; check(preset('mnasnet-a1').replace(resolution=96)); print('OK')"
            % os.path.dirname(__file__))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env=dict(os.environ, PYNAS_ISA=isa))
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-2000:]


def test_buffers_are_reused():
    net = NativeNetwork("mnasnet-a1")
    every_tensor = sum(4 * op.cout * op.hout * op.wout for op in lower(preset("mnasnet-a1")).ops)
    assert net.network.arena_bytes < every_tensor / 4


def test_bad_input_is_a_clear_error():
    net = NativeNetwork(preset("mnasnet-a1").replace(resolution=32))
    with pytest.raises(ValueError, match=r"input: expected an array of shape \(32, 32, 3\)"):
        net.run(np.zeros((3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="weights: expected 'random'"):
        NativeNetwork("mnasnet-a1", weights="zeros")


def test_step_reading_one_tensor_twice_does_not_alias_buffers():
    """A cn block with identity skip reads its input as conv input and as residual; its buffer
    must be freed once, or two later tensors share it (a bug the sampled test first caught)."""
    from pynas.arch import parse

    check(parse("net_res16_cls10:stem_k3_s1_c40:cn_r1_k3_s1_c40_skip:ds_r1_k3_s1_c40_noskip:head_c32"))


def test_a_single_block_matches_pytorch():
    from pynas.arch import parse
    from pynas.torch_builder import fold_batchnorm

    arch = parse("net_res14_cls10:stem_k3_s1_c112:ir_r1_k3_s1_e6_c112_se0.25:head_c8")
    model = _trained_looking(build_torch(arch), 0)
    x = np.random.default_rng(0).standard_normal((1, 112, 14, 14)).astype(np.float32)
    with torch.no_grad():
        want = fold_batchnorm(model).blocks[0](torch.from_numpy(x))[0].permute(1, 2, 0).numpy()
    got = NativeNetwork(arch, model, segment="s0.0").run(x)
    assert got.shape == (14, 14, 112) and relative_error(got, want) < 1e-4
    with pytest.raises(ValueError, match="segment: expected one of"):
        NativeNetwork(arch, segment="s9.0")
