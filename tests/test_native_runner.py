"""The native network runner: outputs equal the PyTorch module's (BN folded, 1e-4 relative) for the
presets and sampled MnasNet-space architectures, on every ISA this CPU runs."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pynas.ir import lower  # noqa: E402
from pynas.native import memory  # noqa: E402
from pynas.native.runner import MAX_THREADS, NativeNetwork  # noqa: E402
from pynas.presets import PRESETS, preset  # noqa: E402
from pynas.space import get_space  # noqa: E402
from pynas.torch_builder import build_torch, randomise_batchnorm  # noqa: E402




def relative_error(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def check(arch, seed=0, threads=1, fused=True):
    # Seeded: the weights were whatever torch's global generator held after the tests before (they
    # varied from run to run), and so did the outcome below.
    torch.manual_seed(seed)
    model = randomise_batchnorm(build_torch(arch), seed)
    image = np.random.default_rng(seed).standard_normal((1, 3, arch.resolution, arch.resolution)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(image))[0].numpy()
    got = NativeNetwork(arch, model, threads=threads, fused=fused).run(image)
    if relative_error(got, want) >= 1e-4:
        # Deep networks with random weights and BN statistics amplify float32 rounding: for some
        # draws PyTorch's own float32 logits lie 1.4-1.9e-4 from a float64 run (Zen 5). Then native
        # must be about as close to the float64 run as PyTorch's float32 is.
        with torch.no_grad():
            exact = model.double()(torch.from_numpy(image).double())[0].numpy()
        assert relative_error(got, exact) <= 2 * relative_error(want, exact), str(arch)


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
    """PYNAS_ISA forces a lower ISA for every kernel: outputs still match PyTorch, at one thread and
    at two (the head's few rows then split by the ISA's own panel width, the 3 x 3 blocks unfused)."""
    from pynas import _core

    if isa not in _core.supported_isas():
        pytest.skip(f"this CPU cannot run {isa}")
    code = ("import sys; sys.path.insert(0, %r); from test_native_runner import check; "
            "from pynas.presets import preset; a = preset('mnasnet-a1').replace(resolution=96); check(a); "
            "check(a, threads=2); print('OK')"
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


def check_block_alone(text: str, channels: int):
    """Segment s0.0 of `text` (a 14x14 input of `channels`) built alone equals its PyTorch block."""
    from pynas.arch import parse
    from pynas.torch_builder import fold_batchnorm

    arch = parse(text)
    model = randomise_batchnorm(build_torch(arch), 0)
    x = np.random.default_rng(0).standard_normal((1, channels, 14, 14)).astype(np.float32)
    with torch.no_grad():
        want = fold_batchnorm(model).blocks[0](torch.from_numpy(x))[0].permute(1, 2, 0).numpy()
    got = NativeNetwork(arch, model, segment="s0.0").run(x)
    assert got.shape == (14, 14, channels) and relative_error(got, want) < 1e-4
    return arch


def test_a_single_block_matches_pytorch():
    arch = check_block_alone("net_res14_cls10:stem_k3_s1_c112:ir_r1_k3_s1_e6_c112_se0.25:head_c8", 112)
    with pytest.raises(ValueError, match="segment: expected one of"):
        NativeNetwork(arch, segment="s9.0")


# ---------------------------------------------------------------------------------------------
# FBNet: grouped 1x1 convs with the channel shuffle (op-level steps), id (skip) layers


@pytest.mark.parametrize("setting", ["cifar100", "imagenet"])
def test_fbnet_architectures_match_pytorch(setting):
    """Sampled FBNet networks, all-g2 and all-skip ones: block steps for ungrouped blocks, op-level
    steps (grouped pointwise writing shuffled, depthwise, grouped pointwise + residual) for grouped
    ones; 1 and 2 threads; and everything per op."""
    space = get_space("fbnet", setting=setting)
    archs = space.sample(6 if setting == "cifar100" else 2, seed=31) + [space.decode([1] * 22), space.decode([8] * 22)]
    for i, arch in enumerate(archs):
        check(arch, seed=i, threads=1 + i % 2, fused=i % 3 != 2)


def test_fbnet_at_other_resolutions():
    for i, arch in enumerate(get_space("fbnet", resolution=45).sample(2, seed=3)):
        check(arch, seed=i, threads=2)


def test_grouped_blocks_are_op_steps_and_the_rest_block_steps():
    from pynas.arch import parse

    arch = parse("net_res16_cls10:stem_k3_s1_c16:ir_r1_k3_s1_e1_c16_g2:ir_r1_k5_s2_e6_c24:ir_r1_k3_s1_e1_c24_g2:"
                 "id_r1_s2_c32:id_r1_s1_c32:head_c64")
    steps = NativeNetwork(arch).describe()
    assert len(steps) == 1 + 3 + 1 + 3 + 1 + 3  # stem; g2 block; fused block; g2 block; skip conv; head
    assert "[g2+shuffle]" in steps[1] and steps[2].startswith("dwconv_") and steps[3].split()[0].endswith("[g2]")
    assert steps[4].startswith("mbconv[")
    assert steps[8].startswith("conv_") and steps[8].endswith(" 4x4x32")  # the id layer's strided 1x1 conv
    assert sum(s.startswith("mbconv[") for s in steps) == 1
    check(arch, seed=5)
    check(arch, seed=6, fused=False)


def test_grouped_block_is_never_given_to_the_block_step():
    """The block step has no groups: handed a grouped block kernel it refuses, never runs it wrong."""
    from pynas.arch import parse
    from pynas.ir import fuse

    net = NativeNetwork(parse("net_res8_cls10:stem_k3_s1_c8:ir_r1_k3_s1_e1_c8_g2:head_c16"))
    kernel = next(k for k in fuse(net.graph, blocks=True) if k.kind == "mbconv")
    fresh = _core_network_with_input(kernel.first)
    net.network = fresh
    with pytest.raises(ValueError, match="block s0.0: the fused block step has no grouped 1x1 convs"):
        net._block(kernel, 0, {}, {})


def _core_network_with_input(op):
    from pynas import _core

    n = _core.Network(1)
    n.input(op.hin, op.win, op.cin)
    return n


def test_grouped_segment_runs_alone():
    check_block_alone("net_res14_cls10:stem_k3_s1_c24:ir_r1_k5_s1_e1_c24_g2:head_c8", 24)


@pytest.mark.parametrize("groups, shuffle, residual, threads, hw", [
    (2, True, False, 1, (7, 9)), (2, True, True, 2, (13, 11)), (2, False, True, 2, (5, 5)),
    (3, True, True, 1, (3, 17)), (4, False, False, 2, (1, 1)), (2, True, False, 2, (40, 40)),
])
def test_network_grouped_pointwise_and_shuffle_steps(groups, shuffle, residual, threads, hw):
    """Network.pointwise(groups, shuffle) and Network.shuffle against the float64 reference: M around
    tiles and the shuffle's row blocks, residual after the shuffle, split over threads."""
    from pynas import _core
    from pynas.native import reference

    rng = np.random.default_rng(groups * 10 + threads)
    h, w = hw
    cin, cout = 12 * groups, 8 * groups
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    wt = rng.standard_normal((cout, cin // groups)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    n = _core.Network(threads)
    t = n.input(h, w, cin)
    res = n.pointwise(t, np.ones((cout, cin), np.float32), np.zeros(cout, np.float32)) if residual else -1
    y = n.pointwise(t, wt, b, "re", res, groups=groups, shuffle=shuffle)
    z = n.shuffle(y, groups)
    n.finalize(z)
    want = reference.pointwise(x, wt, b, "re", groups=groups)
    if shuffle:
        want = reference.channel_shuffle(want, groups)
    if residual:
        want = want + reference.pointwise(x, np.ones((cout, cin)), np.zeros(cout))
    want = reference.channel_shuffle(want, groups)
    np.testing.assert_allclose(n.run(x), want, rtol=1e-5, atol=1e-4)


def test_network_grouped_pointwise_errors():
    from pynas import _core

    n = _core.Network(1)
    t = n.input(4, 4, 6)
    with pytest.raises(ValueError, match=r"weights: expected Cout x 3 \(Cin / groups\)"):
        n.pointwise(t, np.zeros((4, 6), np.float32), np.zeros(4, np.float32), groups=2)
    with pytest.raises(ValueError, match="groups: expected a divisor of Cin = 6, got 4"):
        n.pointwise(t, np.zeros((4, 1), np.float32), np.zeros(4, np.float32), groups=4)
    with pytest.raises(ValueError, match="pointwise groups: expected a divisor of Cin = 6 and Cout = 5, got 2"):
        n.pointwise(t, np.zeros((5, 3), np.float32), np.zeros(5, np.float32), groups=2)
    with pytest.raises(ValueError, match="a channel shuffle needs groups > 1"):
        n.pointwise(t, np.zeros((4, 6), np.float32), np.zeros(4, np.float32), shuffle=True)
    with pytest.raises(ValueError, match="shuffle groups: expected a divisor > 1 of C = 6, got 4"):
        n.shuffle(t, 4)
    with pytest.raises(ValueError, match="shuffle groups"):
        n.shuffle(t, 1)


@pytest.mark.parametrize("isa", ["scalar", "avx2"])
def test_fbnet_on_lower_isas(isa, tmp_path):
    from pynas import _core

    if isa not in _core.supported_isas():
        pytest.skip(f"this CPU cannot run {isa}")
    code = ("import sys; sys.path.insert(0, %r); from test_native_runner import check; "
            "from pynas.space import FBNetSpace; s = FBNetSpace('cifar100'); "
            "[check(a, seed=i) for i, a in enumerate([s.decode([1] * 22), s.sample(1, seed=4)[0]])]; print('OK')"
            % os.path.dirname(__file__))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env=dict(os.environ, PYNAS_ISA=isa))
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# Thread counts: bounded, checked before any thread starts; a thread the system refuses is an error


def _python(code: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter with a timeout, so a hang fails the test instead of the suite."""
    # -P: never the source tree of the working directory (it has no compiled _core), the installed pynas.
    return subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=timeout, **kwargs)


def test_threads_over_the_bound_fail_at_once():
    """Regression: `pynas run --threads 1000` hung in the thread pool's constructor. A count over
    MAX_THREADS is now a ValueError from NativeNetwork and from _core.Network before any thread
    starts, within a second (in a subprocess: a hang would time out, not stop the suite)."""
    code = """if True:
        import time
        from pynas import _core
        from pynas.native.runner import NativeNetwork
        for make in (lambda: NativeNetwork("mnasnet-a1", threads=1000), lambda: _core.Network(1000)):
            start = time.perf_counter()
            try:
                make()
            except ValueError as error:
                print(f"{time.perf_counter() - start:.3f} {error}")
    """
    done = _python(code, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    for line in lines:
        seconds, message = line.split(" ", 1)
        assert message == f"threads: expected an integer in 1..{MAX_THREADS}, got 1000"
        assert float(seconds) < 1.0


@pytest.mark.parametrize("threads", [0, -1, MAX_THREADS + 1, 1000, True, 2.0, "4", None])
def test_thread_counts_outside_the_bound_are_value_errors_naming_field_and_range(threads):
    from pynas.profiling.backends import Backend

    message = rf"^threads: expected an integer in 1\.\.{MAX_THREADS}, got {re.escape(repr(threads))}$"
    with pytest.raises(ValueError, match=message):
        NativeNetwork("mnasnet-a1", threads=threads)
    with pytest.raises(ValueError, match=message):
        Backend("native", threads=threads)


def test_thread_bound_edges():
    """1 and MAX_THREADS build and run (the same logits up to rounding); MAX_THREADS + 1 and 0 do
    not, in C++ either; the bound is C++'s kMaxThreads, one constant for every caller."""
    from pynas import _core

    assert MAX_THREADS == _core.MAX_THREADS == 256
    arch = preset("mnasnet-a1").replace(resolution=64)
    image = np.random.default_rng(0).standard_normal((64, 64, 3)).astype(np.float32)
    one = NativeNetwork(arch, seed=1, threads=1).run(image)
    most = NativeNetwork(arch, seed=1, threads=MAX_THREADS).run(image)
    np.testing.assert_allclose(most, one, rtol=1e-5, atol=1e-5 * np.abs(one).max())
    for threads in (0, MAX_THREADS + 1):
        with pytest.raises(ValueError, match=rf"^threads: expected an integer in 1\.\.{MAX_THREADS}, got {threads}$"):
            _core.Network(threads)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmSize from /proc/self/status")
def test_a_thread_the_system_refuses_is_an_error_not_a_hang():
    """Regression, the hang's root cause: when the OS refused a thread part-way (here: an
    address-space limit just above what the process uses, no room for 256 thread stacks), the
    pool's constructor unwound with its started workers still waiting on its condition variable;
    glibc's pthread_cond_destroy then waited for them forever (and joinable std::threads would have
    ended the process). Now they are joined, _core.ThreadStartError (a RuntimeError) says which
    thread of how many failed in one line, no thread is left over and the process goes on."""
    code = """if True:
        import os, resource
        from pynas import _core
        def tasks():
            return len(os.listdir("/proc/self/task"))
        vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        before = tasks()
        resource.setrlimit(resource.RLIMIT_AS, (vm + 64 * 2**20, hard))
        try:
            _core.Network(_core.MAX_THREADS)
        except _core.ThreadStartError as error:
            print("refused:", error)
        else:
            print("started all")
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        print("tasks", before, tasks())
        _core.Network(2)
        print("ok")
    """
    done = _python(code, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    refused, tasks, ok = done.stdout.splitlines()
    assert issubclass(__import__("pynas")._core.ThreadStartError, RuntimeError)
    assert re.fullmatch(rf"refused: threads: could not start thread (\d+) of {MAX_THREADS} \(.+; the \d+ started were "
                        r"joined\): expected a count this system can start", refused), refused
    _, before, after = tasks.split()
    assert before == after, tasks
    assert ok == "ok"


# ---------------------------------------------------------------------------------------------
# Memory: a network that cannot fit is refused before anything is allocated

# In range (every size within pynas.arch's limits), but 4096 x 4096 x 16384 floats per activation: 1 TiB.
TOO_BIG = "net_res4096_cls1000:stem_k3_s1_c16384:ds_r1_k3_s1_c16384:head_c16384"


def test_a_network_that_cannot_fit_is_refused_before_allocating():
    """Regression: `pynas run` at a resolution whose activations do not fit died of MemoryError
    part-way (after drawing the weights). Now the IR's estimate is checked against the memory
    available first: a ValueError naming the resolution, the estimate and the memory, at once."""
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError) as error:
        NativeNetwork(TOO_BIG)
    assert time.perf_counter() - start < 2  # drawing the 2 GiB of weights alone takes longer
    message = str(error.value)
    assert "\n" not in message
    assert re.fullmatch(r"resolution: 4096 x 4096 needs an estimated \d+\.\d\d GiB \(activations \d+\.\d\d GiB \+ "
                        r"3 x \d+\.\d\d GiB of weights\), but \d+\.\d\d GiB of memory is available; expected a "
                        r"network that fits \(a lower resolution, fewer channels\)", message), message


def test_the_memory_check_compares_the_estimate_with_what_is_available(monkeypatch):
    arch = preset("mnasnet-a1")
    graph = lower(arch)
    need = memory.estimate(graph.ops, graph.ops, weight_copies=3).total
    monkeypatch.setattr(memory, "available_bytes", lambda: need - 1)
    with pytest.raises(ValueError, match=r"^resolution: 224 x 224 needs an estimated .* of memory is available"):
        NativeNetwork(arch)
    # Given float32 weights: two copies (theirs and the packed one), not three.
    weights = memory.estimate(graph.ops, graph.ops, weight_copies=2).total
    from pynas.native.weights import random_weights

    NativeNetwork(arch, weights=random_weights(graph))
    monkeypatch.setattr(memory, "available_bytes", lambda: weights - 1)
    with pytest.raises(ValueError, match="needs an estimated"):
        NativeNetwork(arch, weights=random_weights(graph))
    monkeypatch.setattr(memory, "available_bytes", lambda: need)
    NativeNetwork(arch)
    monkeypatch.setattr(memory, "available_bytes", lambda: None)  # the OS does not say: not checked
    NativeNetwork(arch)


def test_a_segment_is_checked_with_its_own_activations(monkeypatch):
    """One segment's activations, not the network's (its weights are drawn for the whole network)."""
    from pynas.ir.segments import segment_of

    arch = preset("mnasnet-a1").replace(resolution=512)
    graph = lower(arch)
    whole = memory.estimate(graph.ops, graph.ops, weight_copies=3).total
    alone = memory.estimate([op for op in graph.ops if segment_of(op) == "head"], graph.ops, weight_copies=3).total
    assert alone < whole
    monkeypatch.setattr(memory, "available_bytes", lambda: alone)
    NativeNetwork(arch, segment="head")
    with pytest.raises(ValueError, match="resolution: 512 x 512 needs an estimated"):
        NativeNetwork(arch)


def test_an_op_list_for_another_device_is_not_checked_against_this_one(monkeypatch):
    """Recording the steps for pynas-profile allocates nothing here: no memory check."""
    from pynas.profiling.oplist import NetworkRecorder

    monkeypatch.setattr(memory, "available_bytes", lambda: 0)
    NativeNetwork("mnasnet-a1", weights="shapes", network=NetworkRecorder())


@pytest.mark.parametrize("name", ["mnasnet-a1", "mobilenetv3-large"])
def test_the_activation_estimate_covers_the_runners_arena(name):
    """The estimate is what the op-level runner allocates (within a few percent) and at least what
    the fused one does: it refuses no network the runner could build in the memory available by
    much, and lets none through that would need more."""
    arch = preset(name).replace(resolution=320)
    estimate = memory.peak_activation_bytes(lower(arch).ops)
    for fused in (True, False):
        arena = NativeNetwork(arch, fused=fused).network.arena_bytes
        assert arena <= 1.05 * estimate, (fused, arena, estimate)
    assert NativeNetwork(arch, fused=False).network.arena_bytes >= 0.8 * estimate


def test_grey_input_architectures_match_pytorch():
    """in1 (one input channel, Fashion-MNIST's grey images) through the IR, the native stem and PyTorch."""
    space = get_space("mnasnet", resolution=28, num_classes=10, in_channels=1)
    for i, arch in enumerate(space.sample(3, seed=5)):
        assert arch.in_channels == 1 and lower(arch).ops[0].cin == 1
        model = randomise_batchnorm(build_torch(arch), i)
        image = np.random.default_rng(i).standard_normal((1, 1, 28, 28)).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(image))[0].numpy()
        assert relative_error(NativeNetwork(arch, model, threads=1).run(image), want) < 1e-4


@pytest.mark.parametrize("name, fused", [("mnasnet-a1", True), ("mnasnet-a1", False), ("mobilenetv2-1.0", True)])
def test_profile_times_every_step_and_prices_each_kernel_once(name, fused):
    net = NativeNetwork(str(preset(name)).replace("net_res224", "net_res64", 1), fused=fused)
    image = np.random.default_rng(0).standard_normal((64, 64, 3)).astype(np.float32)
    steps = net.profile(image, 3)
    assert [s["step"] for s in steps] == net.describe()
    assert len(net.step_kernels) == len(steps)
    assert sum(s["macs"] for s in steps) == net.graph.macs
    assert all(s["ms"] > 0 for s in steps)
    seconds = net.network.profile(image, 2)
    assert len(seconds) == 2 and all(len(run) == len(steps) for run in seconds)
    with pytest.raises(ValueError, match="runs: expected >= 1, got 0"):
        net.network.profile(image, 0)


def test_profile_counts_a_blocks_extra_steps_with_its_kernel():
    # A pooling shortcut adds a pool and a 1x1 step to its block's kernel, and g2 blocks run as op
    # steps: every step still has its kernel, each kernel's MACs are counted once.
    net = NativeNetwork("net_res32_cls10:stem_k3_s1_c16:ir_r1_k3_s2_e6_c24_poolskip:ir_r1_k3_s1_e1_c24_g2:head_c64")
    image = np.random.default_rng(0).standard_normal((32, 32, 3)).astype(np.float32)
    steps = net.profile(image, 2)
    assert len(steps) == len(net.describe()) == len(net.step_kernels) == 10
    assert [s["kernel"] for s in steps[1:4]] == ["s0.0"] * 3
    assert steps[1]["macs"] == steps[2]["macs"] == 0 and steps[3]["step"].startswith("mbconv[")
    assert steps[3]["macs"] == sum(op.macs for op in net.graph.ops if op.block == "s0.0")
    assert sum(s["macs"] for s in steps) == net.graph.macs
    image = np.random.default_rng(0).standard_normal((32, 32, 3)).astype(np.float32)
    steps = net.profile(image, 2)
    assert len(steps) == len(net.describe()) == len(net.step_kernels)
    assert sum(s["macs"] for s in steps) == net.graph.macs


def test_weight_bound_blocks_run_in_one_band():
    # MnasNet-A1's 7x7 blocks hold more weights than activations: every band would stream all of
    # them again, so they run as one band; the 56x56 blocks, whose activations outgrow L2, still split.
    bands = [int(re.search(r"\] band(\d+) ", step).group(1)) for step in NativeNetwork("mnasnet-a1").describe()
             if step.startswith("mbconv[")]
    assert bands[-3:] == [7, 7, 7]  # (the stride-2 block before them reads 14x14 and splits)
    assert bands[1] < 56 and bands[2] < 56


def test_spinning_pool_runs_many_short_steps_and_stops_cleanly():
    # The pool's threads spin between steps before they block (thread_pool.h): hundreds of short
    # parallel steps give the same output as one thread, and pools destroyed while their workers
    # spin (or sleep) stop at once, with more threads than chunks.
    arch = "net_res16_cls10:stem_k3_s1_c16:ir_r2_k3_s1_e6_c16_se0.25:ir_r1_k5_s2_e3_c24:head_c32"
    image = np.random.default_rng(0).standard_normal((16, 16, 3)).astype(np.float32)
    expected = NativeNetwork(arch, threads=1).run(image)
    for threads in (2, 3, 8):
        net = NativeNetwork(arch, threads=threads)
        for _ in range(200):  # SE pools per row chunk: not bitwise (test_two_threads_give_the_same_output)
            np.testing.assert_allclose(net.run(image), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    for _ in range(30):
        NativeNetwork(arch, threads=4).run(image)


def test_blocks_too_small_to_split_over_the_threads_run_as_op_steps():
    """At two threads MnasNet-A1's 7 x 7 blocks (7 output rows: fewer than MIN_BLOCK_ROWS_PER_THREAD
    per thread) are op steps, its 14 x 14 blocks stay fused; at one thread every block is fused.
    Outputs match PyTorch either way (test_sampled_architectures_match_pytorch: 2 threads too)."""
    from pynas.native.runner import MIN_BLOCK_ROWS_PER_THREAD

    assert MIN_BLOCK_ROWS_PER_THREAD == 4
    one = NativeNetwork("mnasnet-a1", threads=1).network.describe()
    two = NativeNetwork("mnasnet-a1", threads=2).network.describe()
    def blocks(steps, size):
        return [s for s in steps if s.startswith("mbconv[") and re.search(rf" {size}x{size}x\d+$", s)]

    assert len(blocks(one, 7)) == 4 and len(blocks(two, 7)) == 0
    assert len(blocks(one, 14)) == len(blocks(two, 14)) == 6
    assert sum(s.startswith("se_") and " 7x7x" in s for s in two) == 3  # the three SE blocks' SE steps
    check(preset("mnasnet-a1"), seed=5, threads=2)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("hw, cin, cout, residual", [
    ((7, 7), 320, 1280, False), ((7, 7), 160, 40, True), ((1, 1), 17, 1000, False), ((3, 5), 24, 33, True),
    ((7, 7), 96, 8, False), ((7, 7), 960, 160, True), ((9, 11), 24, 96, False),
])
def test_network_pointwise_of_few_rows_splits_the_channels_over_threads(threads, hw, cin, cout, residual):
    """Under 128 rows the threads split the output channels in whole panels, or the rows where the
    panels would split unevenly (N = 160: 5 panels of 32; N = 96 on 3 threads): outputs equal one
    thread's and the float64 reference, with the residual and activation, any panel remainder."""
    from pynas import _core
    from pynas.native import reference

    rng = np.random.default_rng(cout + threads)
    h, w = hw
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    wt = rng.standard_normal((cout, cin)).astype(np.float32) / np.sqrt(cin)
    b = rng.standard_normal(cout).astype(np.float32)

    def run(n_threads):
        n = _core.Network(n_threads)
        t = n.input(h, w, cin)
        res = n.pointwise(t, np.ones((cout, cin), np.float32), np.zeros(cout, np.float32)) if residual else -1
        n.finalize(n.pointwise(t, wt, b, "re", res))
        return n.run(x)

    want = reference.pointwise(x, wt, b, "re")
    if residual:
        want = want + reference.pointwise(x, np.ones((cout, cin)), np.zeros(cout))
    got = run(threads)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(got, run(1))  # each output channel is computed the same way


@pytest.mark.parametrize("cout", [10, 64, 65, 1000])
def test_network_fc_splits_its_channels_over_threads(cout):
    from pynas import _core

    rng = np.random.default_rng(cout)
    cin = 1280
    x = rng.standard_normal((1, 1, cin)).astype(np.float32)
    wt = rng.standard_normal((cout, cin)).astype(np.float32) / np.sqrt(cin)
    b = rng.standard_normal(cout).astype(np.float32)
    outs = []
    for threads in (1, 2, 3):
        n = _core.Network(threads)
        n.finalize(n.fc(n.input(1, 1, cin), wt, b, "none"))
        outs.append(n.run(x).reshape(-1))
    np.testing.assert_allclose(outs[0], wt.astype(np.float64) @ x.reshape(-1) + b, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(outs[1], outs[0])
    np.testing.assert_array_equal(outs[2], outs[0])


@pytest.mark.parametrize("hw", [(7, 7), (1, 1), (28, 5)])
def test_network_se_step_splits_its_rows_over_threads(hw):
    """An SE op step at several threads (each thread pools its rows, one computes the gate, each
    scales its rows) equals numpy's SE and the one-thread step."""
    from pynas import _core

    rng = np.random.default_rng(hw[0])
    h, w = hw
    c, r = 96, 24
    x = rng.standard_normal((h, w, c)).astype(np.float32)
    wr, br = rng.standard_normal((r, c)).astype(np.float32) / np.sqrt(c), rng.standard_normal(r).astype(np.float32)
    we, be = rng.standard_normal((c, r)).astype(np.float32) / np.sqrt(r), rng.standard_normal(c).astype(np.float32)
    hidden = np.maximum(wr.astype(np.float64) @ x.reshape(-1, c).mean(axis=0) + br, 0)
    gate = 1 / (1 + np.exp(-(we.astype(np.float64) @ hidden + be)))
    want = x * gate
    outs = []
    for threads in (1, 2, 3):
        n = _core.Network(threads)
        n.finalize(n.se(n.input(h, w, c), wr, br, we, be, "re", "sigmoid"))
        outs.append(n.run(x))
        np.testing.assert_allclose(outs[-1], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6, atol=1e-6)
