"""Latency predictors: segment features, XGBoost models trained from the measurement store, the
network term, accuracy metrics, the compiled lookup table, few-shot calibration, adaptive sampling,
HW-NAS-Bench's device tables, versioned bundles, and this machine's own (`pynas device init`):

    from pynas import predictor
    p = predictor.load("x86-avx512-litert")      # a bundle name on the search path, or a folder (./NAME)
    p.predict("mnasnet-a1"); p.explain("mnasnet-a1")
    model = predictor.latency_model("x86-avx512-litert", "mnasnet", resolution=224)
    model.predict_batch(tokens)                  # what a search calls: the fastest valid path

Modules, lowest first: features, metrics, network_term, manifest, train, table, batched,
predictors (the loaded bundle kinds), lookup (per-architecture bundles: NAS-Bench-201), writers,
index, bundle (finding and loading), latency_model, device (which machine a bundle describes),
fewshot, hwnasbench, adaptive, onboard (device init).
"""
from pynas.predictor.bundle import BundleError, list_bundles, load
from pynas.predictor.device import DeviceMismatchWarning
from pynas.predictor.latency_model import LatencyModel, latency_model

__all__ = ["BundleError", "DeviceMismatchWarning", "LatencyModel", "latency_model", "list_bundles", "load"]
