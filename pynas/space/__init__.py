"""Search spaces by name."""
import functools
import inspect

from pynas.space.base import Decision, SearchSpace
from pynas.space.cells import CellSpace, DARTSSpace, ENASSpace, NASNetSpace
from pynas.space.fbnet import FBNetSpace
from pynas.space.mnasnet import MnasNetSpace
from pynas.space.nb201 import Cell, NB201Space

SPACES = {"mnasnet": MnasNetSpace, "fbnet": FBNetSpace, "nb201": NB201Space, "darts": DARTSSpace,
          "nasnet": NASNetSpace, "enas": ENASSpace}


def get_space(name: str, **options) -> SearchSpace:
    """The space `name` with its options (MnasNet: resolution, num_classes, in_channels; FBNet:
    setting, resolution, num_classes, in_channels; NAS-Bench-201: none, resolution only 32; the cell
    spaces darts, nasnet, enas: resolution, num_classes, in_channels, channels, cells)."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}: expected one of {', '.join(SPACES)}")
    # A misspelt or foreign option is a ValueError naming it, not a TypeError from the constructor.
    known = [p for p in inspect.signature(SPACES[name]).parameters]
    for option in options:
        if option not in known:
            raise ValueError(f"search space {name!r}: unknown option {option!r}, expected one of {', '.join(known)}")
    return SPACES[name](**options)


@functools.lru_cache(maxsize=16)
def _candidate_spaces(resolution: int, num_classes: int, in_channels: int) -> tuple:
    """The spaces `spaces_holding` tries, built once per header: building FBNet's spaces took about
    half of pricing a batch of architectures that bundles check this way."""
    from pynas.space.fbnet import SETTINGS

    return (("mnasnet", MnasNetSpace(resolution=resolution, num_classes=num_classes, in_channels=in_channels)),
            *((f"fbnet ({setting})", FBNetSpace(setting)) for setting in SETTINGS))


def spaces_holding(arch) -> list[str]:
    """The known spaces `arch` (an Arch, a NAS-Bench-201 Cell or a cell network) belongs to, as
    'name' or 'name (setting)': to name the space of an architecture that a tool made for another
    space is asked to handle."""
    from pynas.arch import Arch
    from pynas.cell import CellNet

    if isinstance(arch, Cell):
        return ["nb201"]
    if isinstance(arch, CellNet):
        found = []
        if NB201Space.holds_network(arch):
            found.append("nb201")
        for name in ("darts", "nasnet", "enas"):
            try:
                SPACES[name](arch.resolution, arch.num_classes, arch.in_channels, arch.channels,
                             arch.cells).encode(arch)
            except ValueError:
                continue
            found.append(name)
        return found
    if not isinstance(arch, Arch):
        raise ValueError(f"arch: expected an Arch, a NAS-Bench-201 Cell or a cell network, got {type(arch).__name__}")

    found = []
    for label, space in _candidate_spaces(arch.resolution, arch.num_classes, arch.in_channels):
        try:
            space.encode(arch)
        except ValueError:
            continue
        found.append(label)
    return found


__all__ = ["Cell", "CellSpace", "DARTSSpace", "Decision", "ENASSpace", "NASNetSpace", "FBNetSpace", "MnasNetSpace", "NB201Space", "SPACES", "SearchSpace", "get_space",
           "spaces_holding"]
