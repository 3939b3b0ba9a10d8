"""NetAdapt's weight-carrying scorer (pynas/ship/tuning.py) and what it rests on: the widths of a
narrower architecture in a layout (`Layout.widths_of`), the BN-folded filter magnitude, the weight
transfer (the pruned network computes what the full one computes with the removed channels
silenced), the held-out split, and the adapt loop carrying the chosen proposal's network."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pynas.arch import parse, scale_width  # noqa: E402
from pynas.ship import netadapt, tuning  # noqa: E402
from pynas.ship.channels import Layout, block_parts, mask_pruned  # noqa: E402
from pynas.torch_builder import build_torch, randomise_batchnorm  # noqa: E402

# Ties of every kind (see tests/test_ship_slimming.py): identity, pooling shortcuts, cn, id, SE.
EVERY_TIE = ("net_res32_cls10_in1:stem_k3_s1_c16:ds_r1_k3_s1_c16_se0.25:ir_r2_k3_s2_e3_c24_se0.25:"
             "ir_r2_k5_s1_e4_c24_poolskip:cn_r2_k3_s2_c32_se0.25:id_r1_s1_c40:ir_r1_k3_s1_e2_c40_poolskip_nhs:"
             "ir_r1_k3_s2_e2_c48_poolskip_se0.5:head_c64")
SMALL = "net_res224_cls1000:stem_k3_s2_c16:ds_r1_k3_s1_c16:ir_r2_k3_s2_e4_c24:ir_r2_k5_s2_e4_c40_se0.25:head_c64"


def _narrower(arch):
    """Stages 1 and 2 (tied by stage 2's pooling shortcut) to 16 channels with stage 1's expansion
    at 2, the cn stage to 24, the id stage and the stage it is tied to to 32, the head to 48: every
    kind of change NetAdapt and a width multiplier make."""
    stages = list(arch.stages)
    stages[1] = dataclasses.replace(stages[1], channels=16, expansion=2.0)
    stages[2] = dataclasses.replace(stages[2], channels=16)
    stages[3] = dataclasses.replace(stages[3], channels=24)
    stages[4] = dataclasses.replace(stages[4], channels=32)
    stages[5] = dataclasses.replace(stages[5], channels=32)
    return arch.replace(stages=tuple(stages), head=dataclasses.replace(arch.head, channels=48))


def test_widths_of_reproduces_a_narrower_architecture_and_refuses_others():
    arch = parse(EVERY_TIE)
    layout = Layout.of(arch)
    target = _narrower(arch)
    widths = layout.widths_of(target)
    assert layout.apply(arch, widths) == target
    assert layout.widths_of(arch) == layout.full()
    wider = arch.replace(head=dataclasses.replace(arch.head, channels=80))
    untied = list(arch.stages)
    untied[2] = dataclasses.replace(untied[2], channels=16)  # tied to stage 1 by its pooling shortcut
    other_block = list(arch.stages)
    other_block[3] = dataclasses.replace(other_block[3], kernel=5)
    for bad in (wider, arch.replace(stages=tuple(untied)), arch.replace(stages=tuple(other_block)),
                arch.replace(stages=arch.stages[:-1])):
        with pytest.raises(ValueError, match="expected .* with narrower widths"):
            layout.widths_of(bad)


def test_filter_magnitude_is_the_norm_of_the_bn_folded_filter():
    arch = parse(SMALL).replace(resolution=16, in_channels=1, num_classes=10)
    model = randomise_batchnorm(build_torch(arch), 3).eval()
    layout = Layout.of(arch)
    spaces, _ = layout.scores(model, share=False, measure="filter")
    conv, bn = model.stem[0], model.stem[1]
    # The stem's space: the stem writes it, the ds block's depthwise conv works on it, its projection
    # writes it again (identity shortcut).
    folded = lambda conv, bn: (conv.weight.flatten(1).norm(dim=1) * bn.weight.abs()  # noqa: E731
                               / (bn.running_var + bn.eps).sqrt()).double().detach().numpy()
    parts = block_parts(model.blocks[0], "ds")
    assert np.allclose(spaces[layout.stem_space], folded(conv, bn) + sum(folded(parts[name][0], parts[name][1])
                                                                         for name in ("dw", "project")))
    # Scaling a filter's weights while its BN's variance grows by the square leaves the folded norm.
    with torch.no_grad():
        conv.weight[0] *= 3
        bn.running_var[0] = 9 * bn.running_var[0] + 8 * bn.eps
    again, _ = layout.scores(model, share=False, measure="filter")
    assert np.allclose(again[layout.stem_space], spaces[layout.stem_space])
    with pytest.raises(ValueError, match="measure: expected one of gamma, filter"):
        layout.scores(model, measure="l2")


@pytest.mark.parametrize("measure", ["filter", "gamma"])
def test_transfer_computes_what_the_full_network_computes_with_the_removed_channels_silenced(measure):
    arch = parse(EVERY_TIE)
    torch.manual_seed(0)
    model = randomise_batchnorm(build_torch(arch), 1).eval()
    layout = Layout.of(arch)
    for target in (_narrower(arch), scale_width(arch, 0.75)):
        pruned = tuning.transfer(model, arch, target, measure)
        widths = layout.widths_of(target)
        kept = layout.kept(widths, layout.scores(model, measure=measure), model)
        masked = mask_pruned(layout, model, kept).eval()
        x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            got, want, full = pruned(x), masked(x), model(x)
        assert pruned.arch == target
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
        assert not torch.allclose(full, want, atol=1e-3)  # the check can fail: channels were removed


def test_transfer_keeps_the_largest_filters():
    arch = parse(SMALL).replace(resolution=16, in_channels=1, num_classes=10)
    model = randomise_batchnorm(build_torch(arch), 4).eval()
    stages = list(arch.stages)
    stages[2] = dataclasses.replace(stages[2], channels=16)
    target = arch.replace(stages=tuple(stages))
    # Stage 2's two repeats write one space (identity shortcut): channels 16.. made tiny in both.
    project = model.blocks[-2].body[-1]
    second = model.blocks[-1].body[-1]
    with torch.no_grad():
        for conv_bn in (project, second):
            conv_bn[1].weight[16:] *= 1e-3
    pruned = tuning.transfer(model, arch, target)
    kept_rows = pruned.blocks[-2].body[-1][0].weight
    assert torch.equal(kept_rows, project[0].weight[:16])


def test_holdout_split_is_disjoint_seeded_and_checked():
    from pynas.data import Dataset

    x = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1).repeat(4, 2).repeat(4, 3)
    data = Dataset("toy", x, np.arange(100) % 10, x[:10], np.arange(10), 10, sha256="toy")
    split = tuning.holdout_split(data, 60, 30, seed=0)
    train, held = set(split.x_train[:, 0, 0, 0]), set(split.x_val[:, 0, 0, 0])
    assert len(train) == 60 and len(held) == 30 and not train & held
    assert np.array_equal(tuning.holdout_split(data, 60, 30, seed=0).x_val, split.x_val)
    assert not np.array_equal(tuning.holdout_split(data, 60, 30, seed=1).x_val, split.x_val)
    assert len(tuning.holdout_split(data, None, 30, seed=0).x_train) == 70
    with pytest.raises(ValueError, match="train_images: expected train_images \\+ holdout_images at most 100"):
        tuning.holdout_split(data, 80, 30, seed=0)


class ListScorer(netadapt.Scorer):
    """Scores by parameters; records accepts, so the loop's bookkeeping can be checked."""
    name = "list"

    def __init__(self):
        self.accepted, self.scored = [], []

    def start(self, arch):
        self.current = arch
        return 50.0

    def score(self, archs):
        self.scored.append(list(archs))
        from pynas.ir.lower import lower
        return [(100 - lower(a).params / 1e5, None) if i % 3 else (None, "boom") for i, a in enumerate(archs)]

    def accept(self, index):
        self.accepted.append(index)
        self.current = self.scored[-1][index]


def test_adapt_tells_the_scorer_which_proposal_it_keeps():
    from tests.test_ship_netadapt import A1, MacsModel

    model, scorer = MacsModel(), ListScorer()
    result = netadapt.adapt(A1, model, 0.9 * model.predict(A1), scorer, delta_fraction=0.03)
    assert result.reached and len(scorer.accepted) == len(result.steps)
    for step, index, archs in zip(result.steps, scorer.accepted, scorer.scored):
        assert archs[index] == step.chosen.proposal.arch and index % 3  # never a failed one
    assert scorer.current == result.arch


def test_fine_tune_scorer_carries_the_chosen_network(tmp_path):
    pytest.importorskip("sklearn")
    from pynas.data import load_dataset

    data = load_dataset("digits", seed=0)
    arch = parse(SMALL)
    scorer = tuning.FineTuneScorer(data, pretrain_epochs=1, resolution=8, train_images=300, holdout_images=100,
                                   tune_images=128, batch_size=64)
    first = scorer.start(arch)
    assert 0 <= first <= 100 and scorer.proxy == scorer.proxy_of(arch) and scorer.steps_trained == 4
    narrower = [scale_width(arch, 0.5), _narrower_small(arch)]
    scores = scorer.score(narrower)
    assert all(error is None and 0 <= accuracy <= 100 for accuracy, error in scores)
    before = scorer.model
    scorer.accept(1)
    assert scorer.model is not before and scorer.proxy == scorer.proxy_of(narrower[1])
    assert scorer.model.arch == scorer.proxy and scorer.steps_trained == 4 + 2
    tuned, score = scorer.long_term(1)
    assert tuned is not scorer.model and 0 <= scorer.report(tuned, scorer.proxy) <= 100
    # A proposal that is not a narrowing of the current network is that proposal's error.
    (accuracy, error), = scorer.score([arch])
    assert accuracy is None and "narrower widths" in error
    with pytest.raises(ValueError, match="tune_images: expected at most 300"):
        tuning.FineTuneScorer(data, train_images=300, holdout_images=100, tune_images=400)


def _narrower_small(arch):
    stages = list(arch.stages)
    stages[2] = dataclasses.replace(stages[2], expansion=2.0)
    return arch.replace(stages=tuple(stages))


def test_compare_with_uniform_wants_an_evaluator_not_a_scorer():
    from tests.test_ship_netadapt import A1, MacsModel

    with pytest.raises(ValueError, match="evaluator: expected a pynas.search.evaluators evaluator"):
        netadapt.compare_with_uniform(A1, MacsModel(), 0.9 * MacsModel().predict(A1), ListScorer())
