"""The dataset the loaders read: a raw dataset's samples through an Albumentations pipeline, each
checked once against the data rules (:mod:`seglab.data.validation`), each augmented with its own
seed (:func:`seglab.data.resumable.sample_seed`)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.utils.data import Dataset

from seglab.data.bad_samples import BadSampleError
from seglab.data.io import FileError
from seglab.data.resumable import SampleKey, sample_seed
from seglab.data.validation import Rules, problems, source_of


class TransformedDataset(Dataset):
    """Applies an Albumentations pipeline to a raw dataset; each sample read is checked once
    against the data rules (``validation.problems``): the first problem raises
    :class:`~seglab.data.bad_samples.BadSampleError`, naming the file.

    A key is an index or a :class:`~seglab.data.resumable.SampleKey` ``(index, epoch)`` (the
    training sampler's); its augmentation is seeded from ``(seed, epoch, index)`` alone, so it is
    the same in any process, worker or resumed run. The sample holds its ``index`` too.
    """

    def __init__(
        self,
        dataset: Dataset,
        transform,
        rules: Rules,
        split: str,
        length: int | None = None,
        seed: int = 0,
    ):
        self.dataset = dataset
        self.transform = transform
        self.rules = rules
        self.split = split
        # samples per epoch: index i reads sample i % len(dataset), each time freshly augmented
        self.length = length
        self.seed = seed
        self._warned = False

    def __len__(self) -> int:
        return len(self.dataset) if self.length is None else self.length

    def __getitem__(self, key: int | SampleKey) -> dict[str, torch.Tensor | int]:
        key = SampleKey.of(key)
        index = key.index % len(self.dataset)
        try:
            sample = self.dataset[index]
        except FileError as error:  # e.g. a truncated file the data check did not read
            raise BadSampleError.of(
                self.split,
                index,
                source_of(self.dataset, index).name(error.path),
                str(error),
                "The data check before training reads at most check_data_samples samples per "
                "split: check_data_samples=null checks every file",
            ) from error
        self._check(sample["image"], sample["mask"], index)
        self.transform.set_random_seed(sample_seed(self.seed, key))
        out = self.transform(image=sample["image"], mask=sample["mask"])
        image = out["image"].float()
        if not torch.isfinite(image).all():
            raise BadSampleError.of(
                self.split,
                index,
                source_of(self.dataset, index).image,
                "NaN or inf values after the transforms",
                "Check data.std for zeros and the augmentation",
            )
        return {"image": image, "mask": out["mask"].long(), "index": key.index}

    def _check(self, image: np.ndarray, mask: np.ndarray, index: int) -> None:
        source = source_of(self.dataset, index)
        for problem in problems(np.asarray(image), np.asarray(mask), source, self.rules):
            if not problem.warning:
                sentence = problem.sentence(self.rules, self.split)
                raise BadSampleError(sentence, self.split, problem.file, problem.detail)
            if not self._warned:
                self._warned = True
                warnings.warn(problem.sentence(self.rules, self.split), stacklevel=2)
