"""Op-graph IR: lower an architecture to ops with shapes and counts, fuse ops into kernels."""
from pynas.ir.fusion import Kernel, fuse
from pynas.ir.lower import Graph, lower
from pynas.ir.ops import NETWORK_INPUT, Op

__all__ = ["Graph", "Kernel", "NETWORK_INPUT", "Op", "fuse", "lower"]
