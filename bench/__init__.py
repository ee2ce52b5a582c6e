"""Benchmarks with their data generators. See bench/README.md; figures in bench/RESULTS.md."""
