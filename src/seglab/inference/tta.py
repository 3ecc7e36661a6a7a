"""Test-time augmentation: predict flipped / rotated copies, undo each on the output, average.

``tta="flips"`` uses the four mirrorings of nnU-Net's 2-D test-time mirroring (none, left-right,
up-down, both); ``tta="d4"`` the eight symmetries of the square (four 90-degree rotations, each
with and without a left-right flip). Softmax probabilities are averaged, so the result is again a
probability map. Rotations swap height and width of non-square inputs: the networks take any size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# (quarter turns, left-right flip first): x -> rot90(flip(x), k)
TRANSFORMS: dict[str, tuple[tuple[int, bool], ...]] = {
    "none": ((0, False),),
    "flips": ((0, False), (0, True), (2, True), (2, False)),
    "d4": tuple((k, flip) for k in range(4) for flip in (False, True)),
}


def check_tta(tta: str) -> str:
    if tta not in TRANSFORMS:
        raise ValueError(f"tta must be one of {sorted(TRANSFORMS)}, got {tta!r}")
    return tta


def augment(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """(..., H, W) mirrored left-right (when ``flip``), then turned ``turns`` quarter turns."""
    x = x.flip(-1) if flip else x
    return torch.rot90(x, turns, dims=(-2, -1)) if turns % 4 else x


def restore(y: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """The inverse of :func:`augment`, applied to the network's output."""
    y = torch.rot90(y, -turns, dims=(-2, -1)) if turns % 4 else y
    return y.flip(-1) if flip else y


def averaged_probabilities(
    logits: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tta: str = "none"
) -> torch.Tensor:
    """Softmax of ``logits(x)`` (N, K, H, W), averaged over the ``tta`` transforms of ``x``."""
    transforms = TRANSFORMS[check_tta(tta)]
    total = None
    for turns, flip in transforms:
        probabilities = restore(torch.softmax(logits(augment(x, turns, flip)), dim=1), turns, flip)
        total = probabilities if total is None else total.add_(probabilities)
    return total if len(transforms) == 1 else total.div_(len(transforms))
