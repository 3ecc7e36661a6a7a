"""Albumentations pipelines: augmentation from config, then normalisation and tensor conversion."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
from albumentations.pytorch import ToTensorV2


def build_pipeline(
    augmentations: Sequence[A.BasicTransform],
    mean: Sequence[float],
    std: Sequence[float],
) -> A.Compose:
    """``augmentations`` (spatial and colour), then ``ToFloat``, ``Normalize`` and ``ToTensorV2``.

    Images may be uint8 (0..255) or float32 on a 0..1 scale (what ``FolderDataset`` makes of
    16-bit files), Albumentations' two native types: ``ToFloat`` brings both to 0..1, so ``mean``
    and ``std`` are always on the 0..1 intensity scale. Spatial transforms move image and mask
    together; albumentations resamples masks with nearest interpolation, so mask values stay class
    indices.
    """
    return A.Compose(
        [
            *augmentations,
            A.ToFloat(),  # uint8 / 255; float32 is left as it is
            A.Normalize(mean=list(mean), std=list(std), max_pixel_value=1.0),
            ToTensorV2(),
        ]
    )


class Rotate90KeepShape(A.RandomRotate90):
    """``RandomRotate90`` that keeps every image's shape: square images turn by 0, 90, 180 or
    270 degrees (exactly as ``RandomRotate90``, same random draws), non-square ones by 0 or 180
    only, since 90 and 270 would swap height and width and batches could no longer stack."""

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        height, width = params["shape"][:2]
        if height == width:
            return {}
        return {"factor": 2 * self.py_random.randint(0, 1)}
