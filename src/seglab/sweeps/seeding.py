"""The sampler's seed over workers: each trial draws from a seed of its own.

A sampler seeded once per worker (``hydra.sweeper.sampler.seed``) proposes the same first trials
in every worker started with it, and a resumed search would propose the first run's parameters
again. Here the trial number (unique in the study: the storage hands it out) picks the seed: just
before Optuna samples trial ``n``, the configured sampler is built anew with the seed derived from
``(seed, n)`` (:func:`trial_seed`). So workers started together with one command never propose
the same parameters, a one-worker search with a seed proposes the same ones every time, and a
resumed search goes on with new ones (its trial numbers go on). The sampler keeps no state of its
own between trials (TPE, random, CMA-ES, NSGA-II, QMC and GP read the history from the study),
so building it anew per trial changes nothing but the seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.samplers import BaseSampler


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial ``number`` in a search seeded with ``seed`` (NumPy's ``SeedSequence``:
    well-mixed and distinct for distinct pairs)."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededSampler(BaseSampler):
    """``make(trial_seed(seed, n))`` samples trial ``n``; every call is handed on to it."""

    def __init__(self, make: Callable[[int], BaseSampler], seed: int) -> None:
        self.make, self.seed = make, int(seed)
        self.sampler = make(self.seed)  # until the first trial
        self.name = type(self.sampler).__name__

    def __str__(self) -> str:
        return f"{self.name} (seed {self.seed} + trial number)"

    def before_trial(self, study, trial) -> None:
        self.sampler = self.make(trial_seed(self.seed, trial.number))
        self.sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial) -> dict[str, Any]:
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return self.sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution) -> Any:
        return self.sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values: Sequence[float] | None) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to do: the next trial's draws come from its own seed."""


def seeded_per_trial(sampler: Any, node: DictConfig | None) -> Any:
    """``sampler`` seeded per trial when its config (``hydra.sweeper.sampler``) sets a seed;
    unchanged without one (it draws from the system's entropy, different in every worker)."""
    if not node or node.get("seed") is None:
        return sampler
    settings = OmegaConf.to_container(node, resolve=True)
    return TrialSeededSampler(lambda seed: instantiate(settings, seed=seed), settings["seed"])
