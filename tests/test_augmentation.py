"""Every augmentation preset (conf/data/augmentation/*.yaml): valid arguments, masks that keep
their class indices, image and mask aligned, reproducible under a seed."""

from __future__ import annotations

import warnings
from pathlib import Path

import albumentations as A
import cv2
import hydra
import numpy as np
import pytest
from omegaconf import OmegaConf

from seglab.config import CONFIG_DIR
from seglab.data import SyntheticShapes

from .conftest import compose_train

PRESETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "data" / "augmentation").glob("*.yaml"))
IGNORE = 255
DRAWS = 30


def instantiate_preset(tmp_path: Path, name: str, *overrides: str) -> dict[str, list]:
    """The preset's ``{"train": [...], "eval": [...]}`` transforms; fails on any warning (an
    argument albumentations does not know only warns: "Argument(s) ... are not valid")."""
    cfg = compose_train(tmp_path, [f"data/augmentation={name}", *overrides])
    return instantiate_without_warnings(cfg.data.augmentation)


def instantiate_without_warnings(node):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        instantiated = hydra.utils.instantiate(node)
    assert not caught, [str(w.message) for w in caught]
    return instantiated


def synthetic_sample() -> dict[str, np.ndarray]:
    names = ["background", "disc", "square", "triangle"]
    return SyntheticShapes(num_samples=1, class_names=names, image_size=64, seed=3)[0]


def binary_sample() -> dict[str, np.ndarray]:
    """A 0/1 mask with a block of ignore pixels, and an image that is not a multiple of 8."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (72, 88, 1), dtype=np.uint8)
    mask = np.zeros((72, 88), np.uint8)
    mask[10:50, 20:70] = 1
    mask[30:40, 5:15] = IGNORE
    return {"image": image, "mask": mask}


SAMPLES = {"synthetic": synthetic_sample, "binary": binary_sample}


def test_the_presets_are_found():
    assert {"none", "light", "default", "strong", "crop256"} <= set(PRESETS)


def test_an_unknown_argument_is_caught(tmp_path):
    """The warning check above works: albumentations only warns about a misspelt argument."""
    cfg = compose_train(tmp_path, ["data/augmentation=default"])
    transform = OmegaConf.to_container(cfg.data.augmentation.train[0])
    with pytest.raises(AssertionError, match="'probability' are not valid"):
        instantiate_without_warnings({**transform, "probability": 0.5})


@pytest.mark.parametrize("name", PRESETS)
def test_masks_are_resampled_nearest_and_padded_with_ignore_index(name, tmp_path):
    """Structural check, with a non-default ignore_index: every transform that resamples masks
    uses nearest interpolation, every one that fills borders fills masks with ignore_index."""
    augmentation = instantiate_preset(tmp_path, name, "data.ignore_index=200")
    for transform in [*augmentation["train"], *augmentation["eval"]]:
        if hasattr(transform, "mask_interpolation"):
            assert transform.mask_interpolation == cv2.INTER_NEAREST, transform
        if hasattr(transform, "fill_mask"):
            assert transform.fill_mask == 200, transform


@pytest.mark.parametrize("sample", sorted(SAMPLES))
@pytest.mark.parametrize("name", PRESETS)
def test_augmented_masks_keep_their_values_and_align(name, sample, tmp_path):
    augmentation = instantiate_preset(tmp_path, name)
    raw = SAMPLES[sample]()
    allowed = set(np.unique(raw["mask"]).tolist()) | {IGNORE}
    for split in ("train", "eval"):
        pipeline = A.Compose(list(augmentation[split]))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for seed in range(DRAWS):
                pipeline.set_random_seed(seed)
                out = pipeline(image=raw["image"].copy(), mask=raw["mask"].copy())
                image, mask = out["image"], out["mask"]
                assert mask.dtype == raw["mask"].dtype and mask.ndim == 2
                assert image.dtype == raw["image"].dtype
                assert image.shape[:2] == mask.shape, (seed, image.shape, mask.shape)
                assert image.shape[2:] == raw["image"].shape[2:]
                new = set(np.unique(mask).tolist()) - allowed
                assert not new, f"{name} {split} seed {seed}: new mask values {sorted(new)}"
        assert not caught, [str(w.message) for w in caught]


def test_crop256_pads_small_images_with_ignore_index(tmp_path):
    pipeline = A.Compose(list(instantiate_preset(tmp_path, "crop256")["train"]))
    raw = binary_sample()
    out = pipeline(image=raw["image"], mask=raw["mask"])
    assert out["mask"].shape == (256, 256) and out["image"].shape == (256, 256, 1)
    assert (out["mask"] == IGNORE).sum() == 256 * 256 - (raw["mask"] != IGNORE).sum()


def test_strong_moves_pixels_in_with_ignore_index(tmp_path):
    """Rotations and pads of the strong preset mark what came from outside the image."""
    pipeline = A.Compose(list(instantiate_preset(tmp_path, "strong")["train"]))
    raw = synthetic_sample()
    assert IGNORE not in raw["mask"]
    ignored = 0
    for seed in range(DRAWS):
        pipeline.set_random_seed(seed)
        ignored += int((pipeline(image=raw["image"], mask=raw["mask"])["mask"] == IGNORE).sum())
    assert ignored > 0


@pytest.mark.parametrize("name", PRESETS)
def test_a_seed_gives_the_same_augmentation(name, tmp_path):
    augmentation = instantiate_preset(tmp_path, name)
    raw = synthetic_sample()

    def draws(seed: int) -> list[dict[str, np.ndarray]]:
        pipeline = A.Compose(list(augmentation["train"]))
        pipeline.set_random_seed(seed)
        return [pipeline(image=raw["image"], mask=raw["mask"]) for _ in range(5)]

    first, again, other = draws(1), draws(1), draws(2)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
    if augmentation["train"]:  # random presets differ under another seed
        assert any(
            not np.array_equal(a["image"], b["image"]) for a, b in zip(first, other, strict=True)
        )
