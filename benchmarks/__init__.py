"""Benchmarks of the model families: run each as `python -m benchmarks.NAME`."""
