"""pynas: hardware-aware neural architecture search."""

from pynas._core import __version__, build_info, cpu_features, supported_isas

__all__ = ["__version__", "build_info", "cpu_features", "supported_isas"]
