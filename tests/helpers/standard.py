"""Tiny fake copies of torchvision's on-disk layouts (Oxford-IIIT Pet, Pascal VOC), written with
Pillow: a few small photos of varying size, no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZES = [(40, 50), (44, 36)]  # H x W, alternating: photos differ in size


def _photo(index: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(index)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def _blob(size: tuple[int, int], index: int) -> tuple[np.ndarray, np.ndarray]:
    """An ellipse (inside) and a 2-pixel band around it (border)."""
    h, w = size
    y, x = np.mgrid[:h, :w]
    cy, cx = h / 2 + index % 3, w / 2 - index % 2
    r = ((y - cy) / (h / 4)) ** 2 + ((x - cx) / (w / 4)) ** 2
    return r <= 1, (r > 1) & (r <= 1.4)


def pet_trimap(index: int, size: tuple[int, int]) -> np.ndarray:
    """1 pet, 2 background, 3 border (the trimap encoding)."""
    inside, band = _blob(size, index)
    trimap = np.full(size, 2, np.uint8)
    trimap[inside], trimap[band] = 1, 3
    return trimap


def make_oxford_pet(root: Path, num_trainval: int = 10, num_test: int = 4) -> Path:
    """``root/oxford-iiit-pet/images/<id>.jpg`` and ``annotations/{trainval,test}.txt`` with
    ``annotations/trimaps/<id>.png``."""
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    breeds = [("Abyssinian", 1, 1), ("beagle", 2, 2)]  # (name, class id, species: 1 cat 2 dog)
    index = 0
    for split, count in (("trainval", num_trainval), ("test", num_test)):
        lines = []
        for _ in range(count):
            breed, label, species = breeds[index % 2]
            image_id = f"{breed}_{index + 1}"
            size = SIZES[index % 2]
            _photo(index, size).save(base / "images" / f"{image_id}.jpg")
            trimap = pet_trimap(index, size)
            Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{image_id}.png")
            lines.append(f"{image_id} {label} {species} 1")
            index += 1
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def voc_palette() -> list[int]:
    """VOC's colour map (the bit-interleaved one of the devkit), 256 RGB entries."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def voc_mask(index: int, size: tuple[int, int]) -> np.ndarray:
    """Background 0, an object of class ``index % 20 + 1`` with a void (255) outline."""
    inside, band = _blob(size, index)
    mask = np.zeros(size, np.uint8)
    mask[inside], mask[band] = index % 20 + 1, 255
    return mask


def make_voc(root: Path, num_train: int = 6, num_val: int = 3, year: str = "2012") -> Path:
    """``root/VOCdevkit/VOC<year>/{JPEGImages, SegmentationClass, ImageSets/Segmentation}``."""
    base = root / "VOCdevkit" / f"VOC{year}"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    names = {"train": [], "val": []}
    for index in range(num_train + num_val):
        name = f"{year}_{index:06d}"
        size = SIZES[index % 2]
        _photo(index, size).save(base / "JPEGImages" / f"{name}.jpg")
        mask = Image.fromarray(voc_mask(index, size), mode="P")
        mask.putpalette(voc_palette())
        mask.save(base / "SegmentationClass" / f"{name}.png")
        names["train" if index < num_train else "val"].append(name)
    names["trainval"] = names["train"] + names["val"]
    for image_set, stems in names.items():
        (base / "ImageSets" / "Segmentation" / f"{image_set}.txt").write_text(
            "\n".join(stems) + "\n"
        )
    return root
