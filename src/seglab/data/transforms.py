"""Albumentations pipelines: augmentation from config, then normalisation and tensor conversion."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
from albumentations.pytorch import ToTensorV2


def build_pipeline(
    augmentations: Sequence[A.BasicTransform],
    mean: Sequence[float],
    std: Sequence[float],
    max_pixel_value: float = 255.0,
) -> A.Compose:
    """``augmentations`` (spatial and colour), then ``Normalize`` and ``ToTensorV2``.

    Spatial transforms move image and mask together; albumentations resamples masks with nearest
    interpolation, so mask values stay class indices.
    """
    return A.Compose(
        [
            *augmentations,
            A.Normalize(mean=list(mean), std=list(std), max_pixel_value=max_pixel_value),
            ToTensorV2(),
        ]
    )
