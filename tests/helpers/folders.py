"""Tiny image/mask folders written with Pillow, for FolderDataset and data=folder tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_folder(
    root: Path,
    stems=tuple(f"{i:02d}" for i in range(10)),
    size: tuple[int, int] = (16, 20),
    mask_suffix: str = "",
    image_ext: str = ".png",
    mask_ext: str = ".png",
) -> Path:
    """``root/images/<stem><image_ext>`` (8-bit gray, H x W = ``size``) and
    ``root/masks/<stem><mask_suffix><mask_ext>``: class 1 where the image is brighter than 127."""
    for index, stem in enumerate(stems):
        image = np.random.default_rng(index).integers(0, 256, size, dtype=np.uint8)
        save(root / "images" / f"{stem}{image_ext}", image)
        save(root / "masks" / f"{stem}{mask_suffix}{mask_ext}", (image > 127).astype(np.uint8))
    return root


def folder_overrides(root: Path) -> list[str]:
    """``data=folder`` on the 1-channel folder at ``root``, in one process, batches of 4."""
    return [
        "data=folder",
        f"data.dataset.root='{root}'",
        "data.in_channels=1",
        "data.mean=[0.5]",
        "data.std=[0.25]",
        "data.batch_size=4",
        "data.num_workers=0",
    ]
