"""Reproducible performance runs of the conductor, side by side with peers (not a test suite).

Run ``python -m benchmarks.run --help``; see ``benchmarks/README.md`` for the latest figures.
"""
