"""The training loader as pure functions of ``(seed, epoch, sample index)``, with its place in the
epoch saved in every checkpoint: a resumed run sees exactly what the uninterrupted one would.

Nothing the training data depends on is a random state that is consumed as the run goes (the
global generators, Albumentations' own, a DataLoader's base seed): those differ after a resume
(the sanity check, another number of iterators, workers started anew) and no checkpoint can
carry the workers' ones. Instead

- :class:`EpochSampler` is torch's ``DistributedSampler`` (the order of epoch ``e`` is a
  permutation seeded by ``seed + e``; under DDP each rank takes its own share of it), given by
  the DataModule on one process too, so Lightning injects none. It yields :class:`SampleKey`
  ``(index, epoch)``, so that the dataset seeds each sample's augmentation with
  :func:`sample_seed` ``(seed, epoch, index)``, in the main process or in any worker;
- :class:`ResumableLoader` is a ``DataLoader`` with ``state_dict`` / ``load_state_dict`` (the
  epoch and the samples handed out in it). Lightning's fit loop saves that in every checkpoint
  (``loops.fit_loop.state_dict.combined_loader``) and loads it when it restarts mid-epoch, before
  the epoch continues: the sampler then skips the samples already trained on, and Lightning's
  batch counter (restored with the loop) ends the epoch after the remaining ones. Its iteration
  starts at the first batch rather than at ``iter()``: Lightning creates the first iterator of a
  fit before it calls ``set_epoch``, and a loader with workers draws its indices at ``iter()``.

Lightning by itself restarts a mid-epoch checkpoint's epoch from its first batch (and warns that
the loader is not resumable); torchdata's ``StatefulDataLoader`` would resume the position but
keeps random states (its sampler's generator, the workers') instead of making them unnecessary.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class SampleKey(NamedTuple):
    """What the training sampler asks the dataset for: a sample index and the epoch."""

    index: int
    epoch: int

    @classmethod
    def of(cls, key: int | SampleKey) -> SampleKey:
        """``key`` as a SampleKey; a plain index (val/test, Python use) is epoch 0's."""
        return key if isinstance(key, SampleKey) else cls(int(key), 0)


def run_seed() -> int:
    """The seed of this run: torch's initial seed in the main process (``seed_everything`` sets
    it: the same on every DDP rank), read when a loader is built."""
    return torch.initial_seed() % 2**32


def sample_seed(seed: int, key: SampleKey) -> int:
    """The augmentation seed of one sample: a hash of ``(seed, epoch, index)``."""
    return int(np.random.SeedSequence([seed, key.epoch, key.index]).generate_state(1)[0])


class EpochSampler(DistributedSampler):
    """Shuffled sample keys of one epoch, a pure function of ``(seed, epoch)`` and the rank (see
    the module docstring). ``set_epoch`` chooses the epoch (Lightning calls it before each);
    ``start`` skips that many of this rank's samples once, at the next iteration."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.start = 0

    def __iter__(self) -> Iterator[SampleKey]:
        start, self.start = self.start, 0
        epoch = self.epoch
        for index in itertools.islice(super().__iter__(), start, None):
            yield SampleKey(index, epoch)


class ResumableLoader(DataLoader):
    """A training DataLoader over an :class:`EpochSampler` whose position in the epoch is saved in
    checkpoints and restored mid-epoch (see the module docstring)."""

    def __iter__(self) -> Iterator[Any]:
        return self._batches()  # a generator: nothing starts before the first batch is asked for

    def _batches(self) -> Iterator[Any]:
        sampler = self.sampler
        self._seen = getattr(sampler, "start", 0)
        for batch in super().__iter__():
            self._seen += self.batch_size
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The epoch and the samples of it this process was given (batches x batch size)."""
        return {"epoch": getattr(self.sampler, "epoch", 0), "samples": getattr(self, "_seen", 0)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue epoch ``state["epoch"]`` after its first ``state["samples"]`` samples."""
        if isinstance(self.sampler, EpochSampler):
            self.sampler.set_epoch(int(state["epoch"]))
            self.sampler.start = int(state["samples"])
