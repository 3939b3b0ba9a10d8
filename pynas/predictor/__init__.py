"""Latency predictors: the compiled lookup table (`pynas.predictor.table`)."""
