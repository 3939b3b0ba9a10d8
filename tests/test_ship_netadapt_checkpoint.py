"""NetAdapt's checkpoint (pynas/ship/checkpoint.py, `netadapt.adapt(..., checkpoint=)`): a run killed
after step k and run again resumes at step k + 1 and ends as the uninterrupted run (steps, architecture,
the fine-tuned network's weights bitwise); another run's checkpoint is refused naming the field; a
damaged one is one line naming the file."""
from __future__ import annotations

import json

import pytest

from pynas.arch import parse
from pynas.ship import checkpoint, netadapt
from tests.test_ship_netadapt import MacsModel, ParamsEvaluator

# Three width groups and three ir stages: 6 proposals a step, cheap to lower (64 px).
SMALL = parse("net_res64_cls10:stem_k3_s2_c16:ir_r1_k3_s2_e4_c32:ir_r2_k3_s2_e4_c48:ir_r2_k5_s2_e4_c64_se0.25:"
              "head_c64")
FRACTION, DELTA = 0.9, 0.03  # 4 steps
# Two width groups and two ir stages: 4 proposals a step, each a fine-tune.
TINY = parse("net_res64_cls10:stem_k3_s2_c16:ir_r1_k3_s2_e4_c32:ir_r1_k5_s2_e4_c48_se0.25:head_c64")


class Interrupted(Exception):
    pass


def _kill_after(step: int, lines: list):
    """A log that records lines and raises once step `step` is accepted (as a kill would stop the run)."""
    def say(line: str) -> None:
        lines.append(line)
        if line.startswith(f"step {step}: ") and "ratio" in line:
            raise Interrupted
    return say


def _adapt(evaluator, folder, model=None, arch=SMALL, fraction=FRACTION, delta=DELTA, **options):
    model = model or MacsModel()
    return netadapt.adapt(arch, model, fraction * model.predict(arch), evaluator, delta_fraction=delta,
                          checkpoint=folder, **options)


def test_a_stateless_run_resumes_where_it_stopped(tmp_path):
    whole = _adapt(ParamsEvaluator(), None)
    assert len(whole.steps) >= 3
    lines = []
    with pytest.raises(Interrupted):
        _adapt(ParamsEvaluator(), tmp_path / "ckpt", log=_kill_after(2, lines))
    record = json.loads((tmp_path / "ckpt" / checkpoint.RECORD).read_text())
    assert len(record["steps"]) == 2 and record["scorer_state"] is None  # nothing carried: no state file
    judge, lines = ParamsEvaluator(), []
    resumed = _adapt(judge, tmp_path / "ckpt", log=lines.append)
    assert SMALL not in judge.seen  # the seed is not evaluated again
    assert resumed.to_json() == whole.to_json() and resumed.steps == whole.steps
    assert lines[1].startswith("resumed at step 3 from checkpoint ")
    # A finished run's checkpoint resumes to its end at once; max_steps counts the steps before too.
    judge = ParamsEvaluator()
    assert _adapt(judge, tmp_path / "ckpt").to_json() == whole.to_json() and judge.seen == []
    assert len(_adapt(ParamsEvaluator(), tmp_path / "short", max_steps=1).steps) == 1
    again = _adapt(ParamsEvaluator(), tmp_path / "short", max_steps=2)
    assert again.steps == whole.steps[:2] and again.stop == "max-steps"


def test_a_fine_tuned_run_resumes_bitwise(tmp_path):
    """FineTuneScorer on digits (8 px, 300 images): killed after step 1 and resumed by a new scorer
    (a new process's), the steps, architecture, network and the trained seed are the uninterrupted run's."""
    pytest.importorskip("sklearn")
    torch = pytest.importorskip("torch")
    from pynas.data import load_dataset
    from pynas.ship import tuning

    data = load_dataset("digits", seed=0)

    def scorer():
        return tuning.FineTuneScorer(data, pretrain_epochs=1, resolution=8, train_images=300, holdout_images=100,
                                     tune_images=128, batch_size=64)

    options = {"arch": TINY, "fraction": 0.7, "max_steps": 2}
    whole_scorer = scorer()
    whole = _adapt(whole_scorer, tmp_path / "whole", **options)
    assert len(whole.steps) == 2
    with pytest.raises(Interrupted):
        _adapt(scorer(), tmp_path / "ckpt", log=_kill_after(1, []), **options)
    assert [p.name for p in sorted((tmp_path / "ckpt").iterdir())] == ["adapt.json", "scorer-step1.pt"]
    resumed_scorer, lines = scorer(), []
    resumed_scorer.start = None  # the seed must not be trained again (calling it would fail)
    resumed = _adapt(resumed_scorer, tmp_path / "ckpt", log=lines.append, **options)
    assert any(line.startswith("resumed at step 2 ") for line in lines)
    assert resumed.to_json() == whole.to_json() and resumed.arch == whole.arch
    assert resumed_scorer.steps_trained == whole_scorer.steps_trained and resumed_scorer.proxy == whole_scorer.proxy
    for got, want in ((resumed_scorer.model, whole_scorer.model), (resumed_scorer.pretrained[1], whole_scorer.pretrained[1])):
        got, want = got.state_dict(), want.state_dict()
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    # The state file is weights only: it loads with weights_only=True (no pickled objects).
    state = torch.load(tmp_path / "ckpt" / f"scorer-step{len(whole.steps)}.pt", weights_only=True)
    assert set(state) == {"proxy", "model", "pretrained_proxy", "pretrained", "steps_trained", "torch_rng"}


class OtherModel(MacsModel):
    pass


@pytest.mark.parametrize("change, field", [
    ({"arch": SMALL.replace(stages=SMALL.stages[:-1])}, "seed_arch"),
    ({"fraction": 0.7}, "target_ms"),
    ({"delta": 0.04}, "delta_ms"),
    ({"model": OtherModel()}, "predictor"),
])
def test_another_runs_checkpoint_is_refused_naming_the_field(tmp_path, change, field):
    _adapt(ParamsEvaluator(), tmp_path, max_steps=1)
    judge = ParamsEvaluator()
    with pytest.raises(ValueError, match=rf"^--checkpoint {tmp_path}: {field}: expected .* \(this run\), got .* "
                                         rf"\(the checkpoint's\)"):
        _adapt(judge, tmp_path, **change)
    assert judge.seen == []  # refused before any evaluation


def test_another_scorer_is_refused(tmp_path):
    class Other(ParamsEvaluator):
        def fingerprint(self):
            return {"evaluator": "params", "version": 2}

    _adapt(ParamsEvaluator(), tmp_path, max_steps=1)
    with pytest.raises(ValueError, match=r"^--checkpoint .*: scorer: expected 'params .*\"version\": 2"):
        _adapt(Other(), tmp_path)


def test_a_damaged_checkpoint_is_one_line_naming_the_file(tmp_path):
    _adapt(ParamsEvaluator(), tmp_path, max_steps=2)
    record_path = tmp_path / checkpoint.RECORD
    text = record_path.read_text()
    cases = [(text[:len(text) // 2], "not JSON"), ("[]", "expected a JSON object"),
             (text.replace('"format_version": 1', '"format_version": 7'), "format: expected"),
             (text.replace('"start_accuracy"', '"start_acc"'), "fields: missing start_accuracy"),
             (text.replace('"kind": "', '"kind": "x', 1), "steps: ValueError: kind: expected channels")]
    for damaged, problem in cases:
        record_path.write_text(damaged)
        with pytest.raises(ValueError) as caught:
            _adapt(ParamsEvaluator(), tmp_path)
        message = str(caught.value)
        assert message.startswith(f"{record_path}: damaged NetAdapt checkpoint: ") and problem in message, message
        assert "\n" not in message


class TensorScorer(netadapt.Scorer):
    """A stateful scorer as cheap as arithmetic: it carries a tensor that each accepted step changes."""
    name = "tensor"

    def __init__(self):
        import torch

        self.carried = torch.zeros(3)

    def start(self, arch):
        self.carried += 1
        return 50.0

    def score(self, archs):
        from pynas.ir.lower import lower

        self.pending = [float(lower(a).params) / 1e6 for a in archs]
        return [(50.0 + p + float(self.carried.sum()), None) for p in self.pending]

    def accept(self, index):
        self.carried += self.pending[index]

    def state(self):
        return {"carried": self.carried.clone()}

    def restore(self, state):
        self.carried = state["carried"].clone()


def test_a_damaged_state_file_is_named_and_a_scorer_without_state_is_refused(tmp_path):
    pytest.importorskip("torch")
    _adapt(TensorScorer(), tmp_path / "ckpt", max_steps=1)
    state_path = tmp_path / "ckpt" / "scorer-step1.pt"
    state_path.write_bytes(state_path.read_bytes()[:-10])  # truncated
    with pytest.raises(ValueError, match=rf"^{state_path}: damaged NetAdapt checkpoint: sha256: expected"):
        _adapt(TensorScorer(), tmp_path / "ckpt")
    state_path.unlink()
    with pytest.raises(ValueError, match=rf"^{state_path}: damaged NetAdapt checkpoint: missing"):
        _adapt(TensorScorer(), tmp_path / "ckpt")

    class Stateless(netadapt.Scorer):
        name = "stateless"

    with pytest.raises(ValueError, match="^--checkpoint: expected a scorer with state"):
        _adapt(Stateless(), tmp_path / "other")


def test_a_stateful_resume_carries_the_state(tmp_path):
    pytest.importorskip("torch")
    whole_scorer = TensorScorer()
    whole = _adapt(whole_scorer, None)
    with pytest.raises(Interrupted):
        _adapt(TensorScorer(), tmp_path, log=_kill_after(2, []))
    resumed_scorer = TensorScorer()
    assert _adapt(resumed_scorer, tmp_path).to_json() == whole.to_json()
    assert resumed_scorer.carried.tolist() == whole_scorer.carried.tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapt.json", f"scorer-step{len(whole.steps)}.pt"]


def test_the_folder_is_checked_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    for folder, message in ((tmp_path / "file", "expected a folder, got a file"),
                            (tmp_path / "no" / "such", "expected a folder in an existing folder"),
                            (tmp_path / "mine", "expected a new or empty folder or a NetAdapt checkpoint, got a folder "
                                                "holding notes.txt"),
                            (7, "expected a folder path")):
        judge = ParamsEvaluator()
        with pytest.raises(ValueError, match=f"^--checkpoint.*{message}"):
            _adapt(judge, folder)
        assert judge.seen == []


def test_measured_rounds_are_durable_and_a_resume_keeps_the_tightened_aim(tmp_path, monkeypatch, fake_verify):
    """Killed after the first measurement (over T) and a step taken under the tightened aim, the run
    resumes under that aim without measuring again what was measured, and ends as the uninterrupted run."""
    from pynas.ship import plan_check

    monkeypatch.setattr(plan_check, "cannot_measure", lambda predictor: None)
    whole = _adapt(ParamsEvaluator(), None, verify_rounds=3, verify=fake_verify([1.06, 1.0]))
    assert len(whole.rounds) == 2 and whole.measured_fits and whole.rounds[0]["step"] < len(whole.steps)
    lines = []
    with pytest.raises(Interrupted):
        _adapt(ParamsEvaluator(), tmp_path / "ckpt", verify_rounds=3, verify=fake_verify([1.06]),
               log=_kill_after(whole.rounds[0]["step"] + 1, lines))
    record = json.loads((tmp_path / "ckpt" / checkpoint.RECORD).read_text())
    assert record["rounds"] == whole.rounds[:1]
    verify = fake_verify([1.0])
    resumed = _adapt(ParamsEvaluator(), tmp_path / "ckpt", verify_rounds=3, verify=verify)
    assert len(verify.calls) == 1 and resumed.to_json() == whole.to_json()
