"""The per-pixel class of logits or probabilities, fast on the CPU."""

from __future__ import annotations

import torch


def class_argmax(scores: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The index of the highest score along the class dimension ``dim``: ``scores.argmax(dim)``,
    computed as ``scores.max(dim).indices``. The indices are the same (the first maximum on ties,
    NaN counted as the maximum). On the CPU it is 2.9-14x as fast on NCHW tensors, where ``dim``
    is not the innermost dimension (torch 2.14, one thread: 8x4x64x64 fp32 logits in 0.37 ms
    against 3.3 ms, 4x2x256x256 in 1.6 ms against 23.6 ms), and 0.8-1.8x on channels_last ones
    (``python benchmarks/argmax.py``; BENCHMARKS.md, 2026-12-04)."""
    return scores.max(dim).indices
