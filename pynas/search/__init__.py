"""The search: strategies propose architectures of a space, an evaluator measures their accuracy,
the space's latency model prices them, a reward combines both (see the modules)."""
