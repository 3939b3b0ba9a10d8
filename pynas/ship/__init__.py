"""From a found architecture to a shipped model: export (torch, ONNX, TFLite), EfficientNet compound
scaling, NetAdapt and latency-targeted channel pruning, all on the same latency model.

The top floor under the command line: it uses `search` (evaluators), `train`, `predictor` and
`verify`; nothing below imports it.
"""
