"""Run an architecture with pynas's own kernels: lower, fuse, build a `pynas._core.Network` from the
kernels, run it on numpy images.

Fusion is by block by default (`fused=True`): every inverted-residual and depthwise-separable block
repeat is one row-banded block step (kernels/mbconv.h: the expanded tensor is never written whole),
its pooling shortcut (if any) a pool and a 1x1 step before it; everything else (stem, `cn` and `id`
blocks, head) is one step per conv with its bias, activation and residual add. Grouped blocks (`g2`:
grouped 1x1 convs and a channel shuffle) are the exception: the block step has no groups, so they
run as op-level steps (a grouped pointwise step writing its output shuffled, the depthwise step, a
grouped pointwise step with the residual add); so are blocks with fewer than
`MIN_BLOCK_ROWS_PER_THREAD` output rows per thread when several threads run (their row chunks would
expand much of their input twice). With `fused=False` every op is its own step, as in
`pynas.ir.fuse(graph)`: per-op timing and a cross-check of the block steps.

Cell networks (`pynas.cell`) run op-level steps (their kernels are `pynas.ir.fuse(graph)`'s): a
conv with its bias (BN folded) and a following activation or two-input add, and steps of their own
for what only cells have (`_cell_only`: standalone ReLUs, pools, node sums, concatenations,
FactorizedReduce's crop, zeros, NAS-Bench-201's last BN; cpp/network/cell_steps.cc).

Weights come from the PyTorch module (BN folded; outputs then equal the module's) or are random
(for timing). Every op kind the IR produces has a native step; anything else is an error naming the
op, never a silently skipped op.
"""
from __future__ import annotations

import numpy as np

from pynas import _core
from pynas.arch import Arch
from pynas.ir import fuse, lower
from pynas.ir.fusion import BLOCK_KERNELS
from pynas.ir.segments import segment_of
from pynas.native import memory
from pynas.native.weights import OpWeights, from_torch, random_weights, shape_only_weights

# The most threads a network may have: C++'s kMaxThreads (cpp/network/thread_pool.h says why 256).
MAX_THREADS = _core.MAX_THREADS
_ACT_NONE = "none"
# Ops only cell networks have, each a step of its own (cpp/network/cell_steps.cc): a standalone
# activation (a cell edge's ReLU precedes its conv), kxk pools other than the 3x3 average one, sums
# of three or more inputs, concatenations, crops, zeros, a standalone BatchNorm.
_CELL_KINDS = ("zero", "maxpool", "concat", "crop", "bn")


def _cell_only(op) -> bool:
    """Whether `op` (the first of its kernel) is one of those, run by `NativeNetwork._cell_step`."""
    return (op.kind in _CELL_KINDS or op.kind == "act" or (op.kind == "add" and len(op.inputs) > 2)
            or (op.kind == "avgpool" and (op.kernel, op.padding) != (3, 1)))


def check_threads(threads) -> int:
    """`threads` if it is an integer in 1..MAX_THREADS, else a ValueError naming the field and the
    range, raised before anything is built (pynas.profiling.backends checks its thread count here
    too, for every backend)."""
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads: expected an integer in 1..{MAX_THREADS}, got {threads!r}")
    return threads
# The ops a block kernel may hold (pynas.ir.lower's roles); anything else is an error, not skipped.
_BLOCK_ROLES = {"expand", "expand_act", "dw", "dw_act", "se", "project", "skip_pool", "skip_proj", "residual"}


def _grouped(kernel) -> bool:
    """A block kernel with grouped 1x1 convs or a channel shuffle (an FBNet g2 block)."""
    return any(op.kind == "shuffle" or (op.kind == "pwconv" and op.groups > 1) for op in kernel.ops)


# Threads split a fused block step's output rows, and each chunk expands the k - stride input rows
# under its first band again (kernels/mbconv.h). With fewer than this many output rows per thread
# that halo is a large share of the expand (MnasNet-A1's 7 x 7 blocks at two threads: 11 of 7 rows
# expanded), so such blocks run as op steps, which split without overlap (the expand and project
# GEMMs by output-channel panels): MnasNet-A1 2-3% faster at two threads (Xeon, AVX-512), level at
# one (where nothing is split and blocks stay fused).
MIN_BLOCK_ROWS_PER_THREAD = 4


def _split_by_threads(kernel, threads: int) -> bool:
    return threads > 1 and kernel.last.hout < MIN_BLOCK_ROWS_PER_THREAD * threads


def _native_kernels(graph, fused: bool, threads: int = 1):
    """The kernels to build: `fuse(graph, blocks=fused)`, with every grouped block kernel replaced by
    its op-level kernels (`fuse(graph)`'s), since the fused block step runs no groups, and so is
    every block too small to split over `threads` (`MIN_BLOCK_ROWS_PER_THREAD`)."""
    if not fused:
        return fuse(graph)
    kernels = fuse(graph, blocks=True)
    split = {op.id for k in kernels if k.kind in BLOCK_KERNELS.values()
             and (_grouped(k) or _split_by_threads(k, threads)) for op in k.ops}
    if not split:
        return kernels
    kept = [k for k in kernels if not any(op.id in split for op in k.ops)]
    parts = [k for k in fuse(graph) if any(op.id in split for op in k.ops)]
    if any(not all(op.id in split for op in k.ops) for k in parts):
        raise AssertionError("op-level kernels of split blocks reach outside their blocks")
    # Ordering by last op id is topological, as in fuse().
    return sorted(kept + parts, key=lambda k: k.last.id)


class NativeNetwork:
    """`arch` (Arch, preset name or string) as a native network; `weights` is "random", a PyTorch
    module built by pynas.torch_builder.build_torch(arch), a dict from pynas.native.weights, or
    "shapes" (placeholders without values: only with a `network` that records the build).
    With `segment` (a `pynas.ir.segments` id: 'stem', a block repeat such as 's1.0', 'head') only
    that segment is built: its input is the segment's input tensor, its output the segment's output
    (for per-segment timing). `band_rows` fixes
    the output rows per band of the fused block steps (0: sized to the L2 budget).
    `network` is what the steps are built into, by default a new `_core.Network(threads)`; any
    object with its builder methods works, such as pynas.profiling.oplist.NetworkRecorder, which
    writes the steps down for pynas-profile (so this class alone decides how an architecture maps
    to native steps).

    Checked before anything is allocated (ValueError naming the field): `threads` in 1..MAX_THREADS;
    and, when it builds a `_core.Network` itself, that the network fits in the memory available
    (`pynas.native.memory`: the estimate from the IR, the resolution named)."""

    def __init__(self, arch: Arch | str, weights="random", threads: int = 1, seed: int = 0,
                 segment: str | None = None, fused: bool = True, band_rows: int = 0, network=None):
        check_threads(threads)
        from pynas.cell import is_cellnet_string

        if is_cellnet_string(arch):
            from pynas.cell import parse as parse_cellnet
            arch = parse_cellnet(arch)
        elif isinstance(arch, str):
            from pynas.presets import resolve
            arch = resolve(arch)
        self.arch = arch
        self.graph = lower(arch)
        if network is None and not hasattr(arch, "stages") and not hasattr(_core.Network, "sum"):
            raise ValueError(f"arch: expected a pynas._core with the cell networks' steps to run {str(arch)[:40]}..., "
                             f"got one built before them: rebuild it (scripts/dev-build.sh)")
        if network is None:
            self._check_memory(weights, segment)
        if isinstance(weights, str):
            if weights == "shapes" and network is None:
                raise ValueError("weights: 'shapes' has no values to run; expected it only with a recording `network`")
            if weights not in ("random", "shapes"):
                raise ValueError(f"weights: expected 'random', 'shapes', a PyTorch module or a dict, got {weights!r}")
            weights = random_weights(self.graph, seed) if weights == "random" else shape_only_weights(self.graph)
        elif not isinstance(weights, dict):
            weights = from_torch(self.graph, weights)
        self.network = _core.Network(threads) if network is None else network
        self.band_rows = band_rows
        kernels = _native_kernels(self.graph, fused, threads)
        if segment is not None:
            kernels = [k for k in kernels if all(segment_of(op) == segment for op in k.ops)]
            if not kernels:
                ids = sorted({segment_of(op) for op in self.graph.ops})
                raise ValueError(f"segment: expected one of {', '.join(ids)} (segments of {arch}), got {segment!r}")
        if segment is not None:
            inside = {op.id for k in kernels for op in k.ops}
            outside = {i for k in kernels for op in k.ops for i in op.inputs if i not in inside}
            if len(outside) > 1:  # a darts cell reading the outputs of two different layers
                raise ValueError(f"segment: expected a segment reading one tensor, got segment {segment} reads "
                                 f"{len(outside)} tensors (the native runner builds a segment on one input)")
        self._build(weights, kernels)

    def _check_memory(self, weights, segment: str | None) -> None:
        """ValueError naming the resolution if the network (or its segment) would need more memory
        than is available: before the weights are drawn and anything is allocated."""
        ops = [op for op in self.graph.ops if segment is None or segment_of(op) == segment]
        if not ops:
            return  # an unknown segment: __init__ says which ones there are
        # Weights made here (random, or folded from a module) pass through float64 first.
        copies = 2 if isinstance(weights, dict) else 3
        need = memory.estimate(ops, self.graph.ops, weight_copies=copies)
        memory.check_fits(need, memory.available_bytes(), self.arch.resolution)

    def _build(self, weights: dict[int, OpWeights], kernels) -> None:
        net = self.network
        # The image, or the segment's input when building one segment: the first tensor read from
        # outside (a cell's zeros kernel may come first and reads nothing).
        produced = {op.id for k in kernels for op in k.ops}
        first, source = next((op, i) for k in kernels for op in k.ops for i in op.inputs if i not in produced)
        tensor = {source: net.input(first.hin, first.win, first.cin)}
        # Which kernel each native step comes from (a block's pooling shortcut adds steps of its own):
        # `profile` prices the steps with their kernels' MACs. Only a `_core.Network` can say.
        self.step_kernels = []
        counted = hasattr(net, "step_count")
        previous = None
        for kernel in kernels:
            if counted:  # the steps added since the previous kernel began are its
                self.step_kernels.extend([previous] * (net.step_count() - len(self.step_kernels)))
                previous = kernel
            op = kernel.first
            if _cell_only(op):
                y = self._cell_step(op, tensor, weights)
                if net.shape(y) != (op.hout, op.wout, op.cout):
                    raise AssertionError(f"op {op.name}: native shape {net.shape(y)} differs from the IR's")
                tensor[op.id] = y
                continue
            x = tensor[op.inputs[0]]
            if kernel.kind in BLOCK_KERNELS.values():
                y = self._block(kernel, x, tensor, weights)
                for o in kernel.ops:
                    tensor[o.id] = y
                continue
            w = weights.get(op.id)
            act = next((o.act for o in kernel.ops if o.kind == "act"), _ACT_NONE)
            add = next((o for o in kernel.ops if o.kind == "add" and o is not op), None)
            residual = tensor[add.inputs[1]] if add is not None else -1
            shuffle = next((o for o in kernel.ops if o.kind == "shuffle" and o is not op), None)
            grouped_pw = op.kind == "pwconv" and op.stride == 1 and op.groups > 1
            if op.kind in ("conv", "dwconv", "pwconv") and op.groups not in (1, op.cin) and not grouped_pw:
                raise ValueError(f"op {op.name}: grouped {op.kind} ops (groups={op.groups}, stride {op.stride}) "
                                 "have no native step")
            if shuffle is not None and (op.kind != "pwconv" or shuffle.groups != op.groups):
                raise ValueError(f"op {op.name}: a channel shuffle fused into a {op.kind} op with other groups has "
                                 "no native step")
            if op.kind == "pwconv" and op.stride == 1:
                y = net.pointwise(x, w.weights, w.bias, act, residual, groups=op.groups, shuffle=shuffle is not None)
            elif op.kind in ("conv", "pwconv"):
                conv_w = w.weights if w.weights.ndim == 4 else w.weights[:, None, None, :]
                y = net.conv(x, conv_w, w.bias, op.kernel, op.stride, act, residual)
            elif op.kind == "dwconv" and op.dilation != 1:
                if residual >= 0:
                    raise ValueError(f"op {op.name}: a residual add fused into a depthwise conv has no native step")
                y = net.dwconv_dilated(x, w.weights, w.bias, op.stride, op.dilation, act)
            elif op.kind == "dwconv":
                if residual >= 0:
                    raise ValueError(f"op {op.name}: a residual add fused into a depthwise conv has no native step")
                y = net.dwconv(x, w.weights, w.bias, op.stride, act)
            elif op.kind == "se":
                y = net.se(x, w.weights, w.bias, w.weights2, w.bias2, op.act, op.gate)
            elif op.kind == "avgpool" and (op.kernel, op.padding) == (3, 1):
                y = net.avgpool(x, op.stride)
            elif op.kind == "add":
                y = net.add(x, tensor[op.inputs[1]])
            elif op.kind == "shuffle":
                y = net.shuffle(x, op.groups)
            elif op.kind == "gap":
                y = net.gap(x)
            elif op.kind == "fc":
                y = net.fc(x, w.weights, w.bias)
            else:
                raise ValueError(f"op {op.name}: no native step for kind {op.kind!r}")
            if net.shape(y) != (kernel.last.hout, kernel.last.wout, kernel.last.cout):
                raise AssertionError(f"kernel {kernel.name}: native shape {net.shape(y)} differs from the IR's")
            for o in kernel.ops:
                tensor[o.id] = y
        if counted:
            self.step_kernels.extend([previous] * (net.step_count() - len(self.step_kernels)))
        net.finalize(tensor[kernels[-1].last.id])

    def _cell_step(self, op, tensor: dict[int, int], weights: dict[int, OpWeights]) -> int:
        """One step of an op that only cell networks have (`pynas.ir.cells`): alone in its kernel."""
        net = self.network
        reads = [tensor[i] for i in op.inputs]
        if op.kind == "zero":
            return net.zeros(op.hout, op.wout, op.cout)
        if op.kind == "act":
            return net.act(reads[0], op.act)
        if op.kind in ("avgpool", "maxpool"):
            return net.pool(reads[0], op.kind[:3], op.kernel, op.stride, op.padding)
        if op.kind == "add":
            return net.sum(reads)
        if op.kind == "concat":
            return net.concat(reads)
        if op.kind == "crop":
            return net.crop(reads[0])
        w = weights[op.id]
        return net.affine(reads[0], w.weights, w.bias)  # bn

    def _block(self, kernel, x: int, tensor: dict[int, int], weights: dict[int, OpWeights]) -> int:
        """One fused block step (plus its pooling shortcut, as steps of their own)."""
        net = self.network
        ops = {op.role: op for op in kernel.ops}
        if _grouped(kernel):  # _native_kernels splits these; never pass grouped weights to the block step
            raise ValueError(f"block {kernel.name}: the fused block step has no grouped 1x1 convs")
        unknown = set(ops) - _BLOCK_ROLES
        if unknown:
            raise ValueError(f"block {kernel.name}: no native block step for ops {sorted(unknown)}")
        residual = -1
        if "skip_pool" in ops:
            residual = net.avgpool(x, ops["skip_pool"].stride)
            if "skip_proj" in ops:
                proj = weights[ops["skip_proj"].id]
                residual = net.pointwise(residual, proj.weights, proj.bias, _ACT_NONE, -1)
        elif "residual" in ops:
            residual = x
        dw, project = ops["dw"], ops["project"]
        args = {}
        if "expand" in ops:
            expand = weights[ops["expand"].id]
            args.update(expand_w=expand.weights, expand_b=expand.bias, expand_act=ops["expand_act"].act)
        if "se" in ops:
            se = weights[ops["se"].id]
            args.update(se_w_reduce=se.weights, se_b_reduce=se.bias, se_w_expand=se.weights2,
                        se_b_expand=se.bias2, se_act=ops["se"].act, se_gate=ops["se"].gate)
        y = net.block(x, project.cout, dw_w=weights[dw.id].weights, dw_b=weights[dw.id].bias, stride=dw.stride,
                      dw_act=ops["dw_act"].act, project_w=weights[project.id].weights,
                      project_b=weights[project.id].bias, residual=residual, band_rows=self.band_rows, **args)
        last = kernel.last
        if net.shape(y) != (last.hout, last.wout, last.cout):
            raise AssertionError(f"kernel {kernel.name}: native shape {net.shape(y)} differs from the IR's")
        return y

    @staticmethod
    def _hwc(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float32)
        if image.ndim == 4 and image.shape[0] == 1:  # 1 x C x H x W
            image = image[0].transpose(1, 2, 0)
        return np.ascontiguousarray(image)

    def run(self, image: np.ndarray) -> np.ndarray:
        """Logits for one image, H x W x 3 or 1 x 3 x H x W float32 (a block: its output tensor)."""
        out = self.network.run(self._hwc(image))
        return out.reshape(-1) if out.shape[:2] == (1, 1) else out

    def time_runs(self, image: np.ndarray, runs: int) -> list[float]:
        return self.network.time_runs(self._hwc(image), runs)

    def describe(self) -> list[str]:
        return self.network.describe()

    def profile(self, image: np.ndarray, runs: int) -> list[dict]:
        """Per native step, timed inside `runs` whole runs (after as many warm-up runs): its
        description (kernel variant, output shape), median ms and the MACs of the IR kernel it runs.
        A kernel's MACs go to its last step: a block's pooling shortcut runs as a pool and a 1x1 step
        before the block step, and those show 0 MACs."""
        import statistics

        x = self._hwc(image)
        self.network.profile(x, runs)  # warm-up: caches, page faults, CPU clock
        seconds = self.network.profile(x, runs)
        kernels = self.step_kernels
        return [{"step": text, "kernel": kernel.name, "ms": 1e3 * statistics.median(r[i] for r in seconds),
                 "macs": sum(op.macs for op in kernel.ops) if i + 1 == len(kernels) or kernels[i + 1] is not kernel
                 else 0}
                for i, (text, kernel) in enumerate(zip(self.network.describe(), kernels))]
