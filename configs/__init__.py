"""Benchmark definitions shipped with foveabench (``demo.yaml`` is the default)."""
