"""pynas.native.memory: the activation and weight estimate from the IR, the memory available (MemAvailable
and the cgroup's limit) and the refusal message. NativeNetwork's use of it: tests/test_native_runner.py."""
import pytest

from pynas.ir.ops import Op
from pynas.native import memory


def _op(id, kind, inputs, cin, cout, hw=8, **fields):
    return Op(id=id, kind=kind, name=f"op{id}", inputs=inputs, n=1, cin=cin, hin=hw, win=hw, cout=cout, hout=hw,
              wout=hw, **fields)


def test_peak_counts_the_tensors_alive_at_once():
    """image -> conv -> dwconv -> add(dwconv, conv): the conv's output lives until the add, so the
    add's step holds three 16 x 8 x 8 tensors; the image is freed after its one reader."""
    image, tensor = 4 * 3 * 8 * 8, 4 * 16 * 8 * 8
    ops = [_op(0, "conv", (-1,), 3, 16, kernel=3), _op(1, "dwconv", (0,), 16, 16, kernel=3, groups=16),
           _op(2, "add", (1, 0), 16, 16)]
    assert memory.peak_activation_bytes(ops) == 3 * tensor
    assert memory.peak_activation_bytes(ops[:1]) == image + tensor
    # Without the add, the conv's output is freed after the dwconv reads it: two at most.
    assert memory.peak_activation_bytes(ops[:2]) == 2 * tensor


def test_a_segments_outside_input_lives_until_its_last_reader():
    ops = [_op(5, "dwconv", (4,), 16, 16, kernel=3, groups=16), _op(6, "add", (5, 4), 16, 16)]
    assert memory.peak_activation_bytes(ops) == 3 * 4 * 16 * 8 * 8


def test_estimate_counts_weight_copies():
    ops = [_op(0, "conv", (-1,), 3, 16, kernel=3, bn=True)]
    weights = 4 * (16 * 3 * 3 * 3 + 16)
    need = memory.estimate(ops, ops, weight_copies=3)
    assert (need.weights, need.weight_copies) == (weights, 3)
    assert need.total == memory.peak_activation_bytes(ops) + 3 * weights
    assert memory.estimate(ops, ops, weight_copies=2).total == need.total - weights


def test_check_fits_names_resolution_estimate_and_memory():
    need = memory.MemoryEstimate(activations=3 * 2 ** 30, weights=2 ** 29, weight_copies=2)
    memory.check_fits(need, 4 * 2 ** 30, 224)  # exactly enough
    memory.check_fits(need, None, 224)  # unknown: not checked
    with pytest.raises(ValueError) as error:
        memory.check_fits(need, 4 * 2 ** 30 - 1, 224)
    assert str(error.value) == ("resolution: 224 x 224 needs an estimated 4.00 GiB (activations 3.00 GiB + 2 x 0.50 GiB "
                                "of weights), but 4.00 GiB of memory is available; expected a network that fits "
                                "(a lower resolution, fewer channels)")


def test_available_is_memavailable_here():
    import os

    if not os.path.exists("/proc/meminfo"):
        pytest.skip("no /proc/meminfo")
    available = memory.available_bytes()
    assert available is not None and 0 < available <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _cgroup(tmp_path, monkeypatch, limit: str, usage: str, meminfo_kb: int = 8 * 2 ** 20):
    (tmp_path / "max").write_text(limit + "\n")
    (tmp_path / "current").write_text(usage + "\n")
    monkeypatch.setattr(memory, "_CGROUP_FILES", ((str(tmp_path / "max"), str(tmp_path / "current")),))
    monkeypatch.setattr(memory, "_meminfo_available", lambda: meminfo_kb * 1024)


def test_a_cgroup_limit_lowers_what_is_available(tmp_path, monkeypatch):
    """A container's --memory limit: MemAvailable shows the host's memory, the cgroup what is left."""
    _cgroup(tmp_path, monkeypatch, str(2 * 2 ** 30), str(2 ** 29))
    assert memory.available_bytes() == 2 * 2 ** 30 - 2 ** 29
    _cgroup(tmp_path, monkeypatch, str(2 * 2 ** 30), str(3 * 2 ** 30))  # over its limit (reclaimable cache)
    assert memory.available_bytes() == 0


@pytest.mark.parametrize("limit", ["max", "9223372036854771712"])  # v2's and v1's "no limit"
def test_a_cgroup_without_a_limit_leaves_memavailable(tmp_path, monkeypatch, limit):
    _cgroup(tmp_path, monkeypatch, limit, str(2 ** 30))
    assert memory.available_bytes() == 8 * 2 ** 30


def test_nothing_known_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "_CGROUP_FILES", ((str(tmp_path / "no"), str(tmp_path / "no")),))
    monkeypatch.setattr(memory, "_meminfo_available", lambda: None)
    assert memory.available_bytes() is None
