"""FolderDataset (bring-your-own data) and the data=folder / data=isbi2012 configs."""

import math
import re

import hydra
import numpy as np
import pytest
import torch
from PIL import Image

from seglab.data import DataCheckError, FolderDataset, SegmentationDataModule, check_data
from seglab.train import run_task

from .conftest import ISBI_DIR, TINY_MODEL, TINY_TRAINER, compose_train, run_train_script
from .helpers.folders import folder_overrides, make_folder, save

STEMS = [f"{i:02d}" for i in range(10)]


def dataset(root, split="train", **kwargs):
    return FolderDataset(root, split, class_names=["background", "foreground"], **kwargs)


def assert_paired(ds):
    """Every mask is its own image thresholded, so a wrong pairing shows."""
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].dtype == np.uint8 and sample["image"].ndim == 3
        assert sample["mask"].dtype == np.uint8
        np.testing.assert_array_equal(sample["mask"], sample["image"][..., 0] > 127)


# --- layouts ----------------------------------------------------------------------------------


def test_images_and_masks_folders_pair_by_stem_and_split_the_pool(tmp_path):
    root = make_folder(tmp_path)
    splits = {
        s: dataset(root, s, val_fraction=0.2, test_fraction=0.1) for s in ("train", "val", "test")
    }
    assert [len(splits[s]) for s in ("train", "val", "test")] == [7, 2, 1]
    assert sorted(sum((ds.stems for ds in splits.values()), [])) == STEMS
    for ds in splits.values():
        assert_paired(ds)
    assert splits["train"][0]["image"].shape == (16, 20, 1)


def test_split_folders_are_used_as_they_are(tmp_path):
    make_folder(tmp_path / "train", STEMS[:6])
    make_folder(tmp_path / "val", STEMS[6:8])
    make_folder(tmp_path / "test", STEMS[8:])
    assert dataset(tmp_path, "train").stems == STEMS[:6]
    assert dataset(tmp_path, "val").stems == STEMS[6:8]
    assert dataset(tmp_path, "test").stems == STEMS[8:]
    assert_paired(dataset(tmp_path, "test"))


def test_a_missing_split_folder_says_how_to_do_without_it(tmp_path):
    make_folder(tmp_path / "train", STEMS[:6])
    make_folder(tmp_path / "val", STEMS[6:])
    with pytest.raises(FileNotFoundError, match=r"test does not exist.*test=false"):
        dataset(tmp_path, "test")
    with pytest.raises(ValueError, match="only apply to a single images/"):
        dataset(tmp_path, "train", num_folds=2, fold=0)


def test_mask_suffix_and_different_formats_pair(tmp_path):
    root = make_folder(tmp_path, mask_suffix="_mask", image_ext=".tif", mask_ext=".png")
    (root / "notes.txt").write_text("ignored")
    (root / "images" / "readme.md").write_text("ignored: not an image extension")
    ds = dataset(root, val_fraction=0.5, mask_suffix="_mask")
    assert len(ds) == 5 and ds.samples[0][2].name.endswith("_mask.png")
    assert_paired(ds)


def test_a_wrong_mask_suffix_lists_the_strays(tmp_path):
    root = make_folder(tmp_path, mask_suffix="_mask")
    with pytest.raises(ValueError, match=r"10 image\(s\) without a mask.*mask_suffix=''"):
        dataset(root)


# --- image types ------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", [".png", ".tif"])
def test_16_bit_images_become_float_on_a_0_1_scale(tmp_path, extension):
    raw = (np.arange(16 * 20).reshape(16, 20) * 200).astype(np.uint16)
    save(tmp_path / "images" / f"a{extension}", raw)
    save(tmp_path / "masks" / "a.png", np.zeros((16, 20), np.uint8))
    sample = FolderDataset(tmp_path, val_fraction=0)[0]
    assert sample["image"].dtype == np.float32 and sample["image"].shape == (16, 20, 1)
    np.testing.assert_allclose(sample["image"][..., 0], raw / 65535, rtol=1e-6)
    twelve_bit = FolderDataset(tmp_path, val_fraction=0, max_value_16bit=4095)[0]["image"]
    np.testing.assert_allclose(twelve_bit[..., 0], raw / 4095, rtol=1e-6)


@pytest.mark.parametrize("extension", [".tif", ".png"])
def test_12_bit_rgb_images_keep_their_16_bits(tmp_path, extension):
    """Pillow reads 16-bit RGB as 8 bits (the high byte); seglab reads it with OpenCV."""
    import cv2

    rgb = np.random.default_rng(0).integers(0, 4096, (12, 14, 3)).astype(np.uint16)
    (tmp_path / "images").mkdir()
    assert cv2.imwrite(str(tmp_path / "images" / f"a{extension}"), rgb[..., ::-1])
    save(tmp_path / "masks" / "a.png", np.zeros((12, 14), np.uint8))
    image = FolderDataset(tmp_path, val_fraction=0, max_value_16bit=4095)[0]["image"]
    assert image.dtype == np.float32 and image.shape == (12, 14, 3)
    np.testing.assert_allclose(image, rgb / 4095, rtol=1e-6)
    gray = FolderDataset(tmp_path, val_fraction=0, channels=1, max_value_16bit=4095)[0]["image"]
    assert gray.shape == (12, 14, 1) and gray.dtype == np.float32
    expected = (rgb.astype(np.float64) @ [0.299, 0.587, 0.114]) / 4095
    np.testing.assert_allclose(gray[..., 0], expected, atol=2e-4)


def test_8_and_16_bit_images_are_normalised_on_the_same_scale(tmp_path):
    """The pipeline divides uint8 by 255 and leaves 16-bit (float 0..1) as it is."""
    level = np.full((16, 16), 0.6)
    save(tmp_path / "images" / "eight.png", (level * 255).astype(np.uint8))
    save(tmp_path / "images" / "sixteen.png", (level * 65535).astype(np.uint16))
    for stem in ("eight", "sixteen"):
        save(tmp_path / "masks" / f"{stem}.png", np.zeros((16, 16), np.uint8))
    train = FolderDataset(tmp_path, val_fraction=0)
    dm = SegmentationDataModule(
        datasets={"train": train, "val": train},
        class_names=["a", "b"],
        in_channels=1,
        mean=[0.5],
        std=[0.25],
    )
    images = [dm.split("val")[i]["image"] for i in range(2)]
    for image in images:
        assert torch.allclose(image, torch.full((1, 16, 16), 0.4), atol=1e-4)  # (0.6-0.5)/0.25


def test_gray_and_rgb_images_convert_to_the_requested_channels(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    save(tmp_path / "images" / "gray.png", gray)
    save(tmp_path / "images" / "rgb.jpg", rgb)
    for stem in ("gray", "rgb"):
        save(tmp_path / "masks" / f"{stem}.png", np.zeros((8, 8), np.uint8))
    as_is = {
        s: FolderDataset(tmp_path, val_fraction=0, val_stems=None)[i]["image"].shape[-1]
        for i, s in enumerate(("gray", "rgb"))
    }
    assert as_is == {"gray": 1, "rgb": 3}
    three = FolderDataset(tmp_path, val_fraction=0, channels=3)
    np.testing.assert_array_equal(three[0]["image"], np.repeat(gray[..., None], 3, axis=-1))
    assert three[1]["image"].shape == (8, 8, 3)
    one = FolderDataset(tmp_path, val_fraction=0, channels=1)
    assert one[1]["image"].shape == (8, 8, 1)


# --- mask encodings ---------------------------------------------------------------------------


def read_checked(ds, index=0):
    """Sample ``index`` through the loader path, which checks it against the data rules."""
    datamodule = SegmentationDataModule(
        datasets={"train": ds, "val": ds}, class_names=ds.class_names, in_channels=1
    )
    return datamodule.split("train")[index]


def write_one(root, mask, image=None):
    image = np.zeros(mask.shape[:2], np.uint8) if image is None else image
    save(root / "images" / "a.png", image)
    save(root / "masks" / "a.png", mask)
    return root


def test_0_255_masks_map_through_a_value_map(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :3] = 255
    write_one(tmp_path, mask)
    by_index = dataset(tmp_path, val_fraction=0, mask_mapping={0: 1, 255: 0})[0]["mask"]
    by_name = dataset(tmp_path, val_fraction=0, mask_mapping={0: "foreground", 255: "background"})
    np.testing.assert_array_equal(by_index, (mask == 0).astype(np.uint8))
    np.testing.assert_array_equal(by_name[0]["mask"], by_index)
    with pytest.raises(ValueError, match=r"masks/a\.png has value\(s\) not in mask_mapping: 255"):
        dataset(tmp_path, val_fraction=0, mask_mapping={0: 1})[0]


def test_palette_masks_map_colours_to_classes(tmp_path):
    mask = np.zeros((8, 8, 3), np.uint8)
    mask[:4] = [255, 0, 0]
    mask[7, 7] = [255, 255, 255]
    write_one(tmp_path, mask)
    palette = {"background": [0, 0, 0], "foreground": [255, 0, 0], 255: [255, 255, 255]}
    out = dataset(tmp_path, val_fraction=0, palette=palette)[0]["mask"]
    expected = np.zeros((8, 8), np.uint8)
    expected[:4], expected[7, 7] = 1, 255
    np.testing.assert_array_equal(out, expected)
    mask[0, 0] = [0, 255, 0]
    write_one(tmp_path, mask)
    with pytest.raises(ValueError, match=r"masks/a\.png .*not in palette.*\[0, 255, 0\]"):
        dataset(tmp_path, val_fraction=0, palette=palette)[0]


def test_class_index_masks_are_checked_against_the_classes(tmp_path):
    write_one(tmp_path, np.full((8, 8), 3, np.uint8))
    with pytest.raises(ValueError, match=r"masks/a\.png: mask values \[3\] .*data\.class_names"):
        read_checked(dataset(tmp_path, val_fraction=0))
    write_one(tmp_path, np.dstack([np.ones((8, 8), np.uint8), np.zeros((8, 8, 2), np.uint8)]))
    colour = r"masks/a\.png is a colour image: set 'data\.dataset\.palette="
    with pytest.raises(ValueError, match=colour):
        dataset(tmp_path, val_fraction=0)[0]


def test_0_255_masks_without_a_mapping_warn_about_ignore_index(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[0] = 255
    write_one(tmp_path, mask)
    with pytest.warns(UserWarning, match=r"mask_mapping=\{0:0,255:1\}"):
        read_checked(dataset(tmp_path, val_fraction=0))


# --- splits -----------------------------------------------------------------------------------


def split_stems(root, **kwargs):
    return {s: dataset(root, s, **kwargs).stems for s in ("train", "val", "test")}


def test_seeded_split_is_deterministic_disjoint_and_complete(tmp_path):
    root = make_folder(tmp_path, [f"{i:03d}" for i in range(40)])
    first = split_stems(root, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert first == split_stems(root, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert first != split_stems(root, val_fraction=0.2, test_fraction=0.1, seed=4)
    assert [len(first[s]) for s in ("train", "val", "test")] == [28, 8, 4]
    assert sorted(first["train"] + first["val"] + first["test"]) == [f"{i:03d}" for i in range(40)]


def test_k_fold_validation_folds_are_disjoint_and_cover_the_pool(tmp_path):
    root = make_folder(tmp_path, [f"{i:03d}" for i in range(23)])
    folds = [split_stems(root, num_folds=4, fold=k, test_fraction=0.1) for k in range(4)]
    test = folds[0]["test"]
    assert len(test) == 2 and all(f["test"] == test for f in folds)
    vals = [set(f["val"]) for f in folds]
    assert sum(len(v) for v in vals) == len(set().union(*vals)) == 21
    assert set().union(*vals) | set(test) == {f"{i:03d}" for i in range(23)}
    for f in folds:
        assert set(f["train"]) == set().union(*vals) - set(f["val"])


def test_explicit_val_and_test_stems(tmp_path):
    root = make_folder(tmp_path)
    stems = split_stems(root, val_stems=["08", "09"], test_stems=["00"])
    assert stems == {"train": STEMS[1:8], "val": ["08", "09"], "test": ["00"]}


# --- bad inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"val_fraction": 1.0}, r"val_fraction=1.0 must be in \[0, 1\)"),
        ({"test_fraction": -0.1}, r"test_fraction=-0.1 must be in \[0, 1\)"),
        ({"val_fraction": 0.6, "test_fraction": 0.4}, "sum must be below 1"),
        ({"num_folds": 1, "fold": 0}, "num_folds >= 2"),
        ({"num_folds": 3, "fold": 3}, "0 <= fold < num_folds"),
        ({"fold": 1}, "both num_folds and fold"),
        ({"num_folds": 20, "fold": 0}, "num_folds=20 exceeds the 10 images"),
        ({"num_folds": 2, "fold": 0, "val_stems": ["01"]}, "either val_stems or num_folds"),
        ({"val_stems": ["01", "77"]}, "val_stems 77 are not image stems"),
        ({"val_fraction": 0}, "the val split of .* is empty"),
        ({"split": "training"}, "split='training' must be one of"),
        ({"channels": 2}, "channels=2 must be 1, 3 or None"),
        ({"mask_mapping": {0: 0}, "palette": {0: [0, 0, 0]}}, "not both"),
        ({"palette": {"car": [1, 2, 3]}}, r"palette key 'car' is neither a class index nor one of"),
        ({"palette": {0: [1, 2]}}, r"must be \[r, g, b\] in 0..255"),
    ],
)
def test_bad_settings_name_the_value_and_the_fix(tmp_path, kwargs, message):
    root = make_folder(tmp_path)
    split = kwargs.pop("split", "val")
    with pytest.raises(ValueError, match=message):
        dataset(root, split, **kwargs)


def test_missing_root_and_folders_name_the_path(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"data root .*nowhere .*does not exist: set data\.dataset\.root"
    ):
        dataset(tmp_path / "nowhere")
    (tmp_path / "stuff").mkdir()
    with pytest.raises(FileNotFoundError, match=r"neither images/ \+ masks/.*holds: stuff"):
        dataset(tmp_path)
    make_folder(tmp_path / "no_masks")
    for path in (tmp_path / "no_masks" / "masks").iterdir():
        path.unlink()
    (tmp_path / "no_masks" / "masks").rmdir()
    with pytest.raises(FileNotFoundError, match=r"no_masks/masks does not exist"):
        dataset(tmp_path / "no_masks")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/images holds no image files"):
        dataset(tmp_path / "empty")


def test_images_without_masks_and_masks_without_images_are_listed(tmp_path):
    root = make_folder(tmp_path)
    (root / "masks" / "03.png").unlink()
    save(root / "masks" / "99.png", np.zeros((16, 20), np.uint8))
    with pytest.warns(UserWarning, match="1 image.* without a mask and 1 mask.* are left out"):
        ds = dataset(root, val_fraction=0)
    assert "03" not in ds.stems and len(ds) == 9
    datamodule = SegmentationDataModule(
        datasets={"train": ds, "val": ds}, class_names=ds.class_names, in_channels=1
    )
    with pytest.raises(DataCheckError) as caught:
        check_data(datamodule, show=False)
    message = str(caught.value)
    assert "2 data problem(s)" in message  # listed once, not once per split
    assert re.search(r"1 image\(s\) without a mask: images/03\.png .*mask_suffix", message)
    assert re.search(r"1 mask\(s\) without an image: masks/99\.png", message)


def test_a_truncated_file_met_in_training_names_the_file_and_check_data_samples(tmp_path):
    root = make_folder(tmp_path)
    path = root / "images" / "03.png"
    path.write_bytes(path.read_bytes()[:100])
    ds = dataset(root, val_fraction=0)
    datamodule = SegmentationDataModule(
        datasets={"train": ds, "val": ds}, class_names=ds.class_names, in_channels=1
    )
    message = rf"train sample 3: cannot read {re.escape(str(path))}.*check_data_samples=null"
    with pytest.raises(ValueError, match=message):
        datamodule.split("train")[3]


def test_two_files_with_one_stem_are_reported(tmp_path):
    root = make_folder(tmp_path)
    save(root / "images" / "03.tif", np.zeros((16, 20), np.uint8))
    with pytest.raises(ValueError, match=r"03\.png and .*03\.tif share a stem"):
        dataset(root)


def test_size_mismatch_names_both_files(tmp_path):
    write_one(tmp_path, np.zeros((8, 8), np.uint8), image=np.zeros((8, 10), np.uint8))
    with pytest.raises(ValueError, match=r"images/a\.png: 8x10 but masks/a\.png is 8x8"):
        read_checked(dataset(tmp_path, val_fraction=0))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_unreadable_files_are_named(tmp_path, damage):
    root = make_folder(tmp_path)
    path = root / "masks" / "03.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a png")
    ds = dataset(root, "val", val_stems=["03"])
    with pytest.raises(ValueError, match=rf"cannot read {re.escape(str(path))}"):
        ds[0]


# --- configs and training ---------------------------------------------------------------------


def test_data_folder_trains_end_to_end(tmp_path):
    root = make_folder(tmp_path / "data", [f"{i:02d}" for i in range(20)], size=(32, 32))
    cfg = compose_train(
        tmp_path / "run", [*folder_overrides(root), *TINY_MODEL, *TINY_TRAINER, "logger=csv"]
    )
    datamodule = hydra.utils.instantiate(cfg.data)
    assert datamodule.datasets["train"].root == root
    assert {k: len(v) for k, v in datamodule.datasets.items()} == {"train": 14, "val": 4, "test": 2}
    metrics = run_task(cfg)
    assert {"val/dice", "test/dice", "test/iou/foreground"} <= set(metrics)
    assert 0 <= metrics["test/dice"] <= 1


@pytest.mark.parametrize("size", [(40, 56), (56, 40)])
def test_a_first_run_on_six_small_non_square_rgb_images_with_default_settings(tmp_path, size):
    """A new user's first run: ``python train.py data=folder`` on six 40x56 RGB photos (one
    val and one test image, fewer train images than a batch), every other setting the default
    (augmentation, batch size, channels, W&B offline), the real script."""
    for index in range(6):
        image = np.random.default_rng(index).integers(0, 256, (*size, 3), dtype=np.uint8)
        save(tmp_path / "data" / "images" / f"{index:02d}.png", image)
        save(
            tmp_path / "data" / "masks" / f"{index:02d}.png", (image[..., 0] > 127).astype(np.uint8)
        )
    result = run_train_script(
        ["data=folder", "data.dataset.root=data", "trainer.max_epochs=2", "hydra.run.dir=run"],
        cwd=tmp_path,
        check=True,
    )
    assert "test/dice" in result.stdout + result.stderr
    assert list((tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt"))


def test_data_folder_without_root_stops_with_hydras_missing_value(tmp_path):
    cfg = compose_train(tmp_path, ["data=folder"])
    with pytest.raises(Exception, match=r"missing mandatory value\(s\) data\.dataset\.root"):
        hydra.utils.instantiate(cfg.data)


def test_isbi2012_keeps_an_augmentation_chosen_on_the_command_line(tmp_path):
    cfg = compose_train(tmp_path, ["data=isbi2012"])
    assert cfg.data.augmentation.train[0]._target_ == "albumentations.RandomCrop"
    cfg = compose_train(tmp_path, ["data=isbi2012", "data/augmentation=none"])
    assert list(cfg.data.augmentation.train) == []


@pytest.mark.skipif(not ISBI_DIR.is_dir(), reason=f"ISBI 2012 data not found at {ISBI_DIR}")
def test_isbi2012_preset_splits_25_5_with_membrane_as_class_1(tmp_path):
    cfg = compose_train(tmp_path, ["data=isbi2012", f"data.dataset.root='{ISBI_DIR}'"])
    dm = hydra.utils.instantiate(cfg.data)
    assert dm.class_names == ["background", "membrane"] and dm.in_channels == 1
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [25, 5, 5]
    assert dm.datasets["val"].stems == dm.datasets["test"].stems == ["25", "26", "27", "28", "29"]
    assert not set(dm.datasets["train"].stems) & set(dm.datasets["val"].stems)
    masks = [
        ds[i]["mask"] for ds in (dm.datasets["train"], dm.datasets["val"]) for i in range(len(ds))
    ]
    assert set(np.unique(np.stack(masks)).tolist()) == {0, 1}
    assert math.isclose(np.mean([m.mean() for m in masks]), 0.2196, abs_tol=0.002)
    # membrane is black in the files
    raw = np.asarray(Image.open(ISBI_DIR / "masks" / "00.png"))
    np.testing.assert_array_equal(dm.datasets["train"][0]["mask"], raw == 0)
    batch = dm.split("train")[0]
    assert batch["image"].shape == (1, 256, 256) and batch["mask"].shape == (256, 256)
    assert dm.split("val")[0]["image"].shape == (1, 512, 512)


def test_one_rule_decides_which_mask_values_are_invalid():
    from seglab.data.validation import invalid_mask_values

    mask = np.array([[0, 1, 255], [3, 7, 7]], dtype=np.int16)
    assert invalid_mask_values(mask, num_classes=4, ignore_index=255) == [7]
    assert invalid_mask_values(mask, num_classes=4, ignore_index=254) == [7, 255]
    assert invalid_mask_values(np.array([-1, 0, 1]), num_classes=2, ignore_index=255) == [-1]
