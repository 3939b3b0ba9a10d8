"""`pynas export` (pynas/cli/export.py): a file written and checked; bad input (a format, its missing
runtime, -o, an architecture, a run folder, --weights) is one line, exit 2, before anything is written;
a file that fails its check is kept and the command fails."""
import pytest

import pynas.cli
from pynas.cli import export as export_cli, flags

ARCH = "net_res32_cls10:stem_k3_s2_c16:ir_r2_k5_s2_e6_c24_se0.25:ir_r1_k3_s1_e3_c32_poolskip:head_c64_nhs"


def parser():
    p = flags.Parser(prog="pynas")
    export_cli.add_parsers(p.add_subparsers(dest="command", required=True))
    return p


@pytest.fixture
def run(monkeypatch, capsys):
    """`pynas ...` through pynas.cli.main (its one-line errors and exit codes) with `export` registered."""
    monkeypatch.setattr(pynas.cli, "build_parser", parser)

    def call(*args):
        code = pynas.cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return call


def test_a_torch_export(tmp_path, run):
    pytest.importorskip("torch")
    code, out, err = run("export", ARCH, "--format", "torch", "-o", tmp_path / "m.pt", "--seed", 7)
    assert code == 0, err
    assert f"exported {ARCH}" in out and "initialised weights (no trained weights), seed 7" in out
    assert "check      passed: torch vs PyTorch (eval) on 3 seeded inputs: max abs diff 0" in out
    assert "pynas verify" in out and (tmp_path / "m.pt").is_file()


def test_an_onnx_export_of_a_torch_export(tmp_path, run):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    assert run("export", ARCH, "--format", "torch", "-o", tmp_path / "m.pt")[0] == 0
    code, out, err = run("export", "--weights", tmp_path / "m.pt", "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert code == 0, err
    assert f"weights    the torch export {tmp_path / 'm.pt'}" in out and "layer(s) folded" in out
    assert "check      passed: onnxruntime vs PyTorch" in out and "--backend onnxruntime" in out


def test_a_file_that_fails_its_check_is_kept_and_fails(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from pynas.ship import export as ex

    real = ex.check

    def off_by_one(fmt, path, reference, arch, threads=1):
        result = real(fmt, path, reference, arch, threads)
        result.max_abs += 1.0
        return result

    monkeypatch.setattr(ex, "check", off_by_one)
    args = parser().parse_args(["export", "mnasnet-a1", "--format", "torch", "-o", str(tmp_path / "a1.pt")])
    with pytest.raises(export_cli.ExportCheckFailed, match=r"check failed: FAILED: .* \(the file is kept at "):
        args.run(args)
    assert torch.load(tmp_path / "a1.pt", weights_only=True)["format"] == "pynas-export"


def missing(name):
    return {"onnxruntime": "onnxruntime needs onnxruntime, onnx (pip install 'pynas[onnx]')",
            "litert": "litert needs ai_edge_litert, litert_torch (pip install 'pynas[litert]')"}.get(name)


@pytest.mark.parametrize("args, message", [
    (["--format", "pt"], "argument --format: invalid choice: 'pt' (choose from "),
    (["--format", "onnx"], "--format onnx: not installed here: onnxruntime needs onnxruntime, onnx "
                           "(pip install 'pynas[onnx]')"),
    (["--format", "tflite"], "--format tflite: not installed here: litert needs ai_edge_litert, litert_torch "
                             "(pip install 'pynas[litert]')"),
    (["--format", "torch", "--seed", "-1"], "argument --seed: expected an integer 0..4294967295, got '-1'"),
])
def test_bad_flags(tmp_path, run, monkeypatch, args, message):
    from pynas import runtimes
    from pynas.ship import export as ex

    monkeypatch.setattr(runtimes, "unavailable", missing)
    monkeypatch.setattr(ex, "resolve_source", lambda *a, **k: pytest.fail("work done before the flags were checked"))
    code, out, err = run("export", "mnasnet-a1", "-o", tmp_path / "m.out", *args)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert message in err
    assert list(tmp_path.iterdir()) == []


def bad_inputs(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "old.pt").write_bytes(b"an earlier export")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("not a torch file")
    out = str(tmp_path / "m.pt")
    return [
        (["mnasnet-a1", "-o", str(tmp_path / "folder")], f"--out {tmp_path / 'folder'}: expected a file to write, "
                                                          f"got an existing folder"),
        (["mnasnet-a1", "-o", str(tmp_path / "old.pt")], f"--out {tmp_path / 'old.pt'}: expected a new file, got an "
                                                          f"existing one (--force overwrites it)"),
        (["mnasnet-a1", "-o", str(tmp_path / "nowhere" / "m.pt")], "expected a file in an existing folder, got no "
                                                                    "folder"),
        (["net_res32_cls10:stem_k3_s2", "-o", out], "ARCH_OR_RUN: expected a preset, an architecture string or a "
                                                    "search folder, got 'net_res32_cls10:stem_k3_s2'"),
        (["mnasnet-z9", "-o", out], "ARCH_OR_RUN: expected a preset, an architecture string or a search folder, got "
                                    "'mnasnet-z9': unknown preset"),
        (["|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|none~2|", "-o", out],
         "ARCH_OR_RUN: expected a preset or a pynas architecture string, got a NAS-Bench-201 cell"),
        (["runs/missing", "-o", out], "ARCH_OR_RUN: expected an architecture string, a preset or a search folder, got "
                                      "'runs/missing' (no such folder)"),
        ([str(tmp_path / "run"), "-o", out], f"ARCH_OR_RUN {tmp_path / 'run'}: expected a finished search folder "
                                             f"with best.txt and summary.json"),
        (["-o", out], "ARCH_OR_RUN: expected an architecture string, a preset or a search folder (or --weights FILE "
                      "of a torch export), got none"),
        (["mnasnet-a1", "--weights", str(tmp_path / "none.pt"), "-o", out],
         f"--weights {tmp_path / 'none.pt'}: expected a file, got nothing"),
        (["mnasnet-a1", "--weights", str(tmp_path / "notes.txt"), "-o", out],
         f"--weights {tmp_path / 'notes.txt'}: expected a torch.save file of dicts and tensors, got an unreadable file"),
    ]


@pytest.mark.parametrize("index", range(11))
def test_bad_inputs(tmp_path, run, index):
    pytest.importorskip("torch")
    args, message = bad_inputs(tmp_path)[index]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, err = run("export", "--format", "torch", *args)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("pynas export: error: ") and message in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    assert (tmp_path / "old.pt").read_bytes() == b"an earlier export"


def test_a_best_txt_that_is_not_an_architecture(tmp_path, run):
    pytest.importorskip("torch")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.txt").write_text("net_res32_cls10:stem_k9_s2_c16:head_c64\naccuracy 1\n")
    code, out, err = run("export", tmp_path / "run", "--format", "torch", "-o", tmp_path / "m.pt")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"ARCH_OR_RUN {tmp_path / 'run'}: best.txt:1: expected a preset or an architecture string" in err
    (tmp_path / "run" / "best.txt").write_text(ARCH + "\n")
    code, out, err = run("export", tmp_path / "run", "--format", "torch", "-o", tmp_path / "m.pt")
    assert code == 2 and "expected summary.json next to best.txt" in err and not (tmp_path / "m.pt").exists()
