"""Benchmarks run by `make bench-*` targets; each writes its results under bench/."""
