"""HW-NAS-Bench's FBNet tables: block keys of pynas architectures, sums per device, strict reading.

Tests on the published table skip where it is not installed (DEFAULT_PATH); the parsing and
missing-key tests write their own small tables.
"""
import csv
import math

import numpy as np
import pytest

from pynas.arch import parse
from pynas.ir import lower
from pynas.ir.segments import segments
from pynas.predictor import hwnasbench
from pynas.predictor.hwnasbench import (BUNDLED, COLUMNS, DEFAULT_PATH, DEVICES, LatencyTable, MissingKeyError,
                                        TableError, block_keys, latency_breakdown, load_table, table_latency)
from pynas.predictor.manifest import BundleError
from pynas.presets import preset
from pynas.space import FBNetSpace
from pynas.space.fbnet import CHOICES

SETTINGS = ("imagenet", "cifar100")
USED_BY = {"imagenet": "ImageNet", "cifar100": "cifar100"}


def keys_from_ir(arch):
    """An independent oracle: the keys from the lowered graph's segments (shapes, kernel, stride,
    expansion, groups), an identity skip layer from the shape it keeps."""
    segs = {s.id: s for s in segments(lower(arch))}
    stem = segs["stem"].features()
    keys = [f"ConvNorm_H{stem['h']}_W{stem['w']}_Cin3_Cout{stem['cout']}_kernel{stem['kernel']}"
            f"_stride{stem['stride']}_group1"]
    h, c = stem["hout"], stem["cout"]
    for i, stage in enumerate(arch.stages):
        seg = segs.get(f"s{i}.0")
        if seg is None:  # an identity skip layer: no ops
            assert stage.block == "id"
            keys.append(f"Skip_H{h}_W{h}_Cin{c}_Cout{c}_stride1")
            continue
        f = seg.features()
        assert (f["h"], f["cin"]) == (h, c)
        if f["kind"] == "convblock":
            keys.append(f"Skip_H{h}_W{h}_Cin{c}_Cout{f['cout']}_stride{f['stride']}")
        else:
            keys.append(f"ConvBlock_H{h}_W{h}_Cin{c}_Cout{f['cout']}_exp{f['mid'] // c}_kernel{f['kernel']}"
                        f"_stride{f['stride']}_group{f['pw_groups']}")
        h, c = f["hout"], f["cout"]
    head = {op.role: op for op in segs["head"].ops}
    conv, fc = head["head"], head["classifier"]
    keys.append(f"ConvNorm_H{h}_W{h}_Cin{c}_Cout{conv.cout}_kernel1_stride1_group1")
    keys.append(f"AvgP_H{h}_W{h}_Cin{conv.cout}_Cout{conv.cout}_kernel{h}_stride1")
    keys.append(f"FC_Cin{fc.cin}_Cout{fc.cout}")
    return keys


def raw_rows():
    with open(DEFAULT_PATH, newline="") as f:
        return {row["block_key"]: row for row in csv.DictReader(f)}


def every_choice_archs(space):
    """An architecture with each choice at each layer (the others k3_e1): every key of the space."""
    for layer in range(22):
        for token in range(len(CHOICES)):
            tokens = [0] * 22
            tokens[layer] = token
            yield space.decode(tokens)


@pytest.mark.parametrize("setting", SETTINGS)
def test_keys_match_an_independent_derivation(setting):
    space = FBNetSpace(setting)
    for arch in list(every_choice_archs(space))[::7] + space.sample(40, seed=2):
        keys = block_keys(arch)
        assert len(keys) == 1 + 22 + 3
        assert keys == keys_from_ir(arch)
        assert block_keys(str(arch)) == keys  # strings are accepted too


@pytest.mark.parametrize("setting", SETTINGS)
def test_every_key_of_every_choice_is_in_the_table(setting):
    """All 22 x 9 choices of the setting: every key exists, used by this setting."""
    table = load_table()
    space = FBNetSpace(setting)
    seen = set()
    for arch in every_choice_archs(space):
        for key in block_keys(arch):
            assert key in table, key
            assert table.entries[key].used_by == USED_BY[setting], key
            seen.add(key)
    # 12 layer shapes x 8 ConvBlocks, 6 shape-changing and 6 identity skip shapes, stem, head, pool, FC.
    assert len(seen) == 96 + 12 + 4
    assert len([k for k in seen if k.startswith("Skip_")]) == 12


def test_the_two_settings_use_every_table_entry_but_the_cifar10_classifier():
    table = load_table()
    used = {key for setting in SETTINGS for arch in every_choice_archs(FBNetSpace(setting)) for key in block_keys(arch)}
    assert set(table.entries) - used == {"FC_Cin1504_Cout10"} and len(table) == 225


def test_readme_example_key():
    """The README's example: "in the ImageNet setting, layer 1 is
    ConvBlock_H112_W112_Cin16_Cout24_exp{e}_kernel{k}_stride2_group{g}"."""
    space = FBNetSpace("imagenet")
    for token, choice in enumerate(CHOICES):
        tokens = [0] * 22
        tokens[1] = token
        key = block_keys(space.decode(tokens))[2]  # after the stem and layer 0
        if choice == "skip":
            assert key == "Skip_H112_W112_Cin16_Cout24_stride2"
        else:
            k, e = choice[1], choice.split("_")[1][1:]
            g = 2 if choice.endswith("g2") else 1
            assert key == f"ConvBlock_H112_W112_Cin16_Cout24_exp{e}_kernel{k}_stride2_group{g}"


@pytest.mark.parametrize("setting", SETTINGS)
def test_sums_per_device(setting):
    rows = raw_rows()
    for arch in FBNetSpace(setting).sample(5, seed=9):
        for device in DEVICES:
            want = sum(float(rows[key][f"{device}_latency"]) for key in keys_from_ir(arch))
            assert table_latency(arch, device) == pytest.approx(want, rel=1e-12)
            breakdown = latency_breakdown(arch, device)
            assert [k for k, _ in breakdown] == block_keys(arch) and sum(ms for _, ms in breakdown) == table_latency(
                arch, device)


def test_pinned_sums():
    """Regression values: all-k3_e1 and all-skip networks, ImageNet, Pixel 3 (ms)."""
    space = FBNetSpace("imagenet")
    rows = raw_rows()
    k3_e1 = sum(float(rows[k]["pixel3_latency"]) for k in block_keys(space.decode([0] * 22)))
    assert table_latency(space.decode([0] * 22), "pixel3") == pytest.approx(k3_e1, rel=1e-12)
    skips = space.decode([8] * 22)
    assert block_keys(skips)[1:4] == ["Skip_H112_W112_Cin16_Cout16_stride1", "Skip_H112_W112_Cin16_Cout24_stride2",
                                      "Skip_H56_W56_Cin24_Cout24_stride1"]
    assert table_latency(skips, "edgegpu") > 0 and table_latency(skips, "pixel3") < k3_e1


def test_non_fbnet_architectures_are_rejected():
    with pytest.raises(ValueError, match="not in HW-NAS-Bench's FBNet space .*imagenet.*resolution"):
        block_keys(preset("mnasnet-a1"))
    small = FBNetSpace("imagenet", resolution=64).sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="resolution: expected one of \\(224,\\), got 64"):
        block_keys(small)
    arch = FBNetSpace("cifar100").sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="num_classes"):
        block_keys(arch.replace(num_classes=10))
    with pytest.raises(TypeError, match="arch: expected an Arch"):
        block_keys(42)


def write_table(path, rows, header=COLUMNS):
    path.write_text("\r\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\r\n")
    return path


def unit_rows(arch, value=1.0):
    return [[key, "cifar100"] + [value] * 8 for key in dict.fromkeys(block_keys(arch))]  # each key once


def test_missing_key_raises_naming_it(tmp_path):
    arch = FBNetSpace("cifar100").sample(1, seed=1)[0]
    rows = unit_rows(arch)
    table = LatencyTable.read(write_table(tmp_path / "full.csv", rows))
    assert table_latency(arch, "raspi4", table=table) == 26.0  # 26 blocks at 1 ms
    assert table_latency(arch, "pixel3", table=tmp_path / "full.csv") == 26.0  # a path works too
    missing = rows[5][0]
    path = write_table(tmp_path / "short.csv", rows[:5] + rows[6:])
    with pytest.raises(MissingKeyError) as info:
        table_latency(arch, "pixel3", table=path)
    assert isinstance(info.value, KeyError) and info.value.key == missing
    assert missing in str(info.value) and str(path) in str(info.value)


def test_bad_device_and_column(tmp_path):
    arch = FBNetSpace("cifar100").sample(1, seed=1)[0]
    table = LatencyTable.read(write_table(tmp_path / "t.csv", unit_rows(arch)))
    with pytest.raises(ValueError, match="device: expected one of pixel3, raspi4, edgegpu, eyeriss, fpga, got 'tpu'"):
        table_latency(arch, "tpu", table=table)
    assert table_latency(arch, "eyeriss", table=table) == 26.0  # a simulated device: 26 blocks at 1.0
    with pytest.raises(ValueError, match="column"):
        table.value(block_keys(arch)[0], "latency")
    assert table.value(block_keys(arch)[0], "fpga_energy") == 1.0


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file .*nope.csv"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="no file"):
        table_latency(FBNetSpace().decode([0] * 22), "pixel3", table=tmp_path / "nope.csv")


GOOD = ["FC_Cin8_Cout2", "cifar100", "0.5", "1", "2.25", "3e-05", "0.0", "0", "1", "2"]


@pytest.mark.parametrize("rows, header, where", [
    ([GOOD], ["block_key", "used_by", "edgegpu_latency", "edgegpu_energy", "raspi4", "pixel3_latency",
              "eyeriss_latency", "eyeriss_energy", "fpga_latency", "fpga_energy"], "line 1, column 5 (raspi4_latency)"),
    ([GOOD], COLUMNS + ("extra",), "line 1: header: expected 10 columns, got 11"),
    ([GOOD], COLUMNS[:9], "line 1, column 10 (fpga_energy): header: expected 'fpga_energy', got nothing"),
    ([GOOD, GOOD[:9]], COLUMNS, "line 3: expected 10 fields, got 9"),
    ([GOOD, ["FC_Cin8_Cout3", "cifar100", "0.5", "x"] + GOOD[4:]], COLUMNS,
     "line 3, column 4 (edgegpu_energy): expected a non-negative decimal number, got 'x'"),
    ([["FC_Cin8_Cout2", "cifar100", "nan"] + GOOD[3:]], COLUMNS, "line 2, column 3 (edgegpu_latency)"),
    ([["FC_Cin8_Cout2", "cifar100", "-1"] + GOOD[3:]], COLUMNS, "line 2, column 3"),
    ([["FC_Cin8_Cout2", "cifar100", " 1"] + GOOD[3:]], COLUMNS, "line 2, column 3"),
    ([["FC_Cin8_Cout2", "cifar100", "1e999"] + GOOD[3:]], COLUMNS, "line 2, column 3"),
    ([GOOD, GOOD], COLUMNS, "line 3, column 1 (block_key): duplicate key 'FC_Cin8_Cout2' (first on line 2)"),
    ([["FC_Cin8_Cout2", "imagenet"] + GOOD[2:]], COLUMNS, "line 2, column 2 (used_by): expected one of"),
    ([["Conv_H4_W4"] + GOOD[1:]], COLUMNS, "line 2, column 1 (block_key): expected a ConvNorm_"),
    ([["FC_Cin08_Cout2"] + GOOD[1:]], COLUMNS, "line 2, column 1"),
    ([GOOD, []], COLUMNS, "line 3: expected 10 fields, got 0"),  # a blank line
])
def test_strict_parsing_names_file_line_and_column(tmp_path, rows, header, where):
    path = tmp_path / "bad.csv"
    lines = [",".join(header)] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TableError) as info:
        LatencyTable.read(path)
    assert str(info.value).startswith(f"{path}: ") and where in str(info.value), str(info.value)
    assert isinstance(info.value, ValueError)


def test_empty_and_binary_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TableError, match="line 1: empty file"):
        LatencyTable.read(tmp_path / "empty.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TableError, match="not UTF-8"):
        LatencyTable.read(tmp_path / "bin.csv")


def test_a_good_small_table(tmp_path):
    path = tmp_path / "good.csv"
    rows = [COLUMNS, GOOD, ["FC_Cin8_Cout3", ""] + GOOD[2:]]
    path.write_text("".join(",".join(row) + "\n" for row in rows))
    table = LatencyTable.read(path)
    assert len(table) == 2 and "FC_Cin8_Cout2" in table and table.entries["FC_Cin8_Cout3"].used_by == ""
    assert (table.latency("FC_Cin8_Cout2", "edgegpu"), table.latency("FC_Cin8_Cout2", "raspi4"),
            table.latency("FC_Cin8_Cout2", "pixel3")) == (0.5, 2.25, 3e-05)
    assert all(math.isfinite(v) for v in table.entries["FC_Cin8_Cout2"].values.values())


def test_default_table_is_cached():
    assert load_table() is load_table(DEFAULT_PATH) and len(load_table()) == 225
    assert hwnasbench.MEASURED == ("pixel3", "raspi4", "edgegpu") and hwnasbench.DEVICES == hwnasbench.MEASURED + ("eyeriss", "fpga")


def test_string_architectures():
    text = str(FBNetSpace("cifar100").decode([1] * 22))
    assert parse(text) == FBNetSpace("cifar100").decode([1] * 22)
    assert all(k.endswith("_group2") for k in block_keys(text)[1:23] if k.startswith("ConvBlock"))


@pytest.mark.parametrize("setting", SETTINGS)
def test_compiled_device_tables_equal_the_table_sums(setting):
    from pynas.predictor.hwnasbench import compile_device_table

    space = FBNetSpace(setting)
    tokens = space.sample_tokens(400, seed=2)
    tokens[0] = 8  # all skips, identity ones included (priced with their own entries)
    for device in BUNDLED:
        table = compile_device_table(device, setting)
        want = np.array([table_latency(space.decode(t), device) for t in tokens])
        np.testing.assert_allclose(table.predict_batch(tokens), want, rtol=1e-5)


def test_fpga_table_is_no_latency_model():
    """HW-NAS-Bench's FPGA simulator prices only the ConvBlocks: its all-skip network is 0 ms, which
    no latency model may return, so its table is refused (it stays a target for bench/fewshot.py)."""
    from pynas.predictor.hwnasbench import compile_device_table

    assert "fpga" in DEVICES and "fpga" not in BUNDLED
    assert table_latency(FBNetSpace("imagenet").decode([8] * 22), "fpga") == 0.0
    with pytest.raises(ValueError, match="table: expected every network of the space > 0 ms, got a minimum of 0.0"):
        compile_device_table("fpga")


def test_device_bundle_round_trip(tmp_path):
    from pynas.predictor import bundle
    from pynas.predictor.hwnasbench import save_bundle

    folder = save_bundle(tmp_path / "raspi4", "raspi4", samples=50)
    p = bundle.load(folder)
    assert p.manifest.kind == "table" and p.manifest.backend == "tflite" and p.manifest.features == []
    arch = FBNetSpace("imagenet").sample(1, seed=3)[0]
    assert p.predict(arch) == pytest.approx(table_latency(arch, "raspi4"), rel=1e-5)
    assert p.predict(str(arch)) == pytest.approx(p.predict(arch))
    assert sum(r["ms"] for r in p.explain(arch)) == pytest.approx(p.predict(arch), rel=1e-5)
    with pytest.raises(BundleError, match="space: expected"):
        bundle.load(folder, space=FBNetSpace("cifar100"))
    with pytest.raises(BundleError, match="a bundle is already there"):
        save_bundle(folder, "raspi4")
