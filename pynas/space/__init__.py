"""Search spaces by name."""
from pynas.space.base import Decision, SearchSpace
from pynas.space.mnasnet import MnasNetSpace

SPACES = {"mnasnet": MnasNetSpace}


def get_space(name: str, **options) -> SearchSpace:
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}: expected one of {', '.join(SPACES)}")
    return SPACES[name](**options)


__all__ = ["Decision", "MnasNetSpace", "SPACES", "SearchSpace", "get_space"]
