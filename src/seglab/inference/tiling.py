"""Sliding-window (tiled) inference through MONAI's ``sliding_window_inference``.

MONAI's implementation is used as it is (``monai.inferers``, imported only when an image is tiled:
importing MONAI takes seconds). Tiles of ``roi_size`` are cut from the input on the CPU with
``overlap``, batched ``sw_batch_size`` at a time onto the network's device (``sw_device``), and
their outputs (here: softmax probabilities) are blended with a ``gaussian`` or ``constant``
weight into a full-size output kept on the CPU (``device``), divided by the summed weights.

Memory on the CPU: the float32 input, the float32 output (K x H x W) and MONAI's float32
weight-sum map (H x W); nothing that grows with the number of tiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

BLEND_MODES = ("gaussian", "constant")


def tile_shape(tile_size: int, size_multiple: int, height: int, width: int) -> tuple[int, int]:
    """The tile: ``tile_size`` rounded up to the network's size multiple, no larger than the image
    along either side (MONAI would otherwise pad the image up to the tile)."""
    tile = math.ceil(tile_size / size_multiple) * size_multiple
    return min(tile, height), min(tile, width)


def needs_tiling(tile_size: int | None, size_multiple: int, height: int, width: int) -> bool:
    """Whether an image of ``height`` x ``width`` is larger than the (rounded) tile."""
    if tile_size is None:
        return False
    tile = math.ceil(tile_size / size_multiple) * size_multiple
    return height > tile or width > tile


def check_tiling(tile_size: int | None, overlap: float, batch_size: int, blend: str) -> None:
    """Tile settings in range, or an error naming the argument and what it takes."""
    if tile_size is not None and int(tile_size) < 1:
        raise ValueError(f"tile_size must be >= 1 (or None: never tile), got {tile_size}")
    if not 0 <= overlap < 1:
        raise ValueError(f"tile_overlap must be in [0, 1), got {overlap}")
    if int(batch_size) < 1:
        raise ValueError(f"tile_batch_size must be >= 1, got {batch_size}")
    if blend not in BLEND_MODES:
        raise ValueError(f"blend must be one of {BLEND_MODES}, got {blend!r}")


def sliding_window(
    predict: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    roi: tuple[int, int],
    *,
    batch_size: int = 4,
    overlap: float = 0.25,
    blend: str = "gaussian",
    tile_device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``predict`` (N, C, h, w) -> (N, K, h, w) over tiles of ``x`` (1, C, H, W, on the CPU).

    Returns the blended (1, K, H, W) float32 output on the CPU; tiles run on ``tile_device``.
    """
    from monai.inferers import sliding_window_inference

    return sliding_window_inference(
        x,
        roi_size=roi,
        sw_batch_size=int(batch_size),
        predictor=predict,
        overlap=overlap,
        mode=blend,
        sw_device=tile_device,
        device="cpu",
    )
