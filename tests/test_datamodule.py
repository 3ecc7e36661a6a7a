import functools
import types

import albumentations as A
import hydra
import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from seglab.data import SegmentationDataModule, SyntheticShapes


class ArrayDataset(Dataset):
    def __init__(self, images, masks):
        self.images, self.masks = images, masks

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "mask": self.masks[i]}


def make_datamodule(train=None, **kwargs):
    names = ["background", "disc", "square", "triangle"]
    train = train or SyntheticShapes(num_samples=8, class_names=names, image_size=32, seed=0)
    options = {
        "datasets": {
            "train": train,
            "val": SyntheticShapes(num_samples=4, class_names=names, image_size=32, seed=1),
        },
        "class_names": names,
        "in_channels": 1,
        "batch_size": 4,
        **kwargs,
    }
    return SegmentationDataModule(**options)


def test_batches_follow_the_mask_convention():
    batch = next(iter(make_datamodule().train_dataloader()))
    assert batch["image"].shape == (4, 1, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (4, 32, 32) and batch["mask"].dtype == torch.int64
    assert set(batch["mask"].unique().tolist()) <= {0, 1, 2, 3}


def test_normalisation_uses_mean_and_std():
    dm = make_datamodule(mean=[0.5], std=[0.25])
    image = dm.split("val")[0]["image"]
    raw = dm.datasets["val"][0]["image"][..., 0].astype(np.float32) / 255
    assert torch.allclose(image[0], torch.from_numpy((raw - 0.5) / 0.25), atol=1e-5)


def test_spatial_augmentation_never_changes_the_set_of_mask_values():
    augmentation = {
        "train": [
            A.HorizontalFlip(p=1.0),
            A.RandomRotate90(p=1.0),
            A.Affine(rotate=(-30, 30), scale=(0.8, 1.2), p=1.0),
        ]
    }
    dm = make_datamodule(augmentation=augmentation)
    train = dm.split("train")
    for i in range(len(train)):
        raw = set(np.unique(dm.datasets["train"][i]["mask"]).tolist())
        augmented = set(train[i]["mask"].unique().tolist())
        assert augmented <= raw | {0}


def test_unexpected_mask_values_name_sample_and_fix():
    images = [np.zeros((16, 16, 1), np.uint8)] * 2
    masks = [np.zeros((16, 16), np.uint8), np.full((16, 16), 255, np.uint8)]
    masks[1][0, 0] = 0
    dm = make_datamodule(train=ArrayDataset(images, masks), ignore_index=254)
    with pytest.raises(ValueError, match=r"train sample 1 .*\[255\].*0/255 binary mask"):
        dm.split("train")[1]


def test_ignore_index_values_are_accepted():
    images = [np.zeros((16, 16, 1), np.uint8)]
    masks = [np.full((16, 16), 255, np.uint8)]
    dm = make_datamodule(train=ArrayDataset(images, masks))
    assert dm.split("train")[0]["mask"].unique().tolist() == [255]


def test_channel_mismatch_is_reported_before_training():
    with pytest.raises(ValueError, match="data.in_channels=1"):
        make_datamodule(train=SyntheticShapes(num_samples=2, channels=3, image_size=32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mean": [0.5, 0.5]}, "one value per channel"),
        ({"ignore_index": 2}, "collides"),
    ],
)
def test_bad_settings_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_datamodule(**kwargs)


def test_missing_val_split_is_reported():
    with pytest.raises(ValueError, match="'train' and 'val'"):
        SegmentationDataModule(
            datasets={"train": SyntheticShapes(num_samples=2)},
            class_names=["a", "b"],
            in_channels=1,
        )


def test_test_loader_without_test_split_says_what_to_do():
    with pytest.raises(ValueError, match="test=false"):
        make_datamodule().test_dataloader()


def augmented_batches(seed: int, num_workers: int) -> list[torch.Tensor]:
    import lightning as L

    augmentation = {"train": [A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=1.0)]}
    dm = make_datamodule(augmentation=augmentation, num_workers=num_workers)
    L.seed_everything(seed, workers=True, verbose=False)
    loader = dm.train_dataloader()
    # Lightning's Trainer adds this worker seeding; a bare DataLoader needs it by hand.
    from lightning.fabric.utilities.seed import pl_worker_init_function

    loader.worker_init_fn = pl_worker_init_function
    return [batch["image"] for batch in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_augmentation_is_reproducible_under_a_seed(num_workers):
    first = augmented_batches(7, num_workers)
    again = augmented_batches(7, num_workers)
    other = augmented_batches(8, num_workers)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_workers_do_not_repeat_each_others_augmentations():
    """The same image seen by two workers gets different random augmentations."""
    import lightning as L

    grey = np.full((16, 16, 1), 128, np.uint8)
    same = ArrayDataset([grey] * 8, [np.zeros((16, 16), np.uint8)] * 8)
    dm = make_datamodule(
        train=same, augmentation={"train": [A.RandomBrightnessContrast(p=1.0)]}, num_workers=2
    )
    L.seed_everything(0, workers=True, verbose=False)
    batches = [b["image"] for b in dm.train_dataloader()]
    assert len(batches) == 2  # one per worker
    assert not torch.equal(batches[0], batches[1])


def test_a_split_set_to_null_is_no_split():
    """README: data.splits.test=null with test=false; test=true then says what to do."""
    dm = make_datamodule()
    dm = make_datamodule(datasets={**dm.datasets, "test": None})
    assert "test" not in dm.datasets
    with pytest.raises(ValueError, match="test=false"):
        dm.test_dataloader()
    with pytest.raises(ValueError, match="'train' and 'val'"):
        make_datamodule(datasets={"train": dm.datasets["train"], "val": None})


def test_negative_ignore_index_is_reported_as_such():
    with pytest.raises(ValueError, match="must be >= 0"):
        make_datamodule(ignore_index=-1)


def test_a_config_gives_dataset_options_once_and_splits_their_differences(tmp_path):
    from .conftest import TINY_DATA, compose_train

    cfg = compose_train(tmp_path, [*TINY_DATA, "data.dataset.image_size=40"])
    assert "datasets" not in cfg.data and "root" not in cfg.data
    dm = hydra.utils.instantiate(cfg.data)
    assert {name: len(ds) for name, ds in dm.datasets.items()} == {"train": 16, "val": 8, "test": 8}
    assert {ds.image_size for ds in dm.datasets.values()} == {(40, 40)}
    assert [ds.seed for ds in dm.datasets.values()] == [0, 1, 2]
    # the DataModule passes class names and channels to the factory
    assert all(ds.shapes == dm.class_names[1:] for ds in dm.datasets.values())
    cfg = compose_train(tmp_path, [*TINY_DATA, "data.splits.test=null"])
    assert "test" not in hydra.utils.instantiate(cfg.data).datasets


def test_split_options_may_not_set_what_the_datamodule_passes():
    names = ["background", "disc"]
    factory = functools.partial(SyntheticShapes, image_size=32)
    splits = {"train": {"num_samples": 2, "channels": 3}, "val": {"num_samples": 2}}
    with pytest.raises(ValueError, match=r"data\.splits\.train sets \['channels'\]"):
        SegmentationDataModule(factory, splits, names, 1)
    with pytest.raises(ValueError, match="not both"):
        SegmentationDataModule(factory, splits, names, 1, datasets={"train": None})


@pytest.mark.parametrize("world_size, batches", [(1, 1), (2, 1), (3, 1)])
def test_drop_last_is_decided_on_each_process_share(world_size, batches):
    """12 samples, batch 8: one process drops the last 4 (one full batch); two processes get 6
    each, fewer than a batch, so each keeps them (else DDP would train on nothing)."""
    names = ["background", "disc", "square", "triangle"]
    train = SyntheticShapes(num_samples=12, class_names=names, image_size=32)
    dm = make_datamodule(train=train, batch_size=8)
    dm.trainer = types.SimpleNamespace(world_size=world_size)
    loader = dm.train_dataloader()
    assert loader.drop_last is (world_size == 1)
    # the share Lightning's DistributedSampler gives each process
    share = -(-len(train) // world_size)
    assert (share // 8 if loader.drop_last else -(-share // 8)) == batches


@pytest.mark.slow
def test_two_processes_train_on_a_dataset_smaller_than_two_batches(tmp_path):
    from .conftest import TINY, run_train_script
    from .helpers.runs import last_metrics

    args = [*TINY, "data.splits.train.num_samples=12", "data.batch_size=8", "trainer.devices=2"]
    result = run_train_script([*args, "logger=csv", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "No training batches" not in result.stdout + result.stderr
    assert "val/dice_best" in last_metrics(tmp_path / "run")


def test_samples_per_epoch_sets_the_training_batches_and_draws_fresh_crops():
    """8 train samples, samples_per_epoch=20, batch 4: 5 batches an epoch, each sample read 2-3
    times with its own random crop; validation keeps its own size."""
    crop = [A.RandomCrop(height=16, width=16)]
    dm = make_datamodule(samples_per_epoch=20, augmentation={"train": crop})
    assert len(dm.train_dataloader()) == 5
    assert len(dm.val_dataloader().dataset) == 4
    train = dm.split("train")
    first, again = train[0]["image"], train[8]["image"]  # the same sample, cropped anew
    assert first.shape == again.shape == (1, 16, 16) and not torch.equal(first, again)
    assert len(make_datamodule().train_dataloader()) == 2  # null: each sample once


@pytest.mark.parametrize("value", [0, -3, 2.5, "many", True])
def test_bad_samples_per_epoch_names_the_key_and_the_fix(value):
    with pytest.raises(ValueError, match=r"data\.samples_per_epoch=.*e\.g\. 200"):
        make_datamodule(samples_per_epoch=value)
