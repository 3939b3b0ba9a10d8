"""Latency predictors: segment features, XGBoost models trained from the measurement store,
accuracy metrics, compiled lookup tables for the search, and versioned bundles."""
