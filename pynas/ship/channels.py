"""Which channels of an architecture can be pruned together, and the pruned network's weights.

An architecture string gives one width per stage, and identity shortcuts add a block's input to its
output channel by channel, so channels cannot be removed one BatchNorm at a time: pruning has to
respect the ties the language and the network impose.

* A *channel space* is a set of tensor channels that are the same channels throughout: the stem's
  output, and each block's output unless the block adds its input to it unchanged (an identity
  shortcut, a pooling shortcut without projection, an ``id`` layer that keeps the shape), in which
  case the output is its input's space. Every BatchNorm that writes into a space (the stem's, the
  blocks' projections, ``cn`` convs, ``id`` convs, pooling shortcuts' projections) and every
  channel-wise op on it (a ``ds`` block's depthwise BN) shares its channel indices: one kept index
  set per space.
* A *width group* is the spaces whose counts are tied: all repeats of a stage write one ``c``.
  One count per group. The head's 1x1 conv is a group of its own.
* An ``ir`` stage's expanded channels are set by its expansion ``e``: each repeat has
  round(block input x e) of them (`pynas.ir.lower.expanded_channels`), so one ``e`` per stage sets
  every repeat's count while each repeat keeps its own channel indices (its own expand and
  depthwise BNs).
* SE's reduced channels follow the stage's SE ratio (kept as it is) from the pruned widths; which
  of them stay is chosen by the weights around them (they have no BN).

Grouped ``ir`` stages (``g2``: channel shuffle) and a pool-first head (no BN) are not pruned: their
spaces keep every channel.

    from pynas.ship.channels import Layout, Widths
    layout = Layout.of(arch)
    widths = layout.full()                     # every group at its original count
    smaller = layout.with_count(widths, group, 32)
    layout.apply(arch, smaller)                # the architecture with those widths

`Layout.of` reads the architecture only; `scores(model)` reads a trained model's BN scale factors;
`copy_kept(model, pruned_model, kept)` copies the kept channels' weights.
"""
from __future__ import annotations

import dataclasses
import decimal
from dataclasses import dataclass

import numpy as np

from pynas.arch import Arch
from pynas.ir.lower import expanded_channels, se_channels

MIN_CHANNELS = 8  # the fewest channels a group or a layer keeps (one AVX2 register of float32)
MEASURES = ("gamma", "filter")  # what ranks a channel: its |BN scale|, or its BN-folded filter's L2 norm


@dataclass(frozen=True)
class Layer:
    """One block of the network (`Network.blocks[index]`) and the spaces it reads and writes."""
    index: int
    stage: int
    repeat: int
    cin_space: int
    cout_space: int
    mid: int  # expanded channels of an ir block (0 for other blocks)
    se: int  # SE's reduced channels (0: no SE)


@dataclass(frozen=True)
class Widths:
    """A pruning state: a count per width group and an expansion per stage (None: not an ir stage
    or not pruned: the original's)."""
    counts: tuple[int, ...]
    expansions: tuple[float | None, ...]


def expansion_for(cin: int, mid: int) -> float:
    """The shortest decimal e with expanded_channels(cin, e) == mid (so the arch string's ``e``
    reproduces the kept count exactly)."""
    if mid < 1 or cin < 1:
        raise ValueError(f"mid: expected channel counts >= 1, got cin {cin}, mid {mid}")
    low = decimal.Decimal(mid) - decimal.Decimal("0.5")
    for digits in range(0, 12):
        step = decimal.Decimal(1).scaleb(-digits)
        start = (low / cin).quantize(step, rounding=decimal.ROUND_CEILING)
        for candidate in (start, start + step):
            value = float(candidate)
            if value > 0 and expanded_channels(cin, value) == mid:
                return value
    raise AssertionError(f"no expansion reproduces {mid} channels from {cin}")  # unreachable: 1e-11 steps


class Layout:
    """The channel spaces, width groups and layers of an architecture (see the module docstring)."""

    def __init__(self, arch: Arch):
        self.arch = arch
        sizes: list[int] = []

        def new_space(size: int) -> int:
            sizes.append(size)
            return len(sizes) - 1

        self.stem_space = new_space(arch.stem.channels)
        layers, current, index = [], self.stem_space, 0
        grouped: set[int] = set()  # spaces next to a grouped conv (channel shuffle): never pruned
        for s, stage in enumerate(arch.stages):
            for r in range(stage.repeats):
                stride = stage.stride if r == 0 else 1
                cin, cout = sizes[current], stage.channels
                same_shape = cin == cout and (stride == 1 or stage.skip == "pool")
                if stage.block == "id":
                    tied = stride == 1 and cin == cout
                else:
                    tied = same_shape and stage.skip in ("identity", "pool")
                out = current if tied else new_space(cout)
                mid = expanded_channels(cin, stage.expansion) if stage.block == "ir" else 0
                width = {"ir": mid, "ds": cin, "cn": cout}.get(stage.block, 0)
                se = se_channels(arch, stage, cin, width) if stage.se_ratio > 0 else 0
                layers.append(Layer(index, s, r, current, out, mid, se))
                if stage.groups > 1:
                    grouped.update((current, out))
                current, index = out, index + 1
        self.last_space = current
        self.head_space = new_space(arch.head.channels)
        self.layers: tuple[Layer, ...] = tuple(layers)
        self.space_sizes: tuple[int, ...] = tuple(sizes)

        # Width groups: union-find over spaces, joining the output spaces of one stage.
        parent = list(range(len(sizes)))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for s in range(len(arch.stages)):
            outs = [layer.cout_space for layer in layers if layer.stage == s]
            for other in outs[1:]:
                parent[find(other)] = find(outs[0])
        roots = sorted({find(x) for x in range(len(sizes))})
        self.space_group: tuple[int, ...] = tuple(roots.index(find(x)) for x in range(len(sizes)))
        self.group_size: tuple[int, ...] = tuple(sizes[r] for r in roots)
        frozen = {self.space_group[x] for x in grouped}
        if arch.head.pool_first:  # no BN to score the head's channels by
            frozen.add(self.space_group[self.head_space])
        self.frozen_groups = frozenset(frozen)
        self.group_min: tuple[int, ...] = tuple(min(MIN_CHANNELS, size) for size in self.group_size)
        # Stage -> its group (None for an empty stage: its width is kept as written).
        self.stage_group: tuple[int | None, ...] = tuple(
            next((self.space_group[layer.cout_space] for layer in layers if layer.stage == s), None)
            for s in range(len(arch.stages)))
        # ir stages whose expansion is pruned (a grouped stage keeps its own).
        self.expansion_stages: tuple[int, ...] = tuple(
            s for s, stage in enumerate(arch.stages)
            if stage.block == "ir" and stage.repeats > 0 and stage.groups == 1)

        self._mid_floor: dict[int, int] = {}  # ir layer index -> fewest expanded channels (with_floors)

    @classmethod
    def of(cls, arch: Arch) -> "Layout":
        return cls(arch)

    def with_floors(self, group_min: dict[int, int], mid_min: dict[int, int]) -> "Layout":
        """A copy whose groups (`group_min`: group -> fewest channels) and ir layers (`mid_min`:
        layer index -> fewest expanded channels) keep at least the given counts (each capped at the
        original: a floor never widens), the others at least MIN_CHANNELS. Slimming's floors: the
        widths the latency model was fitted on (`pynas.ship.plan_limits`)."""
        for name, floors, size_of in (("group_min", group_min, lambda g: self.group_size[g]),
                                      ("mid_min", mid_min, lambda i: self.layers[i].mid)):
            for key, count in floors.items():
                if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                    raise ValueError(f"{name}: expected channel counts >= 1, got {count!r} for {key}")
                if name == "mid_min" and not size_of(key):
                    raise ValueError(f"mid_min: expected ir layers, got layer {key} (no expanded channels)")
        floored = object.__new__(Layout)
        floored.__dict__.update(self.__dict__)
        floored.group_min = tuple(min(size, max(m, group_min.get(g, m)))
                                  for g, (size, m) in enumerate(zip(self.group_size, self.group_min)))
        floored._mid_floor = {i: min(self.layers[i].mid, max(self.mid_min(self.layers[i]), n))
                              for i, n in mid_min.items()}
        return floored

    # ------------------------------------------------------------------------------------------
    # Widths

    def full(self) -> Widths:
        return Widths(self.group_size, tuple(
            self.arch.stages[s].expansion if s in self.expansion_stages else None
            for s in range(len(self.arch.stages))))

    def prunable_groups(self) -> list[int]:
        return [g for g in range(len(self.group_size)) if g not in self.frozen_groups]

    def layers_of(self, stage: int) -> list[Layer]:
        return [layer for layer in self.layers if layer.stage == stage]

    def cin(self, widths: Widths, layer: Layer) -> int:
        return widths.counts[self.space_group[layer.cin_space]]

    def mids(self, widths: Widths) -> dict[int, int]:
        """Layer index -> its expanded channels under `widths` (ir layers only)."""
        out = {}
        for layer in self.layers:
            if layer.mid:
                e = widths.expansions[layer.stage]
                out[layer.index] = layer.mid if e is None else expanded_channels(self.cin(widths, layer), e)
        return out

    def mid_min(self, layer: Layer) -> int:
        return self._mid_floor.get(layer.index, min(MIN_CHANNELS, layer.mid))

    def settle(self, widths: Widths) -> Widths | None:
        """`widths` with each pruned ir stage's expansion raised where a repeat would keep fewer
        expanded channels than its minimum; None when no expansion fits (a repeat would need more
        channels than it has)."""
        expansions = list(widths.expansions)
        for s in self.expansion_stages:
            layers = self.layers_of(s)
            e = expansions[s]
            needed = max(expansion_for(self.cin(widths, l), self.mid_min(l)) for l in layers)
            if e < needed:
                e = needed
            if any(expanded_channels(self.cin(widths, l), e) > l.mid for l in layers):
                return None
            expansions[s] = e
        return Widths(widths.counts, tuple(expansions))

    def with_count(self, widths: Widths, group: int, count: int) -> Widths | None:
        """`widths` with `group` at `count` channels (expansions kept, raised where needed); None if
        the count is out of the group's range or no expansion fits."""
        if group in self.frozen_groups or not self.group_min[group] <= count <= self.group_size[group]:
            return None
        counts = list(widths.counts)
        counts[group] = count
        return self.settle(Widths(tuple(counts), widths.expansions))

    def with_mid(self, widths: Widths, stage: int, mid: int) -> Widths | None:
        """`widths` with ir stage `stage`'s reference repeat (its last: the one most repeats look
        like) at `mid` expanded channels; None if out of range."""
        reference = self.layers_of(stage)[-1]
        if not self.mid_min(reference) <= mid <= reference.mid:
            return None
        expansions = list(widths.expansions)
        expansions[stage] = expansion_for(self.cin(widths, reference), mid)
        return self.settle(Widths(widths.counts, tuple(expansions)))

    def reference_mid(self, widths: Widths, stage: int) -> int:
        return self.mids(widths)[self.layers_of(stage)[-1].index]

    def minimum(self) -> Widths:
        """Every prunable group at its minimum, every expansion as small as its repeats allow."""
        counts = tuple(self.group_min[g] if g not in self.frozen_groups else size
                       for g, size in enumerate(self.group_size))
        expansions = tuple(0.0 if e is not None else None for e in self.full().expansions)
        settled = self.settle(Widths(counts, expansions))
        assert settled is not None  # the minimum counts are <= the original: an expansion fits
        return settled

    def apply(self, arch: Arch, widths: Widths) -> Arch:
        """`arch` (this layout's architecture, any header) with `widths`."""
        stages = []
        for s, stage in enumerate(arch.stages):
            group, changes = self.stage_group[s], {}
            if group is not None:
                changes["channels"] = widths.counts[group]
            if widths.expansions[s] is not None:
                changes["expansion"] = widths.expansions[s]
            stages.append(dataclasses.replace(stage, **changes))
        head = dataclasses.replace(arch.head, channels=widths.counts[self.space_group[self.head_space]])
        return arch.replace(stem=dataclasses.replace(arch.stem, channels=widths.counts[self.space_group[self.stem_space]]),
                            stages=tuple(stages), head=head)

    def widths_of(self, target: Arch) -> Widths:
        """The widths under which `apply(self.arch, widths)` has `target`'s body: `target` is this
        layout's architecture with narrower stem, stage and head widths and smaller expansions (a
        NetAdapt proposal, a uniform width multiplier of it). A ValueError if it is not: other
        blocks, a width wider than the original, widths that tie channels differently, or a width a
        frozen (grouped) group would have to change."""
        counts = list(self.group_size)
        parts = [(self.stem_space, target.stem.channels), (self.head_space, target.head.channels)]
        if len(target.stages) == len(self.arch.stages):
            parts += [(self.layers_of(s)[0].cout_space, stage.channels)
                      for s, stage in enumerate(target.stages) if stage.repeats and self.layers_of(s)]
        for space, channels in parts:
            counts[self.space_group[space]] = channels
        expansions = tuple(target.stages[s].expansion if s in self.expansion_stages and s < len(target.stages) else None
                           for s in range(len(self.arch.stages)))
        widths = Widths(tuple(counts), expansions)
        body = lambda a: (a.stem, a.stages, a.head, a.se_style)  # noqa: E731
        fits = (len(target.stages) == len(self.arch.stages)
                and all(counts[g] == size for g, size in enumerate(self.group_size) if g in self.frozen_groups)
                and all(1 <= n <= size for n, size in zip(counts, self.group_size))
                and body(self.apply(self.arch, widths)) == body(target))
        if fits:
            mids = self.mids(widths)
            fits = all(1 <= mids[layer.index] <= layer.mid for layer in self.layers if layer.mid)
        if fits:
            fits = Layout.of(target).space_group == self.space_group
        if not fits:
            raise ValueError(f"target: expected {self.arch} with narrower widths or expansions (the same blocks "
                             f"and shortcuts), got {target}")
        return widths

    def check_matches(self, arch: Arch, what: str) -> None:
        """ValueError unless `arch` has this layout's body (widths, blocks; the header may differ)."""
        if (arch.stem, arch.stages, arch.head, arch.se_style) != (self.arch.stem, self.arch.stages, self.arch.head,
                                                                  self.arch.se_style):
            raise ValueError(f"{what}: expected the body (stem, stages, head) of {self.arch}, got {arch}")

    # ------------------------------------------------------------------------------------------
    # Scores and kept channels

    def scores(self, model, share: bool = True, measure: str = "gamma") -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
        """(per space: the summed magnitude of every conv+BN writing its channels, per ir layer
        index: its expand and depthwise conv+BNs' summed magnitude) of a `pynas.torch_builder`
        model of this layout. `measure`: "gamma", a channel's |BN scale| (Network Slimming's), or
        "filter", the L2 norm of its filter with the BN folded in, ||w|| x |gamma| / sqrt(var +
        eps) (NetAdapt's filter magnitude: with BN after the conv the raw filter's norm is divided
        away, the folded filter is the one that runs).

        With `share` each BN's magnitudes are divided by their sum: a channel counts as its share
        of its layer's mass, so that taking 16 of a 24-channel layer's channels weighs what it
        takes from that layer, not the few raw |gamma| it holds next to a 960-channel layer's."""
        if measure not in MEASURES:
            raise ValueError(f"measure: expected one of {', '.join(MEASURES)}, got {measure!r}")
        spaces = [np.zeros(size) for size in self.space_sizes]
        mids: dict[int, np.ndarray] = {}

        def gamma(conv_bn) -> np.ndarray:
            bn = conv_bn[1]
            value = bn.weight.detach().abs().double().numpy()
            if measure == "filter":
                norm = conv_bn[0].weight.detach().double().flatten(1).norm(dim=1).numpy()
                value = norm * value / np.sqrt(bn.running_var.detach().double().numpy() + bn.eps)
            return value / max(value.sum(), 1e-12) if share else value

        spaces[self.stem_space] += gamma(model.stem)
        for layer in self.layers:
            parts = block_parts(model.blocks[layer.index], self.arch.stages[layer.stage].block)
            for name in ("project", "conv", "skip_proj"):
                if parts.get(name) is not None:
                    spaces[layer.cout_space] += gamma(parts[name])
            if self.arch.stages[layer.stage].block == "ds":
                spaces[layer.cin_space] += gamma(parts["dw"])
            if layer.mid:
                mids[layer.index] = gamma(parts["expand"]) + gamma(parts["dw"])
        if not self.arch.head.pool_first:
            spaces[self.head_space] += gamma(model.head.conv)
        return spaces, mids

    def kept(self, widths: Widths, scores, model) -> dict:
        """The kept channel indices (sorted) under `widths`: the highest-scoring ones of each space
        and of each ir layer's expanded channels; SE reduced channels by the weights around them."""
        space_scores, mid_scores = scores
        spaces = {x: _top(space_scores[x], widths.counts[self.space_group[x]]) for x in range(len(self.space_sizes))}
        mid_counts = self.mids(widths)
        mids = {i: _top(mid_scores[i], n) if i in mid_scores else np.arange(n) for i, n in mid_counts.items()}
        pruned = self.apply(self.arch, widths)
        se = {}
        for layer in self.layers:
            if not layer.se:
                continue
            stage = pruned.stages[layer.stage]
            block = stage.block
            cin = widths.counts[self.space_group[layer.cin_space]]
            width = {"ir": mid_counts.get(layer.index), "ds": cin, "cn": stage.channels}[block]
            wanted = se_channels(pruned, stage, cin, width)
            kept_in = {"ir": mids.get(layer.index), "ds": spaces[layer.cin_space],
                       "cn": spaces[layer.cout_space]}[block]
            module = block_parts(model.blocks[layer.index], block)["se"]
            reduce = module.reduce.weight.detach()[:, kept_in].flatten(1).norm(dim=1)
            expand = module.expand.weight.detach()[kept_in].flatten(1).norm(dim=0)
            se[layer.index] = _top((reduce * expand).double().numpy(), wanted)
        return {"spaces": spaces, "mids": mids, "se": se}


def _top(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` highest scores, ascending (ties: the lower index)."""
    order = np.argsort(-scores, kind="stable")[:count]
    return np.sort(order)


def block_parts(block, kind: str) -> dict:
    """The ConvBnAct / SqueezeExcite modules of a `pynas.torch_builder.Block` by role: expand, dw,
    se, project (ir, ds), conv (cn, a shape-changing id), skip_proj (a projecting pool shortcut)."""
    from torch import nn

    from pynas.torch_builder import ConvBnAct, SqueezeExcite

    parts: dict = {}
    body = block.body
    if kind == "id":
        parts["conv"] = body if isinstance(body, ConvBnAct) else None
    else:
        convs = [m for m in body if isinstance(m, ConvBnAct)]
        parts["se"] = next((m for m in body if isinstance(m, SqueezeExcite)), None)
        names = {"ir": ("expand", "dw", "project"), "ds": ("dw", "project"), "cn": ("conv",)}[kind]
        parts.update(zip(names, convs))
    shortcut = block.shortcut
    parts["skip_proj"] = shortcut[1] if isinstance(shortcut, nn.Sequential) and len(shortcut) > 1 else None
    return parts


def copy_kept(layout: Layout, model, pruned_model, kept: dict) -> None:
    """Copy the kept channels' weights of `model` (built from `layout.arch`) into `pruned_model`
    (built from the pruned architecture): conv in/out slices, BN parameters and statistics, SE
    reduce/expand slices, the classifier's kept inputs. A shape that disagrees is a ValueError."""
    import torch

    spaces, mids, se = kept["spaces"], kept["mids"], kept["se"]
    with torch.no_grad():
        _copy_conv_bn(model.stem, pruned_model.stem, spaces[layout.stem_space], None)
        for layer in layout.layers:
            kind = layout.arch.stages[layer.stage].block
            src = block_parts(model.blocks[layer.index], kind)
            dst = block_parts(pruned_model.blocks[layer.index], kind)
            cin, cout = spaces[layer.cin_space], spaces[layer.cout_space]
            mid = {"ir": mids.get(layer.index), "ds": cin, "cn": cout}.get(kind)
            if kind == "ir":
                _copy_conv_bn(src["expand"], dst["expand"], mid, cin)
            if kind in ("ir", "ds"):
                _copy_conv_bn(src["dw"], dst["dw"], mid, mid)
                _copy_conv_bn(src["project"], dst["project"], cout, mid)
            if src.get("conv") is not None:
                _copy_conv_bn(src["conv"], dst["conv"], cout, cin)
            if src.get("se") is not None:
                keep = se[layer.index]
                _copy(src["se"].reduce.weight, dst["se"].reduce.weight, keep, mid)
                _copy(src["se"].reduce.bias, dst["se"].reduce.bias, keep)
                _copy(src["se"].expand.weight, dst["se"].expand.weight, mid, keep)
                _copy(src["se"].expand.bias, dst["se"].expand.bias, mid)
            if src["skip_proj"] is not None:
                _copy_conv_bn(src["skip_proj"], dst["skip_proj"], cout, cin)
        head_kept, last = spaces[layout.head_space], spaces[layout.last_space]
        _copy_conv_bn(model.head.conv, pruned_model.head.conv, head_kept, last)
        _copy(model.head.classifier.weight, pruned_model.head.classifier.weight, None, head_kept)
        _copy(model.head.classifier.bias, pruned_model.head.classifier.bias)


def _copy(src, dst, rows=None, cols=None) -> None:
    import torch

    value = src.detach()
    if rows is not None:
        value = value[torch.as_tensor(rows, dtype=torch.long)]
    if cols is not None:
        value = value[:, torch.as_tensor(cols, dtype=torch.long)]
    if value.shape != dst.shape:
        raise ValueError(f"pruned weights: expected shape {tuple(dst.shape)} for the kept channels, got "
                         f"{tuple(value.shape)} (the plan and the pruned architecture disagree)")
    dst.copy_(value)


def _copy_conv_bn(src, dst, out_idx, in_idx) -> None:
    """A ConvBnAct's kept output channels (and, for a dense conv, kept input channels)."""
    conv = src[0]
    # A depthwise conv's weight is out x 1 x k x k (rows only); a grouped 1x1 conv is never pruned
    # (its spaces are frozen) and is copied whole.
    _copy(conv.weight, dst[0].weight, out_idx, in_idx if conv.groups == 1 else None)
    if conv.bias is not None:
        _copy(conv.bias, dst[0].bias, out_idx)
    if len(src) > 1 and hasattr(src[1], "running_mean"):
        bn, target = src[1], dst[1]
        for name in ("weight", "bias", "running_mean", "running_var"):
            _copy(getattr(bn, name), getattr(target, name), out_idx)
        target.num_batches_tracked.copy_(bn.num_batches_tracked)


def mask_pruned(layout: Layout, model, kept: dict):
    """A copy of `model` in which every pruned channel is silenced: its BNs' scale and shift zeroed
    (so the channel is 0 after its activation), its SE reduced channels' weights and bias zeroed.
    In eval mode it computes what the pruned network computes (the weight copy's check)."""
    import copy

    import torch

    masked = copy.deepcopy(model)
    spaces, mids, se = kept["spaces"], kept["mids"], kept["se"]

    def silence(conv_bn, keep) -> None:
        if conv_bn is None or len(conv_bn) < 2 or not hasattr(conv_bn[1], "running_mean"):
            return
        drop = np.setdiff1d(np.arange(conv_bn[1].num_features), keep)
        index = torch.as_tensor(drop, dtype=torch.long)
        conv_bn[1].weight[index] = 0
        conv_bn[1].bias[index] = 0

    with torch.no_grad():
        silence(masked.stem, spaces[layout.stem_space])
        for layer in layout.layers:
            kind = layout.arch.stages[layer.stage].block
            parts = block_parts(masked.blocks[layer.index], kind)
            cin, cout = spaces[layer.cin_space], spaces[layer.cout_space]
            for name in ("project", "conv", "skip_proj"):
                silence(parts.get(name), cout)
            if kind == "ds":
                silence(parts["dw"], cin)
            if kind == "ir":
                silence(parts["expand"], mids[layer.index])
                silence(parts["dw"], mids[layer.index])
            if parts.get("se") is not None:
                reduce = parts["se"].reduce
                drop = torch.as_tensor(np.setdiff1d(np.arange(reduce.out_channels), se[layer.index]), dtype=torch.long)
                reduce.weight[drop] = 0
                reduce.bias[drop] = 0
        silence(masked.head.conv, spaces[layout.head_space])
    return masked


__all__ = ["Layer", "Layout", "MEASURES", "MIN_CHANNELS", "Widths", "block_parts", "copy_kept", "expansion_for", "mask_pruned"]
