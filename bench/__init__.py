"""Benchmarks of farm against pytest and pytest-xdist (run `python bench/run.py --help`)."""
