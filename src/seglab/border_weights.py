"""The U-Net paper's border weight map (Ronneberger et al. 2015, eq. 2), without its class term:

    w(x) = 1 + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

where d1 and d2 are the distances from pixel x to the nearest and the second nearest object (a
connected component of ``objects_class``; in ISBI 2012 a cell). Pixels of the thin gaps between
two touching objects get weights up to ``1 + w0``, so the network learns to separate them. The
paper uses w0 = 10, sigma = 5 px. (Its class-frequency term is the loss's ``class_weights``.)

Each object's distance map is computed only within its bounding box grown by ``4 sigma``: beyond
that the term is below ``w0 * exp(-8)`` (0.003 for w0 = 10), so it is taken as 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage


def border_weight_map(
    target: np.ndarray, objects_class: int, w0: float = 10.0, sigma: float = 5.0
) -> np.ndarray:
    """The (H, W) float32 weight map of one (H, W) class-index mask."""
    objects, _ = ndimage.label(target == objects_class)
    nearest = np.full(target.shape, np.inf, dtype=np.float32)
    second = np.full(target.shape, np.inf, dtype=np.float32)
    margin = math.ceil(4 * sigma)
    height, width = target.shape
    for index, box in enumerate(ndimage.find_objects(objects), start=1):
        rows = slice(max(box[0].start - margin, 0), min(box[0].stop + margin, height))
        cols = slice(max(box[1].start - margin, 0), min(box[1].stop + margin, width))
        distance = ndimage.distance_transform_edt(objects[rows, cols] != index).astype(np.float32)
        near, sec = nearest[rows, cols], second[rows, cols]  # views: updated in place
        np.copyto(sec, np.minimum(sec, np.maximum(near, distance)))
        np.copyto(near, np.minimum(near, distance))
    term = np.exp(-((nearest + second) ** 2) / (2 * sigma**2))  # exp(-inf) = 0: fewer than 2
    return (1 + w0 * term).astype(np.float32)


def border_weights(
    target: torch.Tensor, objects_class: int, w0: float = 10.0, sigma: float = 5.0
) -> torch.Tensor:
    """The (N, H, W) weight maps of an (N, H, W) batch of class-index masks, on its device."""
    masks = target.detach().cpu().numpy()
    maps = np.stack([border_weight_map(mask, objects_class, w0, sigma) for mask in masks])
    return torch.from_numpy(maps).to(target.device)
