"""`pynas scale`: its outputs, and every bad input ending in one line on stderr, exit 2, before any
work. The command runs through `pynas.cli.main` with a parser that holds it (the lead registers
the module in pynas.cli)."""
import json
import warnings

import pytest

import pynas.cli
from pynas.arch import parse
from pynas.cli import flags, scale
from pynas.ship import scaling

TINY = "net_res32_cls10:stem_k3_s2_c8:ds_r1_k3_s1_c8:ir_r1_k3_s2_e6_c16:ir_r2_k3_s2_e6_c24:head_c64"
SHIPPED = "x86-avx512-native"  # made on another machine: every prediction warns so on stderr


@pytest.fixture(autouse=True)
def scale_command(monkeypatch):
    def build_parser():
        parser = flags.Parser(prog="pynas")
        commands = parser.add_subparsers(dest="command", required=True)
        scale.add_parsers(commands)
        return parser

    monkeypatch.setattr(pynas.cli, "build_parser", build_parser)


def run(capsys, *argv):
    status = pynas.cli.main(["scale", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def fails(capsys, *argv) -> str:
    status, out, err = run(capsys, *argv)
    assert status == 2, (status, out, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err and out == "", (out, err)
    assert err.startswith("pynas scale: error: "), err
    return err.strip()


def shipped():
    from pynas.predictor import bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bundle.load(SHIPPED)


def test_phi_prints_the_scaled_string_and_the_table(capsys):
    status, out, err = run(capsys, "mnasnet-a1", "--phi", 2, "--predictor", SHIPPED)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"latency model: {SHIPPED} (AMD EPYC")  # not this machine: its device is named
    assert parse(lines[1]) == scaling.compound_scale("mnasnet-a1", 2)
    rows = [line.split() for line in lines[5:7]]  # after the header and its rule
    assert [r[0] for r in rows] == ["0", "2"] and [r[1] for r in rows] == ["224", "296"]
    expected = scaling.scaling_table("mnasnet-a1", shipped(), phis=(0, 2))
    assert [float(r[-1].rstrip("*")) for r in rows] == pytest.approx([r["predicted_ms"] for r in expected], abs=1e-3)
    assert "describes another machine" in err and "Traceback" not in err


def test_target_picks_the_largest_phi(capsys, tmp_path):
    out_json = tmp_path / "scaled.json"
    status, out, err = run(capsys, "mnasnet-a1", "--target-ms", 8, "--predictor", SHIPPED, "--json", out_json)
    assert status == 0, err
    fit = scaling.largest_phi("mnasnet-a1", shipped(), 8)
    assert out.splitlines()[1] == str(fit.arch)
    written = json.loads(out_json.read_text())
    assert written["mode"] == "target" and written["target_ms"] == 8 and written["predictor"] == SHIPPED
    assert written["chosen"]["phi"] == fit.phi and written["chosen"]["predicted_ms"] <= 8
    assert [r["phi"] for r in written["rows"]] == [0, fit.phi]


def finished_run(folder, best: str, predictor: str) -> None:
    """A search folder as `pynas search --report` leaves it: best.txt and summary.json."""
    (folder / "best.txt").write_text(f"{best}\naccuracy 50.0\n")
    (folder / "summary.json").write_text(json.dumps({
        "predictor": predictor, "best": {"arch": best, "accuracy": 50.0}, "verified_pick": None,
        "evaluator": "zero-cost:params", "space": {"name": "mnasnet", "options": {"resolution": 224}}}))


def test_a_search_runs_folder_scales_its_best_with_its_bundle(capsys, tmp_path):
    best = str(parse(TINY.replace("res32", "res224")))
    finished_run(tmp_path, best, SHIPPED)
    status, out, err = run(capsys, tmp_path, "--phi", 1)  # no --predictor: the run's bundle
    assert status == 0, err
    assert out.splitlines()[0].startswith(f"latency model: {SHIPPED} (")
    assert out.splitlines()[1] == str(scaling.compound_scale(best, 1))
    expected = scaling.scaling_table(best, shipped(), phis=(0, 1))
    rows = [line.split() for line in out.splitlines()[5:7]]  # after the header and its rule
    assert [float(r[-1].rstrip("*")) for r in rows] == pytest.approx([r["predicted_ms"] for r in expected], abs=1e-3)


def test_predictor_overrides_the_runs_bundle_and_a_bad_run_bundle_names_it(capsys, tmp_path):
    best = str(parse(TINY.replace("res32", "res224")))
    finished_run(tmp_path, best, "pixel3")  # a table bundle: scaling refuses it
    error = fails(capsys, tmp_path, "--phi", 1)
    assert f"ARCH {tmp_path}: the run's bundle pixel3 (summary.json; --predictor names another): expected a model " \
           f"bundle (kind xgboost)" in error
    status, out, err = run(capsys, tmp_path, "--phi", 1, "--predictor", SHIPPED)
    assert status == 0 and out.splitlines()[0].startswith(f"latency model: {SHIPPED} ("), err


def test_phi_without_any_bundle_prints_no_latency(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no `pynas device init` defaults here
    status, out, err = run(capsys, TINY, "--phi", -1)
    assert status == 0, err
    assert "no latency column" in err
    assert out.splitlines()[0] == str(scaling.compound_scale(TINY, -1))
    assert out.splitlines()[4].split()[-1] == "-"
    assert fails(capsys, TINY, "--target-ms", 5).startswith("pynas scale: error: --predictor: none given")


def test_bad_inputs_fail_in_one_line(capsys, tmp_path):
    assert "one of the arguments --phi --target-ms is required" in fails(capsys, "mnasnet-a1")
    assert "argument --target-ms: not allowed with argument --phi" in fails(capsys, "mnasnet-a1", "--phi", 1,
                                                                            "--target-ms", 3)
    assert "argument --phi: expected a finite number in [-4, 8], got '9'" in fails(capsys, "mnasnet-a1", "--phi", 9)
    assert "argument --phi: expected a finite number" in fails(capsys, "mnasnet-a1", "--phi", "nan")
    assert "argument --target-ms: expected a finite number in (0" in fails(capsys, "mnasnet-a1", "--target-ms", 0)
    assert "ARCH: unknown preset 'nosuch'" in fails(capsys, "nosuch", "--phi", 1)
    assert "ARCH: token 'r' at position" in fails(capsys, "net_res32_cls10:stem_k3_s2_c8:ds_r_k3_s1_c8:head_c8",
                                                   "--phi", 1)
    assert "ARCH: expected a preset, an architecture string or a search run's folder" in \
        fails(capsys, tmp_path / "nothing", "--phi", 1)
    assert f"ARCH {tmp_path}: expected a finished search folder with best.txt and summary.json" in \
        fails(capsys, tmp_path, "--phi", 1)
    (tmp_path / "best.txt").write_text("not an arch\n")
    assert f"ARCH {tmp_path}: best.txt:1: expected a preset or an architecture string, got 'not an arch'" in \
        fails(capsys, tmp_path, "--phi", 1)
    assert "--alpha, --beta, --gamma: expected alpha * beta^2 * gamma^2 within 0.1 of 2" in \
        fails(capsys, "mnasnet-a1", "--phi", 1, "--alpha", 1.5)
    assert "argument --beta: expected a finite number in [1, inf]" in fails(capsys, "mnasnet-a1", "--phi", 1,
                                                                             "--beta", 0.9)
    assert "--grid: expected with --target-ms" in fails(capsys, "mnasnet-a1", "--phi", 1, "--grid")
    assert "--grid: expected without --alpha/--beta/--gamma" in fails(capsys, "mnasnet-a1", "--target-ms", 5,
                                                                      "--grid", "--gamma", 1.15)
    assert "--json: expected a file in an existing folder" in fails(capsys, "mnasnet-a1", "--phi", 1, "--json",
                                                                    tmp_path / "no" / "x.json")
    deep = TINY.replace("ds_r1", "ds_r13")
    error = fails(capsys, deep, "--phi", 8, "--alpha", 1.4, "--beta", 1.0, "--gamma", 1.2)
    assert "--phi: 8 (depth x14.8, width x1, resolution x4.3) scales the architecture out of pynas's bounds: " \
        "stage.repeats: expected an integer in [0, 64], got 192" in error


def test_bad_bundles_and_targets_fail_in_one_line(capsys):
    assert "--predictor: expected a model bundle (kind xgboost)" in fails(capsys, "mnasnet-a1", "--phi", 1,
                                                                          "--predictor", "pixel3")
    assert "predictor 'nosuch': no bundle of that name" in fails(capsys, "mnasnet-a1", "--phi", 1,
                                                                 "--predictor", "nosuch")
    # 32 px: far below the networks the bundle's term was fitted on, it comes out below 0 ms
    assert f"--predictor: {SHIPPED} cannot price the architecture scaled at phi=0 (net_res32_" in \
        fails(capsys, TINY, "--phi", 1, "--predictor", SHIPPED)
    assert fails(capsys, "mnasnet-a1", "--target-ms", 0.01, "--predictor", SHIPPED).startswith(
        "pynas scale: error: --target-ms: 0.01 ms is below the smallest architecture compound scaling reaches (")


def test_grid_prints_the_chosen_triple_first(capsys, monkeypatch, tmp_path):
    triples = [(1.2, 1.1, 1.15), (1.0, 1.1, 1.3)]
    monkeypatch.setattr(scaling, "coefficient_grid", lambda: triples)  # the full grid takes a minute or two
    status, out, err = run(capsys, "mnasnet-a1", "--target-ms", 8, "--grid", "--predictor", SHIPPED, "--json",
                           tmp_path / "grid.json")
    assert status == 0, err
    written = json.loads((tmp_path / "grid.json").read_text())
    assert written["mode"] == "grid" and len(written["rows"]) == 2
    chosen = max(written["rows"], key=lambda r: r["macs"])
    assert out.splitlines()[1] == chosen["arch"] == written["chosen"]["arch"]
    first = out.splitlines()[5].split()
    assert [float(v) for v in first[1:4]] == [chosen["alpha"], chosen["beta"], chosen["gamma"]]
    assert "2 coefficient triples" in out and "2 reach under 8 ms" in out
