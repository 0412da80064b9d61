"""Helpers the benchmarks share: processes, databases, the load generator and the bare baselines."""
