"""User arrays -> network input, by the same rules as the training data.

Training reads 8-bit files as uint8 and 16-bit files as float32 divided by ``max_value_16bit``
(:func:`seglab.data.io.read_image`); its pipeline then brings both to 0..1 (``ToFloat``) and
normalises with ``mean`` / ``std`` on that 0..1 scale
(:func:`seglab.data.transforms.build_pipeline`).
:class:`Preprocessing` does the same to the arrays a user has: H x W or H x W x C numpy arrays in
uint8 (/ 255), uint16 (/ ``max_value_16bit``) or float (taken as 0..1 already), gray <-> RGB
converted to the network's ``in_channels`` as Pillow converts files (ITU-R 601-2 luma), giving a
(1, C, H, W) float32 tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

# Pillow's RGB -> L conversion in fixed point (libImaging/Convert.c), so that 8-bit RGB arrays
# converted here equal RGB files that training read with channels=1.
LUMA_FIXED = (19595, 38470, 7471)
LUMA = (0.299, 0.587, 0.114)
FLOAT_SLACK = 1e-3  # float images may stray this far outside 0..1 (rounding, resampling)


def _checked(image) -> np.ndarray:
    """``image`` as an H x W x C array; wrong rank, emptiness or dtype raise naming the fix."""
    array = np.asarray(image)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"image has shape {array.shape}: pass one H x W (gray) or H x W x C (channels last) "
            "array; for a batch, call the predictor once per image"
        )
    if array.size == 0:
        raise ValueError(f"image of shape {array.shape} is empty: height and width must be >= 1")
    if not (array.dtype in (np.uint8, np.uint16) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(
            f"image dtype {array.dtype} is not supported: pass uint8 (0..255), uint16 (16-bit, "
            "divided by max_value_16bit) or float (0..1), e.g. image.astype(np.float32) / 255"
        )
    return array if array.ndim == 3 else array[..., None]


def _gray(array: np.ndarray) -> np.ndarray:
    """H x W x 1 luma of H x W x 3 (or RGBA: alpha dropped), as Pillow's ``convert('L')``."""
    r, g, b = (array[..., i] for i in range(3))
    if array.dtype == np.uint8:
        wr, wg, wb = LUMA_FIXED
        luma = r.astype(np.uint32) * wr + g.astype(np.uint32) * wg + b.astype(np.uint32) * wb
        return ((luma + 0x8000) >> 16).astype(np.uint8)[..., None]
    wr, wg, wb = LUMA
    luma = r.astype(np.float32) * wr + g.astype(np.float32) * wg + b.astype(np.float32) * wb
    return luma.astype(array.dtype)[..., None]


def to_channels(array: np.ndarray, channels: int) -> np.ndarray:
    """H x W x ``channels``: gray -> RGB by repetition, RGB(A) -> gray by luma, RGBA -> RGB."""
    have = array.shape[-1]
    if have == channels:
        return array
    if channels == 3 and have == 1:
        return np.repeat(array, 3, axis=-1)
    if channels == 3 and have == 4:
        return array[..., :3]
    if channels == 1 and have in (3, 4):
        return _gray(array)
    hint = (
        f"; it looks channels-first: pass image.transpose(1, 2, 0) of shape "
        f"{array.shape[1:] + array.shape[:1]}"
        if array.shape[0] in (1, 3, 4) and have > 4
        else ""
    )
    raise ValueError(
        f"image of shape {array.shape} has {have} channels but the network takes "
        f"in_channels={channels}: pass H x W x {channels} (or gray H x W / RGB H x W x 3 when "
        f"in_channels is 1 or 3){hint}"
    )


def _check_float_range(array: np.ndarray) -> None:
    low, high = float(array.min()), float(array.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("float image holds NaN or infinite values: clean or mask them first")
    if low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:
        raise ValueError(
            f"float images are taken on a 0..1 scale, this one spans {low:g}..{high:g}: divide "
            "it by its maximum value (255 for 8-bit data) or pass the uint8 / uint16 array"
        )


def _scale(dtype: np.dtype, max_value_16bit: float) -> float | None:
    """What the dtype is divided by to reach 0..1 (None: float, taken as it is)."""
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return float(max_value_16bit)
    return None


def display_rgb(image, max_value_16bit: float = 65535.0) -> np.ndarray:
    """``image`` as H x W x 3 float64 in 0..1 for drawing: gray is repeated, RGBA loses alpha,
    other channel counts show their first channel in gray."""
    array = _checked(image)
    scale = _scale(array.dtype, max_value_16bit)
    rgb = array[..., :3] if array.shape[-1] in (3, 4) else np.repeat(array[..., :1], 3, axis=-1)
    rgb = rgb.astype(np.float64)
    return np.clip(rgb / scale if scale else rgb, 0.0, 1.0)


def _floats(values: Sequence[float], name: str, channels: int) -> tuple[float, ...]:
    values = tuple(float(v) for v in np.atleast_1d(np.asarray(values, dtype=np.float64)))
    if len(values) not in (1, channels):
        raise ValueError(
            f"Preprocessing {name} has {len(values)} values for in_channels={channels}: give "
            f"one value or one per channel"
        )
    return values


@dataclass(frozen=True)
class Preprocessing:
    """How images become network input: channels, normalisation, 16-bit scale.

    Args:
        in_channels: channels the network takes (1 gray, 3 RGB, or any count given as is).
        mean, std: per-channel (or one for all) normalisation on the 0..1 scale, as ``data.mean``
            and ``data.std`` of the training config.
        max_value_16bit: what 16-bit (uint16) images are divided by, as training's
            ``max_value_16bit`` (65535 for full-range data, 4095 for 12-bit sensors).
    """

    in_channels: int = 1
    mean: Sequence[float] = (0.5,)
    std: Sequence[float] = (0.25,)
    max_value_16bit: float = 65535.0

    def __post_init__(self):
        if int(self.in_channels) < 1:
            raise ValueError(f"Preprocessing in_channels must be >= 1, got {self.in_channels}")
        object.__setattr__(self, "in_channels", int(self.in_channels))
        object.__setattr__(self, "mean", _floats(self.mean, "mean", self.in_channels))
        std = _floats(self.std, "std", self.in_channels)
        if min(std) <= 0:
            raise ValueError(f"Preprocessing std must be positive, got {list(std)}")
        object.__setattr__(self, "std", std)
        if not self.max_value_16bit > 0:
            raise ValueError(
                f"Preprocessing max_value_16bit must be positive, got {self.max_value_16bit}"
            )

    def to_tensor(self, image) -> torch.Tensor:
        """(1, in_channels, H, W) float32, normalised, of an H x W (x C) uint8/uint16/float array.

        Works channel by channel into one float32 buffer: the input's size in float32 is all the
        memory it adds.
        """
        array = to_channels(_checked(image), self.in_channels)
        scale = _scale(array.dtype, self.max_value_16bit)
        if scale is None:
            _check_float_range(array)
        out = np.empty((self.in_channels, *array.shape[:2]), dtype=np.float32)
        for c in range(self.in_channels):
            plane = out[c]
            if scale is None:
                plane[...] = array[..., c]
            else:
                np.divide(array[..., c], np.float32(scale), out=plane, dtype=np.float32)
            plane -= np.float32(self.mean[c % len(self.mean)])
            plane *= np.float32(1.0 / self.std[c % len(self.std)])
        return torch.from_numpy(out)[None]
