"""How the Optuna search hands its trials to Hydra's launcher: one job per trial, numbered by the
trial (a launch numbers its jobs consecutively from ``initial_job_idx``), with the trial's
parameters and the fixed ones as overrides; the failed jobs are kept, and a job that returns no
objective stops the search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher


class WatchedLauncher:
    """The sweep's launcher, keeping the failed jobs and stopping on a job without objective."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.failed: list[JobReturn] = []
        self.completed = 0

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        for ret in returns:
            if ret.status != JobStatus.COMPLETED:
                self.failed.append(ret)
            elif ret.return_value is None:
                raise ValueError(
                    "The training task returned no objective, so Optuna has nothing to optimise: "
                    "set optimized_metric to a logged metric, e.g. optimized_metric=val/dice_best"
                )
            else:
                self.completed += 1
        return returns


def trial_overrides(
    trial: optuna.Trial, fixed: dict[str, Any], extra: dict[str, Any] | None = None
) -> list[str]:
    """The job's overrides: the trial's parameters, the fixed ones, then ``extra`` (which wins,
    e.g. the ``ckpt_path`` a re-run trial continues from)."""
    return [f"{name}={value}" for name, value in {**trial.params, **fixed, **(extra or {})}.items()]


def consecutive(trials: list[optuna.Trial]) -> list[list[optuna.Trial]]:
    """``trials`` in runs of consecutive numbers (a launch numbers its jobs consecutively)."""
    runs: list[list[optuna.Trial]] = []
    for trial in trials:
        if runs and runs[-1][-1].number + 1 == trial.number:
            runs[-1].append(trial)
        else:
            runs.append([trial])
    return runs
