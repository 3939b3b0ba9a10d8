"""`pynas cellfewshot`: a calibrated NAS-Bench-201 lookup bundle from k measured cells, and one-line
errors naming the line and field before any work."""
import numpy as np
import pytest

from pynas.cli import cellfewshot, flags
from pynas.predictor import bundle
from pynas.predictor import cell_decomposition as cd
from pynas.space import nb201


def run(*argv):
    parser = flags.Parser(prog="pynas")
    commands = parser.add_subparsers(dest="command", required=True)
    cellfewshot.add_parsers(commands)
    args = parser.parse_args(["cellfewshot", *argv])
    args.run(args)


def measured_csv(path, device="eyeriss", k=15, seed=0, rows=None):
    data = nb201.benchmark()
    tokens = data.tokens.astype(np.int64)
    pool = np.flatnonzero(cd.connected(tokens))
    chosen = np.random.default_rng(seed).choice(pool, k, replace=False)
    lines = ["arch,ms"] + [f"{nb201.NB201Space().decode(tokens[i])},{data.latency(device)[i]}" for i in chosen]
    if rows is not None:
        lines = rows(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_calibrates_a_held_out_device(tmp_path, capsys):
    csv = measured_csv(tmp_path / "m.csv")
    run(str(csv), "-o", str(tmp_path / "board"), "--exclude", "eyeriss", "--backend", "simulator", "--threads", "1")
    out = capsys.readouterr().out
    assert "calibrated on 15 cells (auto -> " in out and "bases pixel3, raspi4, fpga (pairwise)" in out
    loaded = bundle.load(tmp_path / "board")
    assert loaded.manifest.kind == "lookup" and loaded.manifest.device == {"name": "board"}
    assert loaded.manifest.backend == "simulator" and loaded.manifest.threads == 1
    truth = nb201.benchmark().latency("eyeriss")
    joined = cd.connected(nb201.benchmark().tokens)
    assert cd.accuracy(loaded.ms[joined], truth[joined])["rmspe"] < 5.0  # eyeriss is additive: 15 cells suffice
    report, _ = cd.read_calibration(tmp_path / "board")
    assert report["k"] == 15


@pytest.mark.parametrize("rows, match", [
    (lambda lines: ["arch,latency"] + lines[1:], r"m.csv: line 1: header: expected 'arch,ms'"),
    (lambda lines: lines[:3] + ["mnasnet-a1,3.0"], r"m.csv: line 4: arch: NAS-Bench-201 cell 'mnasnet-a1'"),
    (lambda lines: lines[:3] + [lines[2]], r"m.csv: line 4: arch: the cell of line 3 again"),
    (lambda lines: lines[:3] + [lines[3].rsplit(",", 1)[0] + ",-1"], r"m.csv: line 4: ms: expected a latency in ms > 0"),
    (lambda lines: lines * 2, r"m.csv: line 17: ms: expected a latency in ms > 0, got .ms."),  # a second header
])
def test_bad_measured_file(tmp_path, rows, match):
    csv = measured_csv(tmp_path / "m.csv", k=15, rows=rows)
    with pytest.raises(ValueError, match=match):
        run(str(csv), "-o", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_too_many_cells(tmp_path):
    csv = measured_csv(tmp_path / "m.csv", k=21)
    with pytest.raises(ValueError, match=r"m.csv: expected at most 20 measured cells \(few-shot\), got 21"):
        run(str(csv), "-o", str(tmp_path / "out"))


def test_refuses_to_overwrite_and_bad_flags(tmp_path, capsys):
    csv = measured_csv(tmp_path / "m.csv", k=5)
    run(str(csv), "-o", str(tmp_path / "b"), "--method", "scale", "--bases", "measured")
    assert "(scale); bases pixel3, raspi4, eyeriss, fpga (measured)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="a bundle is already there"):
        run(str(csv), "-o", str(tmp_path / "b"))
    run(str(csv), "-o", str(tmp_path / "b"), "--force", "--method", "bases", "--bases", "additive")
    for argv in (["--method", "magic"], ["--bases", "xgboost"], ["--exclude", "edgegpu"], ["--threads", "-1"]):
        with pytest.raises(SystemExit):
            run(str(csv), "-o", str(tmp_path / "c"), *argv)
    with pytest.raises(ValueError, match="expected a CSV file of measured networks"):
        run(str(tmp_path / "missing.csv"), "-o", str(tmp_path / "c"))


def test_extra_lookup_bundles_as_bases(tmp_path, capsys):
    csv = measured_csv(tmp_path / "m.csv", device="fpga", k=8, seed=3)
    run(str(csv), "-o", str(tmp_path / "first"), "--exclude", "fpga")
    capsys.readouterr()
    run(str(csv), "-o", str(tmp_path / "second"), "--exclude", "fpga", "--base", str(tmp_path / "first"),
        "--method", "bases")
    assert "bases pixel3, raspi4, eyeriss, first (pairwise)" in capsys.readouterr().out
    report, _ = cd.read_calibration(tmp_path / "second")
    assert report["bases"] == ["pixel3", "raspi4", "eyeriss", "first"]
    with pytest.raises(ValueError, match=r"base pixel3: expected a lookup bundle of space nb201 \(one latency per cell\), got kind .table. of space .fbnet."):
        run(str(csv), "-o", str(tmp_path / "third"), "--base", "pixel3")  # HW-NAS-Bench's FBNet table bundle
    assert not (tmp_path / "third").exists()
