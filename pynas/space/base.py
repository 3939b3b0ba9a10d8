"""A search space as a fixed list of categorical decisions with a bijection tokens <-> Arch."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from pynas.arch import Arch
from pynas.space.layout import TableSpec

SAMPLE_CHUNK = 1 << 16  # rows drawn at a time: bounded memory for any sample size


@dataclass(frozen=True)
class Decision:
    name: str
    choices: tuple

    @property
    def cardinality(self) -> int:
        return len(self.choices)


class SearchSpace:
    """Subclasses set `name` and `decisions` and implement `decode` and `encode`."""

    name: str = ""
    decisions: tuple[Decision, ...] = ()
    # Whether the space's architectures are `pynas.arch.Arch` networks, lowered to ops and segments
    # (profiling, XGBoost bundles, compiled tables). A benchmark's cells (NAS-Bench-201) are not:
    # they are priced per architecture by lookup bundles, and tools made for Arch refuse them.
    lowerable: bool = True
    # Whether profiling times the space's networks whole (a stem, the reference, and sampled
    # networks; no segments) and its bundle is fitted on them (`pynas.predictor.cellnet`): a space
    # whose networks are few (NAS-Bench-201: 15,625) and small enough to stay in cache, where a
    # segment timed alone is not what it costs in place (summed segments over-predicted whole
    # networks by ~30%, placement effects up to 1.6x). Such a space has `network(architecture)`.
    profiled_whole: bool = False

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(d.cardinality for d in self.decisions)

    @property
    def size(self) -> int:
        """Number of token vectors (= architectures, the map being a bijection)."""
        return math.prod(self.cardinalities)

    def options(self) -> dict:
        """The options that rebuild this space: ``get_space(space.name, **space.options())``."""
        raise NotImplementedError

    def layout_name(self) -> str:
        """What a bundle's manifest records to tell this space (with its options) from another
        (`pynas.predictor.manifest.space_info`'s "layout"): its table layout's name, e.g.
        'mnasnet_res224_cls1000'; a space without a table layout names itself."""
        return self.table_layout().layout.space

    def decode(self, tokens: Sequence[int]) -> Arch:
        raise NotImplementedError

    def encode(self, arch: Arch) -> tuple[int, ...]:
        """Tokens of `arch`; ValueError naming the field when `arch` is not in the space."""
        raise NotImplementedError

    def segment_archs(self) -> Iterator[tuple[Arch, str]]:
        """(architecture, segment id) pairs that together contain every segment
        (`pynas.ir.segments`) any architecture of the space has; repeats are allowed (the
        segments' keys dedupe them). What profiling measures to price the whole space."""
        raise NotImplementedError

    def table_layout(self) -> TableSpec:
        """The space's latency table: its layout (`pynas.space.layout.TableLayout`) and, for every
        reachable cell, an (architecture, segment id) whose segment key prices it
        (`pynas.space.layout.TableCell`). `pynas.predictor.table.compile_table` turns it into a
        dense table predicting millions of token vectors per second.

        How to write one:

        * One `BlockSlot` per group of tokens that lowers to one stage: `chunk_tokens` are the
          tokens that change the stage's segments (op, kernel, width, ...), `repeats_token` the
          one giving its repeats (None with a fixed count), `stage` the stage index in the lowered
          architecture (segments ``s<stage>.0`` and ``s<stage>.<r>``).
        * States name what the next block's input can be (width, and resolution where that varies):
          `next_state` maps the `state_token`'s value to the state a non-empty block leaves. A
          block with 0 repeats passes the state on, so a state must determine the next block's
          input completely whichever blocks before it are empty.
        * Cells: ``first`` for every (slot, state it can see, chunk) with a repeat; ``rest`` for
          every chunk with 2+ repeats; ``head`` for every state the head can see; ``constant`` for
          segments every network has (the stem). `TableLayout.reachable()` lists exactly the cells
          needed, and the compiler refuses a spec missing any, listing a cell that cannot be reached,
          or giving a cell an architecture whose tokens (`encode`, `TableLayout.trace`) do not read it.

        MnasNet (`MnasNetSpace`): 7 slots of 5 chunk tokens (144 chunks) with the layers token
        for repeats; states are the stem width and each block's 3 widths (22), the filters token
        picks the next. A space of 22 layers x 9 fixed-width choices, 1 repeat each (FBNet,
        `FBNetSpace`): 22 slots with ``chunk_tokens=(i,)``, ``repeats_token=None, repeats=(1,)``,
        ``state_token=None, next_state=(0,)`` and one state. A choice that lowers to no op there
        (a skip that is the identity) keeps its repeat and gets a ``first`` cell with segment None:
        `compile_table` prices it with its `empty` function (0 ms by default: nothing runs). A
        choice that changes what the next layer sees (its width) needs states, as MnasNet's do."""
        raise NotImplementedError(f"space {self.name!r} has no latency table layout")

    def check_tokens(self, tokens: Sequence[int]) -> tuple[int, ...]:
        tokens = tuple(int(t) for t in tokens)
        if len(tokens) != len(self.decisions):
            raise ValueError(f"tokens: expected {len(self.decisions)} values for space {self.name!r}, "
                             f"got {len(tokens)}")
        for token, decision in zip(tokens, self.decisions):
            if not 0 <= token < decision.cardinality:
                raise ValueError(f"token {decision.name}: expected 0..{decision.cardinality - 1}, got {token}")
        return tokens

    def choice(self, tokens: Sequence[int], name: str):
        index = next(i for i, d in enumerate(self.decisions) if d.name == name)
        return self.decisions[index].choices[tokens[index]]

    def sample_tokens(self, n: int, seed: int | None = None) -> np.ndarray:
        """n x D int array, each decision uniform and independent (so each arch is uniform)."""
        chunks = list(self.iter_tokens(n, seed))
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.decisions)), dtype=np.int64)

    def iter_tokens(self, n: int, seed: int | None = None, chunk: int = SAMPLE_CHUNK):
        """`sample_tokens(n, seed)` in row blocks of at most `chunk`, drawn as they are asked for: any n
        in bounded memory (the blocks concatenate to exactly `sample_tokens`' array)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n: expected an integer >= 0, got {n!r}")
        rng = np.random.default_rng(seed)
        for start in range(0, int(n), chunk):
            size = min(chunk, int(n) - start)
            yield np.stack([rng.integers(0, c, size=size) for c in self.cardinalities], axis=1).astype(np.int64)

    def sample(self, n: int, seed: int | None = None) -> list[Arch]:
        return [self.decode(row) for row in self.sample_tokens(n, seed)]

    def describe(self) -> str:
        lines = [f"search space {self.name}: {len(self.decisions)} decisions, size {self.size:.3e}"]
        lines += [f"  {d.name:<14} {d.cardinality}  {', '.join(map(str, d.choices))}" for d in self.decisions]
        return "\n".join(lines)
