"""Accuracy of architectures without the benchmark's table: networks to train or score, zero-cost
proxies (`proxies`), later proxy training and supernets.

Modules: nb201 (NAS-Bench-201's network for a cell, in PyTorch), proxies (scores at
initialisation). This floor may import arch, ir, space and torch_builder, never search or cli.
"""
