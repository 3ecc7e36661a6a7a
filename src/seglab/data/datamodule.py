"""One LightningDataModule for every dataset: datasets yield raw ``{"image", "mask"}`` samples,
the module applies the Albumentations pipelines and batches them.

Masks follow one convention everywhere: an (H, W) map of class indices ``0..num_classes-1``, with
``ignore_index`` marking pixels excluded from loss and metrics. Batches hold ``image`` (float32,
N x C x H x W) and ``mask`` (int64, N x H x W).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from seglab.data.io import invalid_mask_values
from seglab.data.transforms import build_pipeline

SPLITS = ("train", "val", "test")


class TransformedDataset(Dataset):
    """Applies an Albumentations pipeline to a raw dataset and checks every mask on the way."""

    def __init__(
        self, dataset: Dataset, transform, num_classes: int, ignore_index: int, split: str
    ):
        self.dataset = dataset
        self.transform = transform
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.split = split
        self._transform_seed: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.dataset[index]
        self._check_mask(sample["mask"], index)
        self._seed_transform()
        out = self.transform(image=sample["image"], mask=sample["mask"])
        return {"image": out["image"].float(), "mask": out["mask"].long()}

    def _seed_transform(self) -> None:
        """Seed the pipeline from torch's seed of this process or DataLoader worker.

        Albumentations keeps its own random state and ignores global seeds; torch's initial seed
        is set by ``seed_everything`` and differs per worker and per epoch, so augmentations are
        reproducible under a seed and not repeated across workers.
        """
        seed = torch.initial_seed() % 2**32
        if seed != self._transform_seed:
            self.transform.set_random_seed(seed)
            self._transform_seed = seed

    def _check_mask(self, mask: np.ndarray, index: int) -> None:
        values = np.unique(mask)
        bad = invalid_mask_values(values, self.num_classes, self.ignore_index)
        if bad:
            hint = ""
            if set(values.tolist()) <= {0, 255} and self.num_classes > 2:
                hint = " It looks like a 0/255 binary mask: map 255 to 1 for a 2-class task."
            raise ValueError(
                f"{self.split} sample {index} of {type(self.dataset).__name__}: mask values "
                f"{bad} are not class indices 0..{self.num_classes - 1} nor ignore_index "
                f"{self.ignore_index}. Fix the mask, the number of classes (data.class_names) or "
                f"data.ignore_index.{hint}"
            )


class SegmentationDataModule(L.LightningDataModule):
    """Train/val/test loaders with Albumentations pipelines.

    Args:
        datasets: ``{"train": ..., "val": ..., "test": ...}`` raw datasets (``test`` optional).
        class_names: one name per class index; ``num_classes`` is its length.
        in_channels: image channels the datasets deliver (checked against the first sample).
        augmentation: ``{"train": [...], "eval": [...]}`` Albumentations transforms; ``eval`` is
            applied to val and test. Normalisation is appended to both. Other keys (a preset's
            ``size``, which its transforms interpolate) are ignored.
        mean, std: per-channel normalisation on the 0..1 intensity scale.
        ignore_index: mask value excluded from loss and metrics.
        batch_size, num_workers, pin_memory, persistent_workers: DataLoader settings (per process
            under DDP: the effective batch is ``batch_size * world_size``).
        root: the data folder of folder-based configs (``data=folder data.root=...``). The
            datasets get it through ``${data.root}``; the DataModule only keeps it for messages.
        download: whether torchvision-backed datasets (``data=oxford_pet``, ``data=voc``) may
            download into ``root``; they get it through ``${data.download}``, the DataModule only
            keeps it so that one top-level ``data.download=true`` works.
    """

    def __init__(
        self,
        datasets: Mapping[str, Dataset],
        class_names: Sequence[str],
        in_channels: int,
        augmentation: Mapping[str, Sequence] | None = None,
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.25,),
        ignore_index: int = 255,
        batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        root: str | None = None,
        download: bool = False,
    ):
        super().__init__()
        # a split set to null (e.g. data.datasets.test=null) is no split at all
        datasets = {name: dataset for name, dataset in datasets.items() if dataset is not None}
        unknown = set(datasets) - set(SPLITS)
        if unknown or "train" not in datasets or "val" not in datasets:
            raise ValueError(
                f"data.datasets must have 'train' and 'val' (and optionally 'test') entries, got "
                f"{sorted(datasets)}"
            )
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(
                f"data.mean {list(mean)} and data.std {list(std)} need one value per channel "
                f"(data.in_channels={in_channels})"
            )
        if ignore_index < 0:
            raise ValueError(
                f"data.ignore_index={ignore_index} must be >= 0 (masks are unsigned); e.g. 255"
            )
        if ignore_index < len(class_names):
            raise ValueError(
                f"data.ignore_index={ignore_index} collides with a class index 0.."
                f"{len(class_names) - 1}; use a value >= {len(class_names)} (e.g. 255)"
            )
        self.datasets = dict(datasets)
        self.root = root
        self.download = download
        self.class_names = list(class_names)
        self.in_channels = in_channels
        self.ignore_index = ignore_index
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        augmentation = augmentation or {}
        self.pipelines = {
            "train": build_pipeline(augmentation.get("train", []), mean, std),
            "eval": build_pipeline(augmentation.get("eval", []), mean, std),
        }
        self._check_channels()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _check_channels(self) -> None:
        try:
            image = self.datasets["train"][0]["image"]
        except (OSError, ValueError):
            return  # a bad first sample: check_data (or the loader) reports it with its file
        channels = 1 if image.ndim == 2 else image.shape[-1]
        if channels != self.in_channels:
            where = f" under {self.root}" if self.root else ""
            raise ValueError(
                f"the train images{where} have {channels} channel(s) but data.in_channels="
                f"{self.in_channels}; set data.in_channels={channels} (and mean/std to match)"
            )

    def split(self, name: str) -> TransformedDataset:
        pipeline = self.pipelines["train" if name == "train" else "eval"]
        return TransformedDataset(
            self.datasets[name], pipeline, self.num_classes, self.ignore_index, name
        )

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.split(name),
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(self.datasets[name]) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.datasets:
            raise ValueError(
                "no test dataset is configured: add data.datasets.test or set test=false"
            )
        return self._loader("test", shuffle=False)
