"""Where a job stands in a sweep: multirun or not, the sweep folder, and which of its overrides
tell it apart from the other jobs (one home, used by W&B run names and by the sweep summary)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

SWEEP_CONFIG = "multirun.yaml"  # written into the sweep folder before the jobs start


def in_multirun() -> bool:
    """True inside a job of ``python train.py -m ...`` (or of an Optuna search)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def task_overrides() -> list[str]:
    """The command-line overrides of this run or multirun job (empty outside ``@hydra.main``)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def sweep_dir() -> Path | None:
    """This multirun job's sweep folder; None in a single run."""
    return Path(HydraConfig.get().sweep.dir) if in_multirun() else None


def varying_overrides(overrides: Iterable[str], common: Iterable[str]) -> list[str]:
    """``overrides`` without those given to the whole sweep (``common``), in order."""
    common = set(common)
    return [override for override in overrides if override not in common]


def sweep_overrides(folder: Path) -> list[str]:
    """The overrides given to every job of the sweep in ``folder`` (from its ``multirun.yaml``,
    which Hydra's basic sweeper and seglab's Optuna search write before the jobs start)."""
    path = folder / SWEEP_CONFIG
    return list(OmegaConf.load(path).hydra.overrides.task) if path.is_file() else []


def distinguishing_overrides() -> list[str]:
    """The overrides that tell this run apart: all of them in a single run; in a multirun job,
    those that vary between the jobs."""
    folder = sweep_dir()
    overrides = task_overrides()
    return overrides if folder is None else varying_overrides(overrides, sweep_overrides(folder))
