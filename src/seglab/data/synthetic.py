"""A built-in segmentation dataset that needs no download: shapes on textured, noisy backgrounds.

Each sample is generated from ``(seed, index)`` alone, so it is the same in every process, worker
and run. Shapes of every class share one intensity and texture distribution with each other and
with the background, so a model has to use geometry, not grey level, to tell the classes apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

from seglab.data.validation import Source

# Inside-tests in shape-local coordinates (u, v), for a shape of "radius" r.
SHAPES: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "disc": lambda u, v, r: u**2 + v**2 <= r**2,
    "square": lambda u, v, r: np.maximum(np.abs(u), np.abs(v)) <= 0.85 * r,
    # Equilateral triangle with circumradius 1.2 r: inside all three edges at distance 0.6 r.
    "triangle": lambda u, v, r: np.all(
        [u * np.cos(a) + v * np.sin(a) <= 0.6 * r for a in (0, 2 * np.pi / 3, 4 * np.pi / 3)],
        axis=0,
    ),
    "cross": lambda u, v, r: (
        ((np.abs(u) <= r) & (np.abs(v) <= r / 3)) | ((np.abs(v) <= r) & (np.abs(u) <= r / 3))
    ),
    "ring": lambda u, v, r: (u**2 + v**2 <= r**2) & (u**2 + v**2 >= (0.55 * r) ** 2),
}


class SyntheticShapes(Dataset):
    """Images of shapes (one class per shape kind) with exact class-index masks.

    Args:
        num_samples: number of images.
        class_names: ``[background, shape, ...]``; shapes are any of ``disc``, ``square``,
            ``triangle``, ``cross``, ``ring``. Class ``i`` is ``class_names[i]``.
        image_size: ``size`` or ``[height, width]`` in pixels.
        channels: 1 (grayscale) or 3 (RGB, each object with its own tint).
        max_shapes: each image holds between 1 and this many shapes (later ones occlude earlier).
        noise: standard deviation of the additive Gaussian noise, on a 0..1 intensity scale.
        seed: selects the dataset; use different seeds for train, val and test splits.
        ignore_index: taken as every dataset factory's argument; generated masks ignore no pixel.

    Items are dicts with ``image`` (uint8, H x W x channels) and ``mask`` (uint8, H x W).
    """

    def __init__(
        self,
        num_samples: int,
        class_names: Sequence[str] = ("background", "disc", "square", "triangle"),
        image_size: int | Sequence[int] = 128,
        channels: int = 1,
        max_shapes: int = 3,
        noise: float = 0.05,
        seed: int = 0,
        ignore_index: int = 255,
    ):
        shapes = list(class_names)[1:]
        unknown = [name for name in shapes if name not in SHAPES]
        if not shapes or unknown:
            raise ValueError(
                f"SyntheticShapes class_names {list(class_names)} must be a background name "
                f"followed by one or more of {sorted(SHAPES)}; unknown: {unknown}"
            )
        if channels not in (1, 3):
            raise ValueError(f"SyntheticShapes channels must be 1 or 3, got {channels}")
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f"SyntheticShapes image_size must be >= 16 pixels, got {image_size}")
        self.num_samples = num_samples
        self.shapes = shapes
        self.image_size = size
        self.channels = channels
        self.max_shapes = max_shapes
        self.noise = noise
        self.seed = seed

    def __len__(self) -> int:
        return self.num_samples

    def source(self, index: int) -> Source:
        return Source.index(index)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        rng = np.random.default_rng((self.seed, index))
        height, width = self.image_size
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        background_level = rng.uniform(0.2, 0.8)
        image = self._texture(rng, y, x, background_level)
        mask = np.zeros((height, width), dtype=np.uint8)
        for _ in range(rng.integers(1, self.max_shapes + 1)):
            class_index = int(rng.integers(len(self.shapes)))
            radius = rng.uniform(0.15, 0.3) * min(height, width)
            cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
            angle = rng.uniform(0, 2 * np.pi)
            u = np.cos(angle) * (x - cx) + np.sin(angle) * (y - cy)
            v = -np.sin(angle) * (x - cx) + np.cos(angle) * (y - cy)
            inside = SHAPES[self.shapes[class_index]](u, v, radius)
            # Same level distribution as the background, but visibly different from it.
            level = background_level + rng.choice([-1, 1]) * rng.uniform(0.15, 0.4)
            level = float(np.clip(level, 0.1, 0.9))
            image[inside] = self._texture(rng, y, x, level)[inside]
            mask[inside] = class_index + 1
        image += rng.normal(0, self.noise, image.shape).astype(np.float32)
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        return {"image": image, "mask": mask}

    def _texture(self, rng: np.random.Generator, y: np.ndarray, x: np.ndarray, level: float):
        """A smooth random texture around ``level``: two oriented gratings, per-channel tint."""
        texture = np.full(y.shape, level, dtype=np.float32)
        for _ in range(2):
            frequency = rng.uniform(0.02, 0.15) * 2 * np.pi
            theta = rng.uniform(0, np.pi)
            phase = rng.uniform(0, 2 * np.pi)
            amplitude = rng.uniform(0.02, 0.08)
            texture += amplitude * np.cos(
                frequency * (np.cos(theta) * x + np.sin(theta) * y) + phase
            ).astype(np.float32)
        tint = rng.uniform(-0.08, 0.08, self.channels) if self.channels > 1 else np.zeros(1)
        return texture[..., None] + tint.astype(np.float32)
