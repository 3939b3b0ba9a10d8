"""What a strategy searches: a space's decisions, its latency model, the reward and target."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from pynas.search.reward import Reward


@dataclass(frozen=True)
class Problem:
    """`cardinalities[i]` choices for decision `names[i]`; `latency(tokens) -> ms` prices an
    N x D int64 token array (the space's latency model: free, thousands of times cheaper than an
    accuracy evaluation, so strategies may price many candidates to choose which to evaluate).
    `space` the SearchSpace itself, for strategies that build its networks (a supernet)."""
    names: tuple[str, ...]
    cardinalities: tuple[int, ...]
    latency: Callable[[np.ndarray], np.ndarray]
    reward: Reward
    space: object = None  # the SearchSpace: strategies that train networks of it (darts, proxyless) need it

    @property
    def target_ms(self) -> float:
        return self.reward.target_ms

    @property
    def dimensions(self) -> int:
        return len(self.cardinalities)

    def uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n x D tokens, each decision uniform (so each architecture is uniform)."""
        return rng.integers(0, np.asarray(self.cardinalities), size=(n, self.dimensions), dtype=np.int64)
