"""Choosing a few samples out of many."""

from __future__ import annotations

import numpy as np


def spaced_indices(length: int, max_samples: int | None) -> list[int]:
    """All indices, or at most ``max_samples`` evenly spaced ones."""
    if length == 0:
        return []
    count = length if max_samples is None else max(1, min(max_samples, length))
    return np.unique(np.linspace(0, length - 1, count).round().astype(int)).tolist()
