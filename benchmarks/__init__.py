"""seglab's benchmark scripts (``python -m benchmarks``; see BENCHMARKS.md)."""
