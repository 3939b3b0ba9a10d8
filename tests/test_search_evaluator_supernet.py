"""`supernet:PATH`: the spec, its errors, candidates scored by a tiny supernet (one training step
on digits), determinism, failures as Outcomes, and a tiny search with it."""
import math
import sqlite3

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pynas.data import load_dataset  # noqa: E402
from pynas.search.evaluators import Candidate, make_evaluator  # noqa: E402
from pynas.search.evaluators.supernet import SupernetEvaluator  # noqa: E402
from pynas.search.log import LOG_NAME  # noqa: E402
from pynas.space import get_space  # noqa: E402
from pynas.train.supernet import train_supernet  # noqa: E402

RES = 16


@pytest.fixture(scope="module")
def space():
    return get_space("mnasnet", resolution=RES, num_classes=10, in_channels=1)


@pytest.fixture(scope="module")
def path(space, tmp_path_factory):
    out = tmp_path_factory.mktemp("supernet") / "digits.pt"
    train_supernet(space, load_dataset("digits"), 1, out=out, batch_size=32, train_images=64, max_steps=1)
    return out


def candidates(space, n, seed):
    return [Candidate(tuple(int(v) for v in t), space.decode(t), str(space.decode(t)))
            for t in space.sample_tokens(n, seed=seed)]


def test_spec_and_bad_input(space, path, tmp_path):
    evaluator = make_evaluator(f"supernet:{path}", space)
    assert isinstance(evaluator, SupernetEvaluator)
    assert "digits" in evaluator.describe()
    with pytest.raises(ValueError, match="missing.pt: expected a file written by `pynas supernet train`, got nothing"):
        make_evaluator(f"supernet:{tmp_path / 'missing.pt'}", space)
    with pytest.raises(ValueError, match="expected supernet:PATH"):
        make_evaluator("supernet:", space)
    with pytest.raises(ValueError, match="fidelity: expected none with a supernet: evaluator"):
        make_evaluator(f"supernet:{path}", space, fidelity=12)
    with pytest.raises(ValueError, match=r"expected space mnasnet .*'resolution': 32"):
        make_evaluator(f"supernet:{path}", get_space("mnasnet", resolution=32, num_classes=10, in_channels=1),
                       options={"exact": True})
    with pytest.raises(ValueError, match=r"expected a supernet of space fbnet \(the search's\), got one of mnasnet"):
        make_evaluator(f"supernet:{path}", get_space("fbnet"))
    with pytest.raises(ValueError, match=r"exact: expected true or false, got 'yes'"):
        make_evaluator(f"supernet:{path}", space, options={"exact": "yes"})


def test_proxy_for_the_imagenet_shaped_space(space, path):
    """A search of the 224 px RGB space (the bundle's) scored by a supernet of grey small images: the
    tokens decoded in the supernet's own space, the same numbers as a search of that space."""
    imagenet = get_space("mnasnet")
    proxy = make_evaluator(f"supernet:{path}", imagenet, options={"calibration_images": 50, "val_images": 50})
    own = make_evaluator(f"supernet:{path}", space, options={"calibration_images": 50, "val_images": 50})
    rows = imagenet.sample_tokens(2, seed=1)
    big = [Candidate(tuple(int(v) for v in t), imagenet.decode(t), str(imagenet.decode(t))) for t in rows]
    assert [o.accuracy for o in proxy.evaluate(big)] == [o.accuracy for o in own.evaluate(candidates(space, 2, 1))]
    assert "proxy: each architecture's tokens in mnasnet" in proxy.describe()
    assert proxy.fingerprint()["proxy_space"] == space.options() and own.fingerprint()["proxy_space"] is None
    other = load_dataset("digits", seed=1)  # another split: another sha256
    with pytest.raises(ValueError, match="dataset digits: expected sha256 .* got"):
        SupernetEvaluator(path, space, data=other)
    with pytest.raises(ValueError, match="calibration_images: expected an integer >= 1, got 0"):
        SupernetEvaluator(path, space, calibration_images=0)


def test_candidates_are_scored_deterministically(space, path):
    evaluator = SupernetEvaluator(path, space, calibration_images=100, val_images=200)
    batch = candidates(space, 3, seed=0)
    first = evaluator.evaluate(batch)
    assert all(o.ok and 0 <= o.accuracy <= 100 and o.seconds > 0 for o in first)
    again = SupernetEvaluator(path, space, calibration_images=100, val_images=200).evaluate(batch)
    assert [o.accuracy for o in again] == [o.accuracy for o in first]
    fingerprint = evaluator.fingerprint()
    assert fingerprint["evaluator"] == "supernet" and len(fingerprint["sha256"]) == 64
    assert fingerprint["dataset"] == "digits" and fingerprint["val_images"] == 200


def test_non_finite_outputs_and_bad_tokens_are_failures(space, path):
    evaluator = SupernetEvaluator(path, space, calibration_images=50, val_images=50)
    with torch.no_grad():
        evaluator.supernet.classifier.bias.fill_(math.nan)
    good = candidates(space, 1, seed=0)[0]
    nan, bad = evaluator.evaluate([good, Candidate((99,) * 42, None, "bad")])
    assert not nan.ok and nan.accuracy is None and "not finite" in nan.error
    assert not bad.ok and "not an architecture of the supernet's space" in bad.error


class MacsLatency:
    """A stand-in latency model (the shipped bundles predict nonsense at 16 x 16): MACs / 1e6 ms."""
    name, path = "macs", None
    predictor = type("P", (), {"manifest": type("M", (), {"files": {}})()})()

    def __init__(self, space):
        self.space = space

    def predict_batch(self, tokens):
        from pynas.ir import lower

        return np.array([lower(self.space.decode(t)).macs / 1e6 for t in tokens])


def test_a_tiny_search(space, path, tmp_path, monkeypatch):
    """Random search, budget 8, every evaluation by the supernet, logged as done."""
    from pynas import search
    from pynas.search import loop

    monkeypatch.setattr(loop, "target_model", lambda predictor, space: MacsLatency(space))
    done = search.run(space, None, 2.0, f"supernet:{path}", 8, tmp_path / "run", strategy="random", seed=0,
                      check_range=False)
    assert done.stop_reason == "budget" and done.evaluated == 8
    with sqlite3.connect(done.folder / LOG_NAME) as db:
        rows = db.execute("SELECT status, accuracy FROM samples WHERE cached = 0").fetchall()
    assert len(rows) == 8 and all(status == "done" and 0 <= accuracy <= 100 for status, accuracy in rows)
