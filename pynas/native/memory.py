"""What a native network needs in memory, estimated from the IR before anything is allocated, and
what this machine has to give: `pynas.native.runner.NativeNetwork` refuses a network that cannot fit
with a one-line ValueError naming its resolution, instead of dying of MemoryError (or of the OOM
killer) part-way through drawing weights or allocating activations.

The estimate (`estimate`), in bytes:

* activations: the most op outputs alive at once, ops run in order, each output alive from its op
  to its last reader, the network input included. That is about what `NativeNetwork(fused=False)`
  allocates (the runner reuses activation buffers by liveness; measured within 2% at 1024 x 1024 on
  MnasNet-A1 and MobileNetV2/V3); the fused block steps need less (they never write an expanded
  tensor whole, their per-thread row windows are a fraction of it), so for them it is an upper
  bound.
* weights: fp32 weights and biases (BN folded, `Op.weight_bytes`), times the copies alive at once
  (`weight_copies`, NativeNetwork's count): 3 where it makes the weights itself (random weights are
  drawn in float64 and cast to float32 before the float64 draws are freed, a PyTorch module's are
  folded in float64 likewise), 2 for a dict of float32 arrays (those and the network's packed copy).
  Packing pads output channels to the kernel's tile, a few percent at most.

Memory available (`available_bytes`): /proc/meminfo's MemAvailable (memory the kernel can hand out
without swapping), lowered to what the process's cgroup still allows where it has a limit (a
container's `--memory`: MemAvailable shows the host's memory there); None where the OS tells neither
(not Linux or Android), and then nothing is checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pynas.ir.ops import FLOAT_BYTES, Op

_GIB = 2 ** 30
# (limit, usage) files of the process's memory cgroup: v2 (unified), then v1. In a container with a
# cgroup namespace, /sys/fs/cgroup is the container's own cgroup.
_CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


@dataclass(frozen=True)
class MemoryEstimate:
    activations: int  # bytes of activation tensors alive at once, at most
    weights: int      # bytes of fp32 weights and biases
    weight_copies: int  # copies of the weights alive at once while building

    @property
    def total(self) -> int:
        return self.activations + self.weights * self.weight_copies

    def describe(self) -> str:
        """'1.25 GiB (activations 1.00 GiB + 3 x 0.08 GiB of weights)'."""
        return (f"{self.total / _GIB:.2f} GiB (activations {self.activations / _GIB:.2f} GiB + "
                f"{self.weight_copies} x {self.weights / _GIB:.2f} GiB of weights)")


def peak_activation_bytes(ops: list[Op] | tuple[Op, ...]) -> int:
    """The most bytes of tensors alive at once while `ops` run in order: each op's output from the op
    to its last reader (the last op's output to the end), and every tensor the ops read but do not
    produce (the network input, or a segment's) from the start to its last reader."""
    produced = {op.id for op in ops}
    last_reader: dict[int, int] = {}
    live: dict[int, int] = {}
    for index, op in enumerate(ops):
        for source in op.inputs:
            last_reader[source] = index
            if source not in produced and source not in live:
                live[source] = FLOAT_BYTES * op.n * op.cin * op.hin * op.win
    peak = 0
    for index, op in enumerate(ops):
        live[op.id] = op.bytes_out
        peak = max(peak, sum(live.values()))
        for source in set(op.inputs):
            if last_reader[source] == index:
                live.pop(source, None)
    return peak


def estimate(ops: list[Op] | tuple[Op, ...], weight_ops: list[Op] | tuple[Op, ...], weight_copies: int) -> MemoryEstimate:
    """The estimate for a network running `ops` with the weights of `weight_ops` (a whole graph's
    weights are drawn even when one segment is built), `weight_copies` of them alive at once."""
    return MemoryEstimate(peak_activation_bytes(ops), sum(op.weight_bytes for op in weight_ops), weight_copies)


def _read_int(path: str) -> int | None:
    """The integer in a one-line file; None if it is missing, unreadable or not a number ('max')."""
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom() -> int | None:
    """What the memory cgroup still allows (limit - usage), or None if it sets no limit. v1 writes
    'no limit' as a huge number (close to 2**63), v2 as 'max'."""
    for limit_file, usage_file in _CGROUP_FILES:
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2 ** 62:
            return max(0, limit - usage)
    return None


def available_bytes() -> int | None:
    """Memory this process can still allocate without swapping: MemAvailable, or less where its
    cgroup's limit leaves less; None where the OS tells neither."""
    known = [b for b in (_meminfo_available(), _cgroup_headroom()) if b is not None]
    return min(known) if known else None


def check_fits(need: MemoryEstimate, available: int | None, resolution: int) -> None:
    """ValueError naming the resolution, the estimate and the memory available when the estimate
    exceeds it; nothing when it fits or nothing is known of the memory available."""
    if available is not None and need.total > available:
        raise ValueError(f"resolution: {resolution} x {resolution} needs an estimated {need.describe()}, "
                         f"but {available / _GIB:.2f} GiB of memory is available; expected a network that fits "
                         f"(a lower resolution, fewer channels)")
