"""Latency predictors: segment features, XGBoost models trained from the measurement store,
accuracy metrics, the compiled lookup table for the search (`pynas.predictor.table`), few-shot
calibration (`pynas.predictor.fewshot`), adaptive sampling, and versioned bundles:

    from pynas import predictor
    p = predictor.load("x86-avx512-litert")     # a shipped bundle, another on the search path, or a folder
    p.predict("mnasnet-a1"); p.predict_batch(tokens); p.explain("mnasnet-a1")
"""
from pynas.predictor.bundle import BundleError, list_bundles, load

__all__ = ["BundleError", "list_bundles", "load"]
