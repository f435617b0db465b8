"""Scoring models: the benchmark protocol, the authors' tiling and side-by-side comparisons."""
