"""Search spaces by name."""
import inspect

from pynas.space.base import Decision, SearchSpace
from pynas.space.fbnet import FBNetSpace
from pynas.space.mnasnet import MnasNetSpace
from pynas.space.nb201 import Cell, NB201Space

SPACES = {"mnasnet": MnasNetSpace, "fbnet": FBNetSpace, "nb201": NB201Space}


def get_space(name: str, **options) -> SearchSpace:
    """The space `name` with its options (MnasNet: resolution, num_classes, in_channels; FBNet:
    setting, resolution, num_classes, in_channels; NAS-Bench-201: none, resolution only 32)."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}: expected one of {', '.join(SPACES)}")
    # A misspelt or foreign option is a ValueError naming it, not a TypeError from the constructor.
    known = [p for p in inspect.signature(SPACES[name]).parameters]
    for option in options:
        if option not in known:
            raise ValueError(f"search space {name!r}: unknown option {option!r}, expected one of {', '.join(known)}")
    return SPACES[name](**options)


def spaces_holding(arch) -> list[str]:
    """The known spaces `arch` (an Arch or a NAS-Bench-201 Cell) belongs to, as 'name' or 'name
    (setting)': to name the space of an architecture that a tool made for another space is asked
    to handle."""
    from pynas.arch import Arch
    from pynas.space.fbnet import SETTINGS

    if isinstance(arch, Cell):
        return ["nb201"]
    if not isinstance(arch, Arch):
        raise ValueError(f"arch: expected an Arch or a NAS-Bench-201 Cell, got {type(arch).__name__}")

    candidates = [("mnasnet", MnasNetSpace(resolution=arch.resolution, num_classes=arch.num_classes,
                                           in_channels=arch.in_channels))]
    candidates += [(f"fbnet ({setting})", FBNetSpace(setting)) for setting in SETTINGS]
    found = []
    for label, space in candidates:
        try:
            space.encode(arch)
        except ValueError:
            continue
        found.append(label)
    return found


__all__ = ["Cell", "Decision", "FBNetSpace", "MnasNetSpace", "NB201Space", "SPACES", "SearchSpace", "get_space",
           "spaces_holding"]
