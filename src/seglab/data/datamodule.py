"""One LightningDataModule for every dataset: datasets yield raw ``{"image", "mask"}`` samples,
the module applies the Albumentations pipelines and batches them.

Masks follow one convention everywhere: an (H, W) map of class indices ``0..num_classes-1``, with
``ignore_index`` marking pixels excluded from loss and metrics. Batches hold ``image`` (float32,
N x C x H x W) and ``mask`` (int64, N x H x W); samples of different sizes are padded to the
largest in the batch (masks with ``ignore_index``: ``collate.PadCollate``).

The training loader's order and augmentations are pure functions of the run's seed, the epoch and
the sample index, and its place in the epoch travels in checkpoints, so a resumed run (at an
epoch's end or in the middle of one) trains on exactly what the uninterrupted one would
(:mod:`seglab.data.resumable`). Every loader draws its workers' base seed from its own generator,
not from the global one that the checkpoints carry for the model.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from seglab.data.bad_samples import FILENAME, SkipBadSamples, check_on_bad_sample
from seglab.data.collate import PadCollate
from seglab.data.resumable import EpochSampler, ResumableLoader, run_seed
from seglab.data.transformed import TransformedDataset
from seglab.data.transforms import build_pipeline
from seglab.data.validation import Rules, channel_count, source_of
from seglab.data.workers import stop_event, worker_init

SPLITS = ("train", "val", "test")


class SegmentationDataModule(L.LightningDataModule):
    """Train/val/test loaders with Albumentations pipelines.

    Args:
        dataset: a dataset factory (in configs a ``_partial_: true`` dataset). Each split's
            dataset is ``dataset(**splits[name], class_names=..., channels=in_channels,
            ignore_index=...)``, so the options shared by the splits are given once.
        splits: ``{"train": {...}, "val": {...}, "test": {...}}``: what differs between the
            splits (``test`` optional; a split set to None is no split).
        class_names: one name per class index; ``num_classes`` is its length.
        in_channels: image channels the datasets deliver (checked against the first sample).
        augmentation: ``{"train": [...], "eval": [...]}`` Albumentations transforms; ``eval`` is
            applied to val and test. Normalisation is appended to both. (A preset may keep other
            keys, e.g. photo256's ``size``, for its transforms to interpolate: they are not read.)
        mean, std: per-channel normalisation on the 0..1 intensity scale.
        ignore_index: mask value excluded from loss and metrics.
        batch_size, num_workers, pin_memory, persistent_workers: DataLoader settings (per process
            under DDP: the effective batch is ``batch_size * world_size``).
        samples_per_epoch: training samples per epoch (None: each train sample once). Index ``i``
            reads sample ``i % len(train)``, augmented anew each time (e.g. 25 ISBI slices and 200:
            each slice 8 times, 8 different random crops), shuffled as one epoch.
        datasets: instead of ``dataset`` and ``splits``: ready ``{"train", "val", "test"}``
            datasets (Python use).
        on_bad_sample: ``fail`` stops at a sample that cannot be read or breaks the data rules;
            ``skip`` loads the next good one instead and lists it in ``bad_samples.txt`` in the
            trainer's ``default_root_dir`` (the run folder; :mod:`seglab.data.bad_samples`).
    """

    def __init__(
        self,
        dataset: Callable[..., Dataset] | None = None,
        splits: Mapping[str, Mapping | None] | None = None,
        class_names: Sequence[str] = (),
        in_channels: int = 1,
        augmentation: Mapping[str, Sequence] | None = None,
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.25,),
        ignore_index: int = 255,
        batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        datasets: Mapping[str, Dataset | None] | None = None,
        on_bad_sample: str = "fail",
        samples_per_epoch: int | None = None,
    ):
        super().__init__()
        self.on_bad_sample = check_on_bad_sample(on_bad_sample)
        check_settings(class_names, in_channels, mean, std, ignore_index)
        check_samples_per_epoch(samples_per_epoch)
        self.samples_per_epoch = samples_per_epoch
        self.class_names = list(class_names)
        self.in_channels = in_channels
        self.ignore_index = ignore_index
        if datasets is None:
            datasets = build_datasets(dataset, splits, self.class_names, in_channels, ignore_index)
        elif dataset is not None or splits is not None:
            raise ValueError("give either data.dataset with data.splits, or datasets, not both")
        # a split set to null (e.g. data.splits.test=null) is no split at all
        self.datasets = {name: ds for name, ds in datasets.items() if ds is not None}
        unknown = set(self.datasets) - set(SPLITS)
        if unknown or "train" not in self.datasets or "val" not in self.datasets:
            raise ValueError(
                f"data.splits must have 'train' and 'val' (and optionally 'test') entries, got "
                f"{sorted(self.datasets)}"
            )
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

    def rules(self, dataset: Dataset) -> Rules:
        """The data rules of ``dataset``'s samples (``validation.problems``)."""
        return Rules(
            self.num_classes,
            self.ignore_index,
            self.in_channels,
            has_mapping=bool(getattr(dataset, "maps_masks", False)),
        )

    def _check_channels(self) -> None:
        """The first train image's channels, before anything else reads the data."""
        train = self.datasets["train"]
        try:
            image = np.asarray(train[0]["image"])
        except (OSError, ValueError, IndexError):
            return  # a bad or missing first sample: check_data (or the loader) reports it
        channels = channel_count(image)
        if channels != self.in_channels:
            raise ValueError(
                f"the train image {source_of(train, 0).image} has {channels} channel(s) but "
                f"data.in_channels={self.in_channels}; set data.in_channels={channels} (and "
                "data.mean / data.std to match)"
            )

    def split(self, name: str, pipeline: str | None = None) -> TransformedDataset | SkipBadSamples:
        """Split ``name`` through the ``train`` (train split) or ``eval`` pipeline, or the one
        ``pipeline`` names; behind :class:`SkipBadSamples` when ``on_bad_sample=skip``."""
        pipeline = pipeline or ("train" if name == "train" else "eval")
        dataset = self.datasets[name]
        rules = self.rules(dataset)
        length = self.samples_per_epoch if pipeline == "train" else None
        pipe = self.pipelines[pipeline]
        transformed = TransformedDataset(dataset, pipe, rules, name, length, seed=run_seed())
        if self.on_bad_sample == "fail":
            return transformed
        folder = Path(self.trainer.default_root_dir) if self.trainer else Path.cwd()
        return SkipBadSamples(transformed, folder / FILENAME)

    def eval_dataloader(self, name: str) -> DataLoader:
        """Split ``name`` (train too) in order through the eval pipeline (seglab-eval)."""
        return self._loader(name, shuffle=False, pipeline="eval")

    def _loader(self, name: str, shuffle: bool, pipeline: str | None = None) -> DataLoader:
        """In order (val, test, eval), or shuffled: the resumable training loader."""
        dataset = self.split(name, pipeline)
        options = {
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers,
            "collate_fn": PadCollate(self.ignore_index),
            "worker_init_fn": self._worker_init() if self.num_workers else None,
            "generator": torch.Generator().manual_seed(run_seed()),
        }
        if not shuffle:
            return DataLoader(dataset, shuffle=False, **options)
        world_size = getattr(self.trainer, "world_size", 1) or 1
        rank = getattr(self.trainer, "global_rank", 0) or 0
        sampler = EpochSampler(dataset, world_size, rank, seed=run_seed())
        drop_last = self._share(name) > self.batch_size
        return ResumableLoader(dataset, sampler=sampler, drop_last=drop_last, **options)

    def _worker_init(self) -> Callable[[int], None]:
        """Workers leave the stop signals to the main process (seglab.data.workers)."""
        rank = getattr(self.trainer, "global_rank", 0)
        return functools.partial(worker_init, rank=rank, stopping=stop_event())

    def _share(self, name: str) -> int:
        """The samples of split ``name`` each process gets (under DDP each process reads
        ``1 / world_size`` of the data: its share of the :class:`EpochSampler`): the last
        partial batch is dropped only when a process has more than one batch, so small datasets
        still train under DDP."""
        world_size = getattr(self.trainer, "world_size", 1) or 1
        length = self.samples_per_epoch if name == "train" else None
        return (length or len(self.datasets[name])) // world_size

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.datasets:
            raise ValueError(
                "no test dataset is configured: add data.splits.test or set test=false"
            )
        return self._loader("test", shuffle=False)


def check_settings(class_names, in_channels, mean, std, ignore_index) -> None:
    if not class_names:
        raise ValueError("data.class_names is empty: give one name per class index")
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


def check_samples_per_epoch(value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"data.samples_per_epoch={value!r} must be a whole number >= 1 of training samples "
            "per epoch (e.g. 200), or null for each training sample once"
        )


def build_datasets(factory, splits, class_names, in_channels, ignore_index) -> dict:
    """``{split: factory(**options, class_names=, channels=, ignore_index=)}``."""
    if factory is None or splits is None:
        raise ValueError(
            "data.dataset (a dataset factory, _partial_: true) and data.splits ({train: {...}, "
            "val: {...}, test: {...}}) are both needed"
        )
    shared = {"class_names": class_names, "channels": in_channels, "ignore_index": ignore_index}
    datasets = {}
    for name, options in splits.items():
        if options is None:
            continue
        clash = sorted(set(shared) & set(options))
        if clash:
            raise ValueError(
                f"data.splits.{name} sets {clash}: the DataModule passes them (set "
                "data.class_names, data.in_channels, data.ignore_index instead)"
            )
        arguments = {**options, **shared}
        missing = missing_arguments(factory, arguments)
        if missing:
            raise ValueError(
                f"missing mandatory value(s) {', '.join(f'data.dataset.{m}' for m in missing)} "
                f"of {getattr(factory, 'func', factory).__name__}: set them, e.g. "
                f"data.dataset.{missing[0]}=... on the command line"
            )
        datasets[name] = factory(**arguments)
    return datasets


def missing_arguments(factory, given) -> list[str]:
    """Required arguments of ``factory`` (a ``functools.partial``: Hydra leaves a ``???`` value
    out of it) that ``given`` does not hold."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [
        p.name
        for p in parameters
        if p.kind in kinds and p.default is p.empty and p.name not in given
    ]
