"""Native (C++) kernels and network runner: Python-side helpers around pynas._core."""
