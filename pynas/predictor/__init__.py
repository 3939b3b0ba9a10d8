"""Latency predictors: segment features, XGBoost models trained from the measurement store,
accuracy metrics, the compiled lookup table for the search (`pynas.predictor.table`), and
versioned bundles."""
