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
])
def test_read_names_the_line_and_field(tmp_path, text, message):
    path = tmp_path / "bad.oplist"
    path.write_text(text)
    with pytest.raises(OpListError, match=message):
        read_oplist(path)
