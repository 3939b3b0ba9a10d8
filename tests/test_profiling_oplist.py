"""Op list files (pynas.profiling.oplist): the recorder builds what NativeNetwork builds, entries
round-trip through a file, and bad entries or files are errors naming the line and field."""
import numpy as np
import pytest

from pynas.ir import lower
from pynas.ir.segments import segments
from pynas.native.runner import NativeNetwork
from pynas.presets import preset
from pynas.profiling.oplist import (NetworkRecorder, OpListError, Step, network_entry, read_oplist, record_steps,
                                    segment_entries, write_oplist)
from pynas.space import get_space
from pynas.space.catalogue import Item

A1 = preset("mnasnet-a1")


def test_round_trip_mnasnet_a1_segments_and_network(tmp_path):
    entries = segment_entries(A1) + [network_entry(A1)]
    ids = [s.id for s in segments(lower(A1))]
    assert len(entries) < len(ids) + 1  # repeats with one key are measured once
    path = tmp_path / "a1.oplist"
    assert write_oplist(path, entries) == len(entries)
    records = read_oplist(path)
    assert [(r.key, r.kind, r.features, r.arch, r.segment) for r in records] == \
        [(e.key, e.kind, e.features, str(A1), e.segment) for e in entries]
    for entry, record in zip(entries, records):
        assert list(record.steps) == record_steps(A1, entry.segment)
        assert record.steps[0].op == "input" and record.steps[-1].op == "output"
    network = records[-1]
    assert network.key == str(A1) and network.kind == "network" and network.segment is None
    assert network.steps[-2].op == "fc" and network.steps[-2].fields["cout"] == 1000


def test_file_text_is_the_documented_format(tmp_path):
    path = tmp_path / "one.oplist"
    write_oplist(path, segment_entries(A1, ["s1.0"]))
    lines = path.read_text().splitlines()
    assert lines[0] == "pynas-oplist 1"
    assert lines[2].startswith("entry key=mbconv_n1_i16x112x112_o24x56x56_m96_k3_s2_re_se0_skipnone kind=mbconv arch=")
    assert lines[2].endswith(" segment=s1.0")
    assert lines[3].startswith('features {"kind":"mbconv","cin":16,')
    assert lines[4:] == ["input h=112 w=112 c=16",
                         "block x=0 cout=24 mid=96 kernel=3 stride=2 expand_act=re dw_act=re project_act=none "
                         "se_reduced=0 residual=-1 band_rows=0",
                         "output x=1"]


@pytest.mark.parametrize("arch", [A1, preset("mobilenetv3-large")] + get_space("mnasnet").sample(6, seed=5),
                         ids=lambda a: str(a)[:40])
@pytest.mark.parametrize("fused", [True, False], ids=["blocks", "ops"])
def test_recorder_mirrors_the_native_network(arch, fused):
    """Same steps, tensor ids and shapes as the real _core.Network built by NativeNetwork."""
    real = NativeNetwork(arch, fused=fused)
    recorder = NetworkRecorder()
    NativeNetwork(arch, weights="shapes", fused=fused, network=recorder)
    steps = [s for s in recorder.steps if s.op != "output"]
    assert len(steps) - 1 == len(real.describe())  # the input makes no step
    for tensor in range(len(steps)):
        assert recorder.shape(tensor) == real.network.shape(tensor)
    assert recorder.steps[-1] == Step("output", {"x": len(steps) - 1})


def test_pool_skips_se_and_grouped_steps_are_recorded():
    """A MnasNet-space sample with every block feature: pooling shortcuts (avgpool + pointwise before
    the block), SE, depthwise-separable blocks without expand, regular conv blocks."""
    archs = get_space("mnasnet").sample(40, seed=11)
    ops = {}
    for arch in archs:
        for step in record_steps(arch):
            ops.setdefault(step.op, step)
            if step.op == "block":
                ops.setdefault("block-se" if step.fields["se_reduced"] else "block-nose", step)
                ops.setdefault("block-expand" if step.fields["mid"] else "block-ds", step)
    assert {"input", "conv", "pointwise", "block", "avgpool", "gap", "fc", "output", "block-se", "block-nose",
            "block-expand", "block-ds"} <= set(ops)
    assert "expand_act" not in ops["block-ds"].fields and "se_act" not in ops["block-nose"].fields
    assert ops["block-se"].fields["se_gate"] in ("sigmoid", "hsigmoid")


CELL_NETWORKS = [net for name in ("nb201", "darts", "nasnet", "enas")
                 for net in get_space(name).sample(2, seed=3)]


def _network(sample):
    return sample.network() if hasattr(sample, "network") else sample  # nb201 samples are cells


@pytest.mark.parametrize("sample", CELL_NETWORKS, ids=lambda a: str(_network(a))[:60])
def test_recorder_mirrors_the_native_network_of_cell_spaces(sample, tmp_path):
    """Cell networks' steps (act, pool, dwconv_dilated, sum, concat, crop, zeros, affine): the same
    tensor ids and shapes as _core.Network built by NativeNetwork; the file round-trips."""
    net = _network(sample)
    real = NativeNetwork(net)
    recorder = NetworkRecorder()
    NativeNetwork(net, weights="shapes", network=recorder)
    steps = [s for s in recorder.steps if s.op != "output"]
    assert len(steps) - 1 == len(real.describe())
    for tensor in range(len(steps)):
        assert recorder.shape(tensor) == real.network.shape(tensor)
    entry = network_entry(str(net))  # a cellnet_... string resolves like a preset name
    assert entry.key == str(net) and entry.kind == "network"
    write_oplist(tmp_path / "cell.oplist", [entry])
    (record,) = read_oplist(tmp_path / "cell.oplist")
    assert list(record.steps) == recorder.steps and record.arch == str(net)


def test_every_cell_step_is_recorded():
    ops = {step.op for net in CELL_NETWORKS for step in record_steps(_network(net))}
    assert {"act", "pool", "dwconv_dilated", "concat", "crop", "affine", "add", "conv", "pointwise"} <= ops
    full = record_steps(get_space("nb201").network(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"))
    # node 3's three edges in each of the 15 cells (node 2's skip is fused into its conv as a residual)
    assert [s.fields["xs"].count(",") + 1 for s in full if s.op == "sum"] == [3] * 15
    # a NAS-Bench-201 cell whose output node has no edge: a zeros step
    steps = record_steps(get_space("nb201").network("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    assert "zeros" in {s.op for s in steps}
    assert {s.fields["kind"] for net in CELL_NETWORKS for s in record_steps(_network(net)) if s.op == "pool"} == \
        {"avg", "max"}


def test_recorder_checks_cell_steps_as_the_network_would():
    r = NetworkRecorder()
    x = r.input(8, 8, 4)
    y = r.pointwise(x, np.zeros((6, 4)), np.zeros(6))
    with pytest.raises(ValueError, match="sum: input shapes differ"):
        r.sum([x, y])
    with pytest.raises(ValueError, match="sum: expected at least 2 inputs"):
        r.sum([x])
    with pytest.raises(ValueError, match="no tensor 9"):
        r.concat([x, 9])
    with pytest.raises(ValueError, match="kind: expected avg or max"):
        r.pool(x, "min", 3, 1, 1)
    with pytest.raises(ValueError, match="0 <= pad < kernel"):
        r.pool(x, "max", 3, 1, 3)
    assert r.shape(r.concat([x, y])) == (8, 8, 10)
    assert r.shape(r.pool(x, "avg", 2, 2, 0)) == (4, 4, 4)
    assert r.shape(r.dwconv_dilated(x, np.zeros((5, 5, 4)), np.zeros(4), 2, 2)) == (4, 4, 4)
    assert r.shape(r.crop(x)) == (7, 7, 4) and r.shape(r.zeros(2, 3, 5)) == (2, 3, 5)
    assert r.steps[-3].line() == "dwconv_dilated x=0 kernel=5 stride=2 dilation=2 act=none"


def test_shape_weights_need_a_recorder():
    with pytest.raises(ValueError, match="'shapes' has no values to run"):
        NativeNetwork(A1, weights="shapes")


def test_recorder_checks_what_the_network_would():
    r = NetworkRecorder()
    x = r.input(8, 8, 4)
    with pytest.raises(ValueError, match="no tensor 5"):
        r.gap(5)
    with pytest.raises(ValueError, match="act: expected one of none, re"):
        r.pointwise(x, np.zeros((8, 4)), np.zeros(8), "relu")
    with pytest.raises(ValueError, match=r"weights: expected Cout x 4, got \(8, 6\)"):
        r.pointwise(x, np.zeros((8, 6)), np.zeros(8))
    y = r.pointwise(x, np.zeros((8, 4)), np.zeros(8))
    with pytest.raises(ValueError, match="residual: tensor 0 has shape"):
        r.pointwise(y, np.zeros((8, 8)), np.zeros(8), residual=x)
    with pytest.raises(ValueError, match="not the input"):
        r.finalize(0)


def test_write_rejects_bad_entries(tmp_path):
    path = tmp_path / "bad.oplist"
    entry = segment_entries(A1, ["stem"])[0]
    with pytest.raises(OpListError, match=r"entries\[1\]: field 'key': expected each key once"):
        write_oplist(path, [entry, entry])
    with pytest.raises(OpListError, match=r"entries\[0\]: field 'key': expected a non-empty string without whitespace"):
        write_oplist(path, [Item("a key", "stem", {}, A1, "stem")])
    with pytest.raises(OpListError, match=r"entries\[0\]: field 'features': expected a JSON object of JSON values"):
        write_oplist(path, [Item("k", "stem", {"x": float("nan")}, A1, "stem")])
    with pytest.raises(OpListError, match=r"entries\[0\] \(k\): segment: expected one of .*got .s9.9."):
        write_oplist(path, [Item("k", "stem", {}, A1, "s9.9")])
    assert not path.exists()  # nothing half written


@pytest.mark.parametrize("text, message", [
    ("pynas-oplist 2\n", r":1: expected the header line 'pynas-oplist 1'"),
    ("pynas-oplist 1\nentry key=k kind=stem arch=a segment=-\nfeatures {}\ninput h=1 w=1 c=1\nrelu x=0\n",
     r":5: unknown step 'relu'"),
    ("pynas-oplist 1\nentry key=k kind=stem arch=a segment=-\nfeatures {}\ninput h=1 w=1 c=1\ngap x=0 y=1\n",
     r":5: gap: unknown field 'y'"),
    ("pynas-oplist 1\nentry key=k kind=stem arch=a segment=-\nfeatures {}\ninput h=1 w=1 c=one\n",
     r":4: input: field 'c': expected an integer, got 'one'"),
    ("pynas-oplist 1\nentry key=k kind=stem arch=a segment=-\nfeatures [1]\n", r":3: field 'features': expected a JSON object"),
    ("pynas-oplist 1\nentry key=k kind=stem arch=a segment=-\nfeatures {}\ninput h=1 w=1 c=1\n",
     r":4: expected the entry at line 2 to end with 'output'"),
    ("pynas-oplist 1\nentry key=k kind=stem arch=a segment=-", r":2: expected the line to end with '\\n'"),
    ("pynas-oplist 1\nentry key=k kind=network arch=a segment=-\nfeatures {}\ninput h=1 w=1 c=1\nsum xs=0\n",
     r":5: sum: field 'xs': expected two or more tensor ids separated by commas, got '0'"),
    ("pynas-oplist 1\nentry key=k kind=network arch=a segment=-\nfeatures {}\ninput h=1 w=1 c=1\n"
     "pool x=0 kind=min kernel=3 stride=1 pad=1\n", r":5: pool: field 'kind': expected one of avg, max, got 'min'"),
])
def test_read_names_the_line_and_field(tmp_path, text, message):
    path = tmp_path / "bad.oplist"
    path.write_text(text)
    with pytest.raises(OpListError, match=message):
        read_oplist(path)
