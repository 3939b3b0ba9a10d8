"""Measuring a chosen architecture where its latency bundle says it runs, against the prediction.

This floor sits on `predictor` (bundles, their device) and `profiling` (backends, spell-robust
timing); `search` uses it to verify a run's picks, `ship` and the command line for `pynas verify`.
"""
