"""Writing predictions: class-index PNG masks, colour overlays, probability maps.

- :func:`write_mask`: the class indices as a gray PNG, 8-bit up to 256 classes, 16-bit above
  (what :func:`seglab.data.io.read_mask` reads back as it is).
- :func:`write_overlay`: the image with each class's colour blended in, with the colours of
  every other seglab picture (:func:`seglab.utils.overlay.class_colours` and ``overlay``) or a
  palette.
- :func:`write_probabilities`: the (num_classes, H, W) float32 map as ``.npy`` or a float32 TIFF
  (one page per class; tifffile when installed, else OpenCV's ``cv2.imwritemulti``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.inference.predictor import mask_dtype
from seglab.inference.preprocessing import display_rgb
from seglab.utils.overlay import class_colours, overlay

PROBABILITY_SUFFIXES = (".npy", ".tif", ".tiff")


def write_mask(path: str | Path, mask: np.ndarray, num_classes: int) -> Path:
    """Save the (H, W) class indices as a PNG: 8-bit for <= 256 classes, else 16-bit."""
    path = Path(path)
    dtype = mask_dtype(num_classes)
    if dtype == np.int32:
        raise ValueError(f"{num_classes} classes do not fit a 16-bit PNG mask: save them as .npy")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask is H x W, got shape {mask.shape}")
    Image.fromarray(mask.astype(dtype)).save(path)
    return path


def colours_of(palette: Sequence[Sequence[int]] | None, num_classes: int) -> np.ndarray:
    """(num_classes, 3) float colours in 0..1: ``palette`` ([r, g, b] in 0..255 per class) or
    seglab's class colours when None."""
    if palette is None:
        return class_colours(num_classes)
    colours = np.asarray(palette, dtype=np.float64)
    if colours.shape != (num_classes, 3) or colours.min() < 0 or colours.max() > 255:
        raise ValueError(
            f"palette must give one [r, g, b] in 0..255 per class ({num_classes} x 3), got shape "
            f"{colours.shape}"
        )
    return colours / 255.0


def write_overlay(
    path: str | Path,
    image: np.ndarray,
    mask: np.ndarray,
    num_classes: int,
    *,
    palette: Sequence[Sequence[int]] | None = None,
    ignore_index: int = 255,
    max_value_16bit: float = 65535.0,
) -> Path:
    """Save ``image`` (the user's array) with ``mask`` blended in as an 8-bit RGB PNG."""
    path = Path(path)
    rgb = display_rgb(image, max_value_16bit)
    if rgb.shape[:2] != np.shape(mask):
        raise ValueError(f"image {rgb.shape[:2]} and mask {np.shape(mask)} differ in size")
    drawn = overlay(rgb, np.asarray(mask), colours_of(palette, num_classes), ignore_index)
    Image.fromarray(np.round(drawn * 255).astype(np.uint8)).save(path)
    return path


def _tiff_writer():
    """tifffile's ``imwrite`` when installed, else None (OpenCV writes then)."""
    try:
        import tifffile
    except ImportError:
        return None
    return tifffile.imwrite


def write_probabilities(path: str | Path, probabilities: np.ndarray) -> Path:
    """Save a (num_classes, H, W) float32 map as ``.npy`` or float32 ``.tif`` / ``.tiff``."""
    path = Path(path)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    suffix = path.suffix.lower()
    if suffix not in PROBABILITY_SUFFIXES:
        raise ValueError(
            f"probability maps are written as {' or '.join(PROBABILITY_SUFFIXES)}, not {path.name}"
        )
    if probabilities.ndim != 3:
        raise ValueError(f"a probability map is (num_classes, H, W), got {probabilities.shape}")
    if suffix == ".npy":
        np.save(path, probabilities)
    elif (imwrite := _tiff_writer()) is not None:
        imwrite(path, probabilities)
    else:
        import cv2

        if not cv2.imwritemulti(str(path), list(probabilities)):
            raise OSError(f"OpenCV could not write {path}: check the folder exists and is writable")
    return path


def read_probabilities(path: str | Path) -> np.ndarray:
    """The (num_classes, H, W) float32 map that :func:`write_probabilities` saved."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return np.load(path)
    try:
        import tifffile
    except ImportError:
        import cv2

        ok, pages = cv2.imreadmulti(str(path), flags=cv2.IMREAD_UNCHANGED)
        if not ok:
            raise ValueError(f"cannot read the TIFF {path}") from None
        return np.stack(pages)
    return tifffile.imread(path)
