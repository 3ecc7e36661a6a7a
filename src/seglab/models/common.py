"""Shape helpers every network shares: pad to a size it accepts, crop back, centre crops."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the bottom/right of (..., H, W) so that H and W are multiples of ``multiple``.

    The network's logits are cropped back with ``logits[..., :H, :W]``.
    """
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


def center_crop(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """The central ``size`` window of the last two dimensions of ``x``."""
    if size[0] > x.shape[-2] or size[1] > x.shape[-1]:
        raise ValueError(
            f"cannot centre-crop a {tuple(x.shape[-2:])} map to the larger size {tuple(size)}"
        )
    top = (x.shape[-2] - size[0]) // 2
    left = (x.shape[-1] - size[1]) // 2
    return x[..., top : top + size[0], left : left + size[1]]
