"""Benchmarks: each prints figures; run all with `make bench`."""
