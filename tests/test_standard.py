"""Oxford-IIIT Pet and Pascal VOC through torchvision, on tiny fake copies of their on-disk
layouts (download=False: the tests never touch the network)."""

from __future__ import annotations

import hydra
import numpy as np
import pytest
from PIL import Image

from seglab.data import OxfordPet, PascalVOC
from seglab.data.torchvision_sets import VOC_CLASSES
from seglab.train import run_task

from .conftest import TINY_MODEL, TINY_TRAINER, compose_train
from .helpers.standard import make_oxford_pet, make_voc, pet_trimap, voc_mask

# 40x50 and 44x36 photos: train on 32x32 crops, evaluate shrunk to fit 32 and padded to 32x32
SMALL = ["data.augmentation.size=32", "data.batch_size=4", "data.num_workers=0"]


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    return make_oxford_pet(tmp_path_factory.mktemp("pets"), num_trainval=20, num_test=4)


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    return make_voc(tmp_path_factory.mktemp("voc"))


def expected_pet_mask(index: int, size, border_value: int) -> np.ndarray:
    trimap = pet_trimap(index, size)
    return np.select([trimap == 1, trimap == 2], [1, 0], border_value).astype(np.uint8)


@pytest.mark.parametrize("border, border_value", [("ignore", 255), ("class", 2)])
def test_pet_trimaps_become_class_indices(pets, border, border_value):
    dataset = OxfordPet(pets, split="test", border=border)
    assert len(dataset) == 4
    for i in range(len(dataset)):
        sample = dataset[i]
        image, mask = sample["image"], sample["mask"]
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
        index = int(dataset.image_ids[i].rsplit("_", 1)[1]) - 1  # the helper's running index
        np.testing.assert_array_equal(mask, expected_pet_mask(index, mask.shape, border_value))
        assert set(np.unique(mask).tolist()) == {0, 1, border_value}
    assert dataset.class_names == ["background", "pet", "border"][: 2 + (border == "class")]


def test_pet_gray_channels(pets):
    assert OxfordPet(pets, split="test", channels=1)[0]["image"].shape[2] == 1


def test_pet_val_split_is_seeded_disjoint_and_covers_trainval(pets):
    def ids(subset, seed=0):
        return OxfordPet(pets, subset=subset, val_fraction=0.25, seed=seed).image_ids

    train, val = ids("train"), ids("val")
    assert len(val) == 5 and len(train) == 15
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(OxfordPet(pets).image_ids)
    assert ids("val") == val and ids("train") == train  # deterministic
    assert ids("val", seed=1) != val  # another seed, another split


def test_pet_rejects_a_subset_of_test_and_a_class_count_mismatch(pets):
    with pytest.raises(ValueError, match="subset='val' splits trainval"):
        OxfordPet(pets, split="test", subset="val")
    with pytest.raises(ValueError, match=r"border=class needs 'data.class_names=\[background,pet"):
        OxfordPet(pets, border="class", class_names=["background", "pet"])


def test_pet_reports_a_corrupt_trimap(tmp_path):
    root = make_oxford_pet(tmp_path, num_trainval=2, num_test=1)
    path = root / "oxford-iiit-pet" / "annotations" / "trimaps" / "Abyssinian_3.png"
    Image.fromarray(np.full((40, 50), 7, np.uint8)).save(path)
    with pytest.raises(ValueError, match=r"Abyssinian_3.png holds values \[7\]"):
        OxfordPet(root, split="test")[0]


def test_voc_masks_keep_classes_and_void(voc):
    train, val = PascalVOC(voc, image_set="train"), PascalVOC(voc, image_set="val")
    assert (len(train), len(val), len(PascalVOC(voc, image_set="trainval"))) == (6, 3, 9)
    assert train.class_names == list(VOC_CLASSES) and len(VOC_CLASSES) == 21
    assert VOC_CLASSES[15] == "person" and VOC_CLASSES[20] == "tvmonitor"
    for index, dataset, i in [(0, train, 0), (5, train, 5), (7, val, 1)]:
        sample = dataset[i]
        assert sample["image"].dtype == np.uint8 and sample["image"].shape[2] == 3
        assert sample["mask"].dtype == np.uint8
        np.testing.assert_array_equal(sample["mask"], voc_mask(index, sample["mask"].shape))
        assert set(np.unique(sample["mask"]).tolist()) == {0, index % 20 + 1, 255}


@pytest.mark.parametrize("make", [OxfordPet, PascalVOC])
def test_missing_data_names_the_root_and_the_fix(make, tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        make(tmp_path / "empty")
    message = str(error.value)
    assert str(tmp_path / "empty") in message
    assert "data.dataset.download=true" in message and "needs network" in message


@pytest.mark.parametrize("option", ["oxford_pet", "voc"])
def test_configs_batch_photos_of_different_sizes(option, pets, voc, tmp_path):
    root = pets if option == "oxford_pet" else voc
    cfg = compose_train(tmp_path, [f"data={option}", f"data.dataset.root='{root}'", *SMALL])
    assert cfg.data.dataset.download is False
    datamodule = hydra.utils.instantiate(cfg.data)
    names = ["background", "pet"] if option == "oxford_pet" else list(VOC_CLASSES)
    assert datamodule.class_names == names and datamodule.in_channels == 3
    for name, loader in [
        ("train", datamodule.train_dataloader()),
        ("val", datamodule.val_dataloader()),
    ]:
        batch = next(iter(loader))
        assert batch["image"].shape[1:] == (3, 32, 32), name
        assert batch["mask"].shape[1:] == (32, 32), name
    # eval pads with ignore_index: a 40x50 photo shrunk to 26x32 leaves padded rows
    assert (batch["mask"] == 255).any()


def test_data_oxford_pet_trains_end_to_end(pets, tmp_path):
    cfg = compose_train(
        tmp_path,
        [
            "data=oxford_pet",
            f"data.dataset.root='{pets}'",
            *SMALL,
            *TINY_MODEL,
            *TINY_TRAINER,
            "logger=csv",
        ],
    )
    metrics = run_task(cfg)
    assert {"val/dice", "test/dice", "test/iou/pet"} <= set(metrics)
    assert 0 <= metrics["val/dice"] <= 1
