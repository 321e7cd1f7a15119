"""Benchmarks against baselines and limits (run by hand or by make targets, not by the tests)."""
