"""A search space as a fixed list of categorical decisions with a bijection tokens <-> Arch."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from pynas.arch import Arch


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

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(d.cardinality for d in self.decisions)

    @property
    def size(self) -> int:
        """Number of token vectors (= architectures, the map being a bijection)."""
        return math.prod(self.cardinalities)

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
        rng = np.random.default_rng(seed)
        return np.stack([rng.integers(0, c, size=n) for c in self.cardinalities], axis=1).astype(np.int64)

    def sample(self, n: int, seed: int | None = None) -> list[Arch]:
        return [self.decode(row) for row in self.sample_tokens(n, seed)]

    def describe(self) -> str:
        lines = [f"search space {self.name}: {len(self.decisions)} decisions, size {self.size:.3e}"]
        lines += [f"  {d.name:<14} {d.cardinality}  {', '.join(map(str, d.choices))}" for d in self.decisions]
        return "\n".join(lines)
