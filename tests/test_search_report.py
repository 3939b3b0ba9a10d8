"""`pynas.search.report.read_pick`: the one reader of a finished search's pick (pynas verify, scale
and export RUN), and its errors, each naming the command's field, the folder and the file."""
import json

import pytest

from pynas.search.report import read_pick
from pynas.space import get_space

SPACE = get_space("mnasnet", resolution=32)
BEST, OTHER = (str(a) for a in SPACE.sample(2, seed=5))


def finished(folder, first_line=BEST, **summary):
    folder.mkdir(exist_ok=True)
    (folder / "best.txt").write_text(f"{first_line}\naccuracy 61.5\n")
    record = {"predictor": "tiny", "best": {"arch": BEST, "accuracy": 61.5}, "verified_pick": None,
              "evaluator": "zero-cost:params", "space": {"name": "mnasnet", "options": {"resolution": 32}}}
    (folder / "summary.json").write_text(json.dumps({**record, **summary}))
    return folder


def test_the_pick_and_what_the_summary_says_of_the_run(tmp_path):
    pick = read_pick(finished(tmp_path / "run"))
    assert str(pick.arch) == BEST and pick.predictor == "tiny" and pick.accuracy == 61.5
    assert pick.evaluator == "zero-cost:params" and pick.space["name"] == "mnasnet"


def test_a_verified_pick_is_the_one_best_txt_names(tmp_path):
    folder = finished(tmp_path / "run", OTHER, verified_pick={"arch": OTHER, "rank": 2, "accuracy": 60.0})
    pick = read_pick(folder)
    assert str(pick.arch) == OTHER and pick.accuracy == 60.0


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "best.txt").unlink(), "ARCH RUN: expected a finished search folder with best.txt and "
                                          "summary.json (`pynas search --report RUN` writes both"),
    (lambda f: (f / "best.txt").write_text("no arch\n"), "ARCH RUN: best.txt:1: expected a preset or an "
                                                         "architecture string, got 'no arch'"),
    (lambda f: (f / "best.txt").write_text(""), "ARCH RUN: best.txt:1: expected a preset or an architecture "
                                                "string, got ''"),
    (lambda f: (f / "summary.json").unlink(), "ARCH RUN: expected summary.json next to best.txt"),
    (lambda f: (f / "summary.json").write_text("{"), "ARCH RUN: summary.json: expected a search summary with "
                                                     "predictor, best (arch, accuracy), evaluator and space, got "
                                                     "JSONDecodeError"),
    (lambda f: (f / "summary.json").write_text('{"best": null, "predictor": "x"}'),
     "ARCH RUN: summary.json: expected a search summary with predictor, best (arch, accuracy), evaluator and space, "
     "got TypeError"),
    (lambda f: (f / "best.txt").write_text(OTHER + "\n"), f"ARCH RUN: best.txt:1: expected the pick summary.json "
                                                          f"records ({BEST[:60]}...), got {OTHER[:60]}...: rerun "
                                                          f"`pynas search --report RUN`"),
])
def test_what_is_not_a_finished_run_is_one_error_naming_the_file(tmp_path, damage, message):
    folder = finished(tmp_path / "run")
    damage(folder)
    with pytest.raises(ValueError) as caught:
        read_pick(folder)
    assert message.replace("RUN", str(folder)) in str(caught.value) and "\n" not in str(caught.value)


def test_the_field_is_the_commands(tmp_path):
    with pytest.raises(ValueError, match=f"^ARCH_OR_RUN {tmp_path}: expected a finished search folder"):
        read_pick(tmp_path, where="ARCH_OR_RUN")
