"""Accuracy of architectures: proxy training, zero-cost proxies, weight-sharing supernets.

Modules: `nb201` (NAS-Bench-201's network for a cell, in PyTorch), `proxies` (zero-cost scores at
initialisation), `trainer` (proxy training), `proxy_task` (an architecture's header adapted to the
data), `supernet_layers` and `supernet` (the MnasNet space's weight-sharing supernet). This floor may
import data, arch, ir, space and torch_builder, never search or cli.
"""
