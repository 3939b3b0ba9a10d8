"""Accuracy of architectures: proxy training, zero-cost proxies, weight-sharing supernets."""
