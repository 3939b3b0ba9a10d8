"""Network Slimming to a latency target (pynas/ship/slimming.py, pynas/ship/channels.py): the L1
penalty, the tied widths, the plan against a fake latency model, the weight copy (the pruned network
computes what the original computes with the pruned channels silenced), on small networks at 16-32 px."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pynas.arch import parse, scale_width  # noqa: E402
from pynas.ir.lower import expanded_channels, lower  # noqa: E402
from pynas.ship.channels import Layout, copy_kept, expansion_for, mask_pruned  # noqa: E402
from pynas.ship import netadapt, slimming  # noqa: E402
from pynas.torch_builder import build_torch, randomise_batchnorm  # noqa: E402

# Every kind of tie: a ds block on the stem's space (identity), a 2-repeat ir stage (the second
# repeat on the first's space), a pooling shortcut without projection (tied across stages), a cn stage
# without shortcut (two spaces of one width group), an id conv, a pooling shortcut with projection;
# SE on ds, ir and cn blocks.
EVERY_TIE = ("net_res32_cls10_in1{style}:stem_k3_s1_c16:ds_r1_k3_s1_c16_se0.25:ir_r2_k3_s2_e3_c24_se0.25:"
             "ir_r2_k5_s1_e4_c24_poolskip:cn_r2_k3_s2_c32_se0.25:id_r1_s1_c40:ir_r1_k3_s1_e2_c40_poolskip_nhs:"
             "ir_r1_k3_s2_e2_c48_poolskip_se0.5:head_c64")
# Deployment-shaped (what a latency model prices) and small enough to train on digits in seconds.
REAL = "net_res224_cls1000:stem_k3_s2_c16:ds_r1_k3_s1_c16_se0.25:ir_r2_k3_s2_e3_c24_se0.25:ir_r1_k5_s2_e4_c40:head_c64"


class MacsModel:
    """A fake latency model: MACs, plus a penalty for channel counts off multiples of 8 (as SIMD
    kernels have), so alignment matters to the plan."""
    name = "fake-macs"

    def predict(self, arch) -> float:
        graph = lower(arch)
        ragged = sum(op.cout % 8 != 0 for op in graph.ops if op.kind in ("conv", "pwconv", "dwconv"))
        return graph.macs / 1e6 + 0.05 * ragged

    def predict_batch(self, archs) -> list[float]:
        return [self.predict(a) for a in archs]


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    from pynas.data import load_dataset

    return load_dataset("digits", seed=0)


def _random_widths(layout, seed):
    rng = np.random.default_rng(seed)
    widths = layout.full()
    for g in layout.prunable_groups():
        widths = layout.with_count(widths, g, int(rng.integers(layout.group_min[g], layout.group_size[g] + 1))) or widths
    for s in layout.expansion_stages:
        reference = layout.layers_of(s)[-1]
        widths = layout.with_mid(widths, s, int(rng.integers(8, reference.mid + 1))) or widths
    return widths


def test_expansion_for_reproduces_the_count_with_the_shortest_decimal():
    assert expansion_for(24, 144) == 6.0
    assert expansion_for(80, 184) == 2.3
    for cin in (1, 7, 24, 37, 160):
        for mid in (1, 8, 43, 200, 961):
            e = expansion_for(cin, mid)
            assert expanded_channels(cin, e) == mid
            assert parse(f"net_res8_cls2:stem_k3_s1_c{cin}:ir_r1_k3_s1_e{e}_c8:head_c8").stages[0].expansion == e


def test_layout_ties_spaces_through_shortcuts_and_widths_across_repeats():
    layout = Layout.of(parse(EVERY_TIE.format(style="")))
    spaces = [(layer.cin_space, layer.cout_space) for layer in layout.layers]
    stem = layout.stem_space
    assert spaces[0] == (stem, stem)  # ds on the stem's 16 channels, identity shortcut
    assert spaces[1][1] == spaces[2][0] == spaces[2][1] == spaces[3][1] == spaces[4][1]  # ir r2 + poolskip: one space
    cn = layout.arch.stages[3]
    assert cn.block == "cn" and spaces[5][1] != spaces[6][1]  # noskip: two spaces...
    assert layout.space_group[spaces[5][1]] == layout.space_group[spaces[6][1]]  # ...of one width group
    assert spaces[8][0] == spaces[8][1]  # pool shortcut without projection
    assert spaces[9][0] != spaces[9][1]  # with projection (40 -> 48)


def test_plan_keeps_tied_widths_and_one_index_set_per_space_and_meets_the_target():
    arch = parse(EVERY_TIE.format(style="")).replace(resolution=224, in_channels=3, num_classes=1000)
    model = randomise_batchnorm(build_torch(arch.replace(resolution=32, in_channels=1, num_classes=10)), 3)
    predictor = MacsModel()
    smallest, full = slimming.reachable_range(arch, predictor)
    target = smallest + 0.4 * (full - smallest)
    plan = slimming.plan_pruning(model, arch, predictor, target)
    assert plan.pruned_ms <= target and predictor.predict(plan.pruned_arch) == pytest.approx(plan.pruned_ms)
    assert plan.pruned_ms < plan.predicted_ms == pytest.approx(full)
    layout = plan.layout
    pruned = parse(str(plan.pruned_arch))  # a valid architecture string
    # Tied widths: the pooled stage's width is its input stage's; each space keeps one index set of
    # its group's count, which every BN writing into it uses (copy_kept slices them all with it).
    assert pruned.stages[1].channels == pruned.stages[2].channels
    for space, kept in plan.kept["spaces"].items():
        assert len(kept) == plan.widths.counts[layout.space_group[space]]
        assert list(kept) == sorted(set(kept))
    for layer in layout.layers:
        if layer.mid:
            assert len(plan.kept["mids"][layer.index]) == layout.mids(plan.widths)[layer.index]
    build_torch(pruned)  # builds
    rows = plan.stages()
    assert [r["part"] for r in rows] == ["stem"] + [f"stage {s}" for s in range(len(arch.stages))] + ["head"]


def test_plan_prefers_channels_with_small_scale_factors():
    arch = parse(REAL)
    model = build_torch(arch.replace(resolution=16, in_channels=1, num_classes=10))
    bn = model.blocks[1].body[3][1]  # the first ir block's projection BN: 24 output channels
    with torch.no_grad():
        bn.weight[:] = 1.0
        bn.weight[::3] = 0.001  # channels 0, 3, ..., 21 are near-dead
    layout = Layout.of(arch)
    group = layout.space_group[layout.layers[1].cout_space]
    widths = layout.with_count(layout.full(), group, 16)
    kept = layout.kept(widths, layout.scores(model), model)["spaces"][layout.layers[1].cout_space]
    assert set(kept) == set(range(24)) - set(range(0, 24, 3))


@pytest.mark.parametrize("style", ["", "_sev3"])
def test_pruned_network_computes_what_the_original_computes_with_pruned_channels_silenced(style):
    arch = parse(EVERY_TIE.format(style=style))
    torch.manual_seed(0)
    model = randomise_batchnorm(build_torch(arch), 1)
    layout = Layout.of(arch)
    for seed in range(3):
        widths = _random_widths(layout, seed)
        assert widths != layout.full()
        kept = layout.kept(widths, layout.scores(model), model)
        pruned = build_torch(layout.apply(arch, widths)).eval()
        copy_kept(layout, model, pruned, kept)
        masked = mask_pruned(layout, model, kept).eval()
        x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            want, got, unpruned = masked(x), pruned(x), model.eval()(x)
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
        assert not torch.allclose(unpruned, want, atol=1e-3)  # the check can fail: pruning changed the output


def test_prune_builds_the_plans_architecture_with_the_kept_weights():
    arch = parse(REAL)
    proxy = arch.replace(resolution=16, in_channels=1, num_classes=10)
    model = randomise_batchnorm(build_torch(proxy), 2)
    predictor = MacsModel()
    plan = slimming.plan_pruning(model, arch, predictor, 0.5 * predictor.predict(arch))
    pruned_arch, pruned_model = slimming.prune(model, proxy, plan)
    assert pruned_arch == plan.layout.apply(proxy, plan.widths)
    assert (pruned_arch.stem, pruned_arch.stages, pruned_arch.head) == (plan.pruned_arch.stem, plan.pruned_arch.stages,
                                                                      plan.pruned_arch.head)
    stem_kept = torch.as_tensor(plan.kept["spaces"][plan.layout.stem_space])
    assert torch.equal(pruned_model.stem[0].weight, model.stem[0].weight[stem_kept])
    with pytest.raises(ValueError, match="expected the body"):
        slimming.prune(model, parse(EVERY_TIE.format(style="")), plan)


def test_l1_penalty_pulls_batchnorm_scales_towards_zero(digits):
    from pynas.train.proxy_task import adapt

    proxy = adapt(parse(REAL), digits, resolution=8)

    def total_gamma(l1):
        model, _ = slimming.train_sparse(proxy, digits, 2, l1=l1, batch_size=64, train_images=640, seed=0)
        return sum(float(m.weight.detach().abs().sum()) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))

    plain, sparse = total_gamma(0.0), total_gamma(0.1)  # strong: 20 steps
    assert sparse < 0.9 * plain


def test_unreachable_target_is_an_error_naming_the_field_before_any_training(digits, monkeypatch):
    predictor = MacsModel()
    smallest, full = slimming.reachable_range(REAL, predictor)
    monkeypatch.setattr(slimming, "train_sparse", lambda *a, **k: pytest.fail("trained before checking the target"))
    with pytest.raises(ValueError, match=r"^target_ms: expected at least .* got 0\.001"):
        slimming.slim(REAL, digits, predictor, 0.001)
    with pytest.raises(ValueError, match=r"^--target-ms: expected less than"):
        slimming.check_target(REAL, predictor, full * 2, field_name="--target-ms")
    with pytest.raises(ValueError, match=r"^target_ms: expected a latency in ms > 0"):
        slimming.check_target(REAL, predictor, float("nan"))


def test_uniform_width_baseline_is_the_widest_multiplier_under_the_target():
    predictor = MacsModel()
    arch = parse(REAL)
    target = 0.6 * predictor.predict(arch)
    multiplier, uniform, ms = slimming.uniform_width_baseline(arch, predictor, target)
    assert 0 < multiplier < 1 and ms <= target and predictor.predict(uniform) == pytest.approx(ms)
    wider = scale_width(arch, multiplier + netadapt.UNIFORM_STEP)
    assert str(wider) == str(uniform) or predictor.predict(wider) > target
    with pytest.raises(ValueError, match="^--target-ms: .* is below every uniform width multiplier"):
        slimming.uniform_width_baseline(arch, predictor, 1e-6)


def test_slim_end_to_end_on_digits(digits):
    predictor = MacsModel()
    target = 0.6 * predictor.predict(parse(REAL))
    phases = []
    result = slimming.slim(REAL, digits, predictor, target, epochs=2, finetune_epochs=1, l1=1e-3, resolution=8,
                           batch_size=64, train_images=640, seed=0, progress=phases.append)
    assert len(phases) == 3
    assert result.pruned_ms <= target < result.predicted_ms
    assert parse(result.pruned_arch).resolution == 224 and parse(result.pruned_proxy_arch).resolution == 8
    assert result.accuracy_finetuned > 30  # 10 classes: chance is 10%
    exported = result.export()
    rebuilt = build_torch(exported["arch"])
    rebuilt.load_state_dict(exported["state_dict"])
    summary = result.as_dict()
    assert "model" not in summary and summary["stages"][0]["part"] == "stem"
    # A fake model has no device to measure on: the record says so; the plan's limits are recorded.
    assert "no bundle of a device" in summary["verification"]["skipped"]
    assert summary["limits"]["lanes"] == 8 and summary["planned_for_ms"] == target


class MacsOnly(MacsModel):
    """A latency model that, like the bundles, prices a count off the multiples of 8 by its MACs
    alone: where the grow-back followed it, the counts left the SIMD lanes (stem 25, head 1274)."""
    name = "fake-macs-only"

    def predict(self, arch) -> float:
        return lower(arch).macs / 1e6


# Original counts off the multiples of 8 (stem 20, c36, c44, head 100; expanded 60, 108, 90): the plan
# may keep them, never move to another unaligned count.
RAGGED = "net_res224_cls1000:stem_k3_s2_c20:ir_r2_k3_s2_e3_c36:ir_r2_k5_s2_e2.5_c44:head_c100"


def _random_scores(layout, seed):
    rng = np.random.default_rng(seed)
    return ([rng.random(size) for size in layout.space_sizes],
            {layer.index: rng.random(layer.mid) for layer in layout.layers if layer.mid})


def _unaligned(layout, widths) -> list[str]:
    """The counts of `widths` that are neither a multiple of 8 nor the original: every group's, and
    the expanded count of every ir repeat (a first repeat reads the previous stage's width, yet
    follows the stage's one expansion: it has to land on the lanes too)."""
    bad = [f"group {g}: {n}" for g, n in enumerate(widths.counts) if n % 8 and n != layout.group_size[g]]
    mids = layout.mids(widths)
    for s in layout.expansion_stages:
        for layer in layout.layers_of(s):
            if mids[layer.index] % 8 and mids[layer.index] != layer.mid:
                bad.append(f"stage {s} repeat {layer.repeat}: {mids[layer.index]} expanded")
    return bad


@pytest.mark.parametrize("text", [REAL, EVERY_TIE.format(style="").replace("res32_cls10_in1", "res224_cls1000"),
                                  RAGGED])
def test_plan_moves_only_to_multiples_of_8_or_the_original_counts(text):
    arch = parse(text)
    layout = Layout.of(arch)
    predictor = MacsOnly()
    smallest, full = slimming.reachable_range(arch, predictor)
    grown = 0
    for seed, fraction in enumerate((0.2, 0.45, 0.7, 0.9)):
        target = smallest + fraction * (full - smallest)
        widths, ms, moves = slimming.plan_widths(layout, _random_scores(layout, seed), predictor, target)
        assert ms <= target
        assert _unaligned(layout, widths) == [], (fraction, layout.apply(arch, widths))
        grown += moves["grow"]
    assert grown > 0  # the grow-back ran: its moves are what is checked


def test_a_group_move_under_a_pruned_expansion_rounds_the_expanded_count_down():
    arch = parse(REAL)
    layout = Layout.of(arch)
    stage = 2  # ir_r1_k5_s2_e4_c40 on stage 1's 24 channels: 96 expanded
    widths = layout.with_mid(layout.full(), stage, 88)  # e 3.65 (24 x 3.65: 87.6)
    group = layout.stage_group[1]
    narrower = layout.with_count(widths, group, 16)  # 16 x 3.65: 58 expanded, off the lanes
    assert layout.reference_mid(narrower, stage) == 58
    moves = slimming._moves(layout, widths, grow=False)
    moved = next(w for w in moves if w.counts[group] == 16)
    assert layout.reference_mid(moved, stage) == 56  # rounded down, not up past what the move priced
    assert all(_unaligned(layout, w) == [] for w in moves)


# MnasNet-A1's first stages: stage 1's first repeat reads stage 0's width (16, prunable to 8), its
# second repeat its own (24). One expansion sets both: on seed 1's benchmark plan (stage 0 at 8,
# stage 1 at 16) e 6.5 gave 104 expanded channels on the second repeat, aligned, and 52 on the
# first, at 112 px: it measured 0.9 ms over e 6 where the bundle said 0.065.
FIRST_REPEAT = ("net_res224_cls1000:stem_k3_s2_c32:ds_r1_k3_s1_c16_noskip:ir_r2_k3_s2_e6_c24:"
                "ir_r3_k5_s2_e3_c40_se0.25:head_c64")


def _seed_1_widths(layout):
    """Stage 0 at 8 channels, stage 1 at 16 at e 6: 48 and 96 expanded, both aligned."""
    widths = layout.with_count(layout.full(), layout.stage_group[0], 8)
    widths = layout.with_count(widths, layout.stage_group[1], 16)
    assert [layout.mids(widths)[layer.index] for layer in layout.layers_of(1)] == [48, 96]
    return widths


def test_an_expansion_move_aligns_the_first_repeat_on_another_width_too():
    layout = Layout.of(parse(FIRST_REPEAT))
    widths = _seed_1_widths(layout)
    grown = slimming._moves(layout, widths, grow=True)
    assert all(_unaligned(layout, w) == [] for w in grown)
    stage_1 = [w for w in grown if w.counts == widths.counts and w.expansions[1] != widths.expansions[1]]
    # The next expansion up is e 7 (56 and 112), not e 6.5 (52 and 104): 52 is off the lanes.
    assert [[layout.mids(w)[layer.index] for layer in layout.layers_of(1)] for w in stage_1] == [[56, 112]]
    assert [w.expansions[1] for w in stage_1] == [7.0]
    shrunk = slimming._moves(layout, widths, grow=False)
    assert all(_unaligned(layout, w) == [] for w in shrunk)
    stage_1 = [w for w in shrunk if w.counts == widths.counts and w.expansions[1] != widths.expansions[1]]
    assert [[layout.mids(w)[layer.index] for layer in layout.layers_of(1)] for w in stage_1] == [[40, 80]]


def test_a_group_move_aligns_the_next_stages_first_repeat():
    layout = Layout.of(parse(FIRST_REPEAT))
    widths = layout.with_count(_seed_1_widths(layout), layout.stage_group[2], 32)
    widths = layout.with_mid(widths, 2, 112)  # e 3.5: stage 2's first repeat reads stage 1's 16 channels: 56
    assert _unaligned(layout, widths) == []
    for grow in (False, True):
        moves = slimming._moves(layout, widths, grow=grow)
        for w in moves:
            assert _unaligned(layout, w) == [], (grow, layout.apply(layout.arch, w))
            arch = parse(str(layout.apply(layout.arch, w)))  # the string's e reproduces the counts
            assert layout.mids(layout.widths_of(arch)) == layout.mids(w)
    # Stage 1 down to 8 channels under e 3.5 would give stage 2's first repeat 28; the expansion goes
    # down to the largest that aligns every repeat: e 3 (24, 96, 96), not up past what was priced.
    narrower = next(w for w in slimming._moves(layout, widths, grow=False) if w.counts[layout.stage_group[1]] == 8)
    assert [layout.mids(narrower)[layer.index] for layer in layout.layers_of(2)] == [24, 96, 96]


def test_plan_aligns_every_repeat_when_a_first_repeat_reads_another_width():
    arch = parse(FIRST_REPEAT)
    layout = Layout.of(arch)
    predictor = MacsOnly()
    smallest, full = slimming.reachable_range(arch, predictor)
    for seed in range(6):
        for fraction in (0.3, 0.6, 0.85):
            target = smallest + fraction * (full - smallest)
            widths, ms, _ = slimming.plan_widths(layout, _random_scores(layout, seed), predictor, target)
            assert ms <= target
            assert _unaligned(layout, widths) == [], (seed, fraction, layout.apply(arch, widths))


def test_defaults_are_two_sparsity_and_six_fine_tuning_epochs():
    import inspect

    assert (slimming.DEFAULT_EPOCHS, slimming.DEFAULT_FINETUNE_EPOCHS) == (2, 6)
    assert (slimming.DEFAULT_L1, slimming.DEFAULT_FINETUNE_LR) == (2e-2, 0.05)
    for function in (slimming.slim, slimming.compare_with_uniform):
        parameters = inspect.signature(function).parameters
        assert parameters["epochs"].default == slimming.DEFAULT_EPOCHS
        assert parameters["finetune_epochs"].default == slimming.DEFAULT_FINETUNE_EPOCHS
    parameters = inspect.signature(slimming.slim).parameters
    assert parameters["l1"].default == slimming.DEFAULT_L1
    assert parameters["finetune_lr"].default == slimming.DEFAULT_FINETUNE_LR
    assert inspect.signature(slimming.fine_tune).parameters["lr"].default == slimming.DEFAULT_FINETUNE_LR


def test_the_benchmark_runs_the_defaults():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "ship.py"
    spec = importlib.util.spec_from_file_location("ship_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    options = dict(zip(bench.SLIM_OPTIONS[::2], bench.SLIM_OPTIONS[1::2]))
    assert int(options["--epochs"]) == slimming.DEFAULT_EPOCHS
    assert int(options["--finetune-epochs"]) == slimming.DEFAULT_FINETUNE_EPOCHS
    assert float(options["--l1"]) == slimming.DEFAULT_L1
    assert float(options["--finetune-lr"]) == slimming.DEFAULT_FINETUNE_LR
