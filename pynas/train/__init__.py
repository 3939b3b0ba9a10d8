"""Training networks (needs torch): weight-sharing supernets (`supernet`, `supernet_layers`).

A floor above `torch_builder` and `space` and below `search`: the search's training-based
evaluators call into it; nothing here imports the search.
"""
