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
import torch
from omegaconf import OmegaConf
from torch.utils.data import Dataset

from seglab.config import CONFIG_DIR
from seglab.data import SegmentationDataModule, SyntheticShapes
from seglab.data.transforms import Rotate90KeepShape
from seglab.train import run_task

from .conftest import TINY_MODEL, TINY_TRAINER, compose_train
from .helpers.folders import save

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


# --- sizes: square, non-square and mixed-size images through the loaders ----------------------


class RGBArrays(Dataset):
    """RGB images of the given sizes (H, W) with 2-class masks."""

    def __init__(self, sizes):
        self.sizes = list(sizes)

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        image = rng.integers(0, 256, (*self.sizes[index], 3), dtype=np.uint8)
        return {"image": image, "mask": (image[..., 0] > 127).astype(np.uint8)}


SIZES = {
    "square": [(40, 40)] * 8,
    "non-square": [(36, 48)] * 8,
    "mixed": [(48, 64), (64, 48), (70, 60), (36, 48)] * 2,
}


@pytest.mark.parametrize("sizes", sorted(SIZES))
@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_batches_square_non_square_and_mixed_sizes(name, sizes, tmp_path):
    dataset = RGBArrays(SIZES[sizes])
    datamodule = SegmentationDataModule(
        datasets={"train": dataset, "val": dataset},
        class_names=["background", "foreground"],
        in_channels=3,
        augmentation=instantiate_preset(tmp_path, name),
        mean=[0.5] * 3,
        std=[0.25] * 3,
        batch_size=4,
    )
    for loader in (datamodule.train_dataloader(), datamodule.val_dataloader()):
        for seed in range(3):  # rotations are random: draw a few epochs
            torch.manual_seed(seed)
            for batch in loader:
                image, mask = batch["image"], batch["mask"]
                assert image.shape[0] == mask.shape[0] and image.shape[1] == 3
                assert image.shape[2:] == mask.shape[1:]
                assert set(mask.unique().tolist()) <= {0, 1, IGNORE}


def test_mixed_sizes_are_padded_with_ignore_index_to_the_largest_in_the_batch():
    dataset = RGBArrays([(48, 64), (70, 60)])
    datamodule = SegmentationDataModule(
        datasets={"train": dataset, "val": dataset},
        class_names=["background", "foreground"],
        in_channels=3,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        ignore_index=200,
        batch_size=2,
    )
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["image"].shape == (2, 3, 70, 64) and batch["mask"].shape == (2, 70, 64)
    first = datamodule.split("val")[0]
    assert torch.equal(batch["image"][0, :, :48, :60], first["image"][:, :48, :60])
    assert torch.equal(batch["mask"][0, :48, :64], first["mask"])
    assert (batch["mask"][0, 48:] == 200).all() and (batch["mask"][1, :, 60:] == 200).all()


@pytest.mark.parametrize("square", [True, False])
def test_rotate90_keeps_the_shape_of_non_square_images(square):
    transform = A.Compose([Rotate90KeepShape(p=1.0)])
    image = np.arange(36 * (36 if square else 48), dtype=np.uint8).reshape(36, -1)
    shapes, outputs = set(), set()
    for seed in range(20):
        transform.set_random_seed(seed)
        out = transform(image=image, mask=image)["image"]
        shapes.add(out.shape)
        outputs.add(out.tobytes())
    assert shapes == ({(36, 36)} if square else {(36, 48)})
    assert len(outputs) == (4 if square else 2)  # 0/90/180/270, or 0/180 degrees


def test_a_short_training_on_mixed_size_rgb_photos(tmp_path):
    root = tmp_path / "data"
    for index, size in enumerate([(36, 48), (48, 36), (40, 44), (36, 48)] * 3):
        image = np.random.default_rng(index).integers(0, 256, (*size, 3), dtype=np.uint8)
        save(root / "images" / f"{index:02d}.png", image)
        save(root / "masks" / f"{index:02d}.png", (image[..., 0] > 127).astype(np.uint8))
    overrides = [f"data.dataset.root='{root}'", "data.batch_size=4", "data.num_workers=0"]
    cfg = compose_train(
        tmp_path / "run", ["data=folder", *overrides, *TINY_MODEL, *TINY_TRAINER, "logger=csv"]
    )
    metrics = run_task(cfg)
    assert 0 <= metrics["test/dice"] <= 1


def test_crop256_elastic_deformation_is_off_by_default_and_moves_pixels_when_on(tmp_path):
    """The U-Net paper's elastic deformation (data.augmentation.elastic_p): off by default; on,
    it bends the crop smoothly, keeps its size and keeps the mask to its classes."""
    raw = {"image": np.zeros((300, 300, 1), np.uint8), "mask": np.zeros((300, 300), np.uint8)}
    raw["image"][:, 100:200] = 200  # a vertical band: straight edges to bend
    raw["mask"][:, 100:200] = 1

    def crops(*overrides: str) -> list[dict[str, np.ndarray]]:
        augmentation = instantiate_preset(tmp_path, "crop256", *overrides)
        # the crop and the deformation alone: flips and rotations would move the band anyway
        elastic = [t for t in augmentation["train"] if isinstance(t, A.GridElasticDeform)]
        pipeline = A.Compose([A.CenterCrop(256, 256), *elastic])
        return [pipeline(image=raw["image"], mask=raw["mask"]) for _ in range(5)]

    straight = raw["mask"][22:278, 22:278]
    assert all(np.array_equal(out["mask"], straight) for out in crops())
    bent = crops("data.augmentation.elastic_p=1.0", "data.augmentation.elastic_magnitude=20")
    for out in bent:
        assert out["mask"].shape == (256, 256) and out["image"].shape == (256, 256, 1)
        assert set(np.unique(out["mask"]).tolist()) <= {0, 1}
        # the band's edges are no longer straight: some rows have moved edges
        edges = [np.flatnonzero(np.diff(row.astype(int))) for row in out["mask"]]
        assert len({tuple(e) for e in edges}) > 1
    assert not all(np.array_equal(out["mask"], straight) for out in bent)
