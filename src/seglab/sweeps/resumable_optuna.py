"""An Optuna search that can be resumed and survives failed trials (``hparams_search=...``).

hydra-optuna-sweeper 1.3's ``OptunaSweeperImpl`` (``hydra_plugins/hydra_optuna_sweeper/_impl.py``)
loads an existing study (``load_if_exists``), records a failed job as a FAIL trial, goes on while
the failed share of a batch is at most ``max_failure_rate`` (seglab's configs set 1.0; the
plugin's default 0.0 stops at the first failure) and writes ``optimization_results.yaml``. This
subclass adds what resuming an interrupted search needs:

- the storage's folder is created before the study: the default sqlite file lives in the sweep
  folder, which the launcher creates only at the first launch;
- ``n_trials`` counts the study's finished trials, so the same command with the same
  ``hydra.sweep.dir`` runs only the missing ones (the plugin would run ``n_trials`` more);
- job numbers continue after the study's last trial (the plugin starts at 0 again and would write
  into the earlier trials' job folders); each trial keeps its job number as user attribute ``job``;
- a trial that an interruption left RUNNING is marked FAIL with user attribute ``interrupted``,
  is not counted, and its parameters are queued to run first (``enqueue_trial``);
- the sampler is reseeded: a seeded sampler would start from its seed again and propose the
  first run's parameters once more (so a resumed search is not reproducible; a fresh one is).

Errors that are not a trial's own failure stop the search: an unreadable storage (named, with
the fix), a job that returns no objective (``optimized_metric`` unset), and anything the launcher
raises (e.g. an unknown parameter in the search space). When no trial completes, the first failed
trial's exception is raised instead of optuna's "Record does not exist.". The best trial is
logged with its job folder and its number and job are added to ``optimization_results.yaml``.

Resuming assumes no other process works on the same study at the same time (its running trials
would be taken for interrupted ones).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from omegaconf import OmegaConf
from optuna.trial import TrialState

from seglab.sweeps.context import SWEEP_CONFIG

log = logging.getLogger(__name__)

JOB = "job"  # trial user attribute: the job number, i.e. the trial's folder in the sweep dir
INTERRUPTED = "interrupted"  # trial user attribute: left RUNNING by an interrupted search
SQLITE = "sqlite:///"


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


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    def setup(self, **kwargs: Any) -> None:
        super().setup(**kwargs)
        self.launcher = WatchedLauncher(self.launcher)

    def sweep(self, arguments: list[str]) -> None:
        # as Hydra's basic sweeper does: the sweep's own config and overrides, which tell the
        # jobs which of their overrides were drawn by the search (seglab's W&B run names)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / SWEEP_CONFIG)
        study = self.open_study()
        completed_before = 0
        if study is not None:
            completed_before = self.resume(study)
        try:
            super().sweep(arguments)
        except ValueError:
            # best_trial without a completed trial ("Record does not exist."): show the trials'
            # own error instead
            if completed_before or self.launcher.completed or not self.launcher.failed:
                raise
            first = self.launcher.failed[0]
            log.error("No trial completed. The first failed trial %s raised:", first.overrides)
            raise first._return_value from None
        if study is not None and len(self._get_directions()) == 1:
            self.report_best(study)

    def open_study(self) -> optuna.Study | None:
        """The persisted study (created when new), or None for an in-memory one."""
        if self.storage is None:
            return None
        if isinstance(self.storage, str) and self.storage.startswith(SQLITE):
            Path(self.storage[len(SQLITE) :]).parent.mkdir(parents=True, exist_ok=True)
        try:
            return optuna.create_study(
                study_name=self.study_name,
                storage=self.storage,
                directions=self._get_directions(),
                load_if_exists=True,
            )
        except Exception as error:
            raise RuntimeError(
                f"Cannot open the Optuna study {self.study_name!r} in "
                f"hydra.sweeper.storage={self.storage!r}: {type(error).__name__}: {error}. "
                "Use a writable sqlite:///<path>.db (the default is optuna.db in the sweep "
                "folder), a reachable database URL, or hydra.sweeper.storage=null (in memory)."
            ) from error

    def resume(self, study: optuna.Study) -> int:
        """Count the finished trials against n_trials, continue the job numbers, and fail and
        re-queue interrupted trials. Returns the number of completed trials."""
        trials = study.get_trials(deepcopy=False)
        interrupted = [t for t in trials if t.state == TrialState.RUNNING]
        finished = [
            t for t in trials if t.state.is_finished() and not t.user_attrs.get(INTERRUPTED)
        ]
        completed = sum(t.state == TrialState.COMPLETE for t in finished)
        for trial in interrupted:
            study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
            study._storage.set_trial_state(trial._trial_id, TrialState.FAIL)
            if not trial.params:
                continue  # interrupted before its parameters were drawn: nothing to re-run
            with warnings.catch_warnings():  # "enqueue_trial is experimental" (optuna 2.10)
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.enqueue_trial(dict(trial.params))
        self.job_idx = len(trials)  # the next trial number: no earlier job folder is reused
        if trials and isinstance(self.sampler, optuna.samplers.BaseSampler):
            # a seeded sampler starts from its seed again in this new process and would propose
            # the earlier run's parameters once more
            self.sampler.reseed_rng()
        if trials:
            log.info(
                "Resuming study %r: %d trial(s) finished (%d completed) of n_trials=%d; "
                "next job #%d.%s",
                study.study_name,
                len(finished),
                completed,
                self.n_trials,
                self.job_idx,
                f" Interrupted trial(s) {[t.number for t in interrupted]} marked failed, "
                "their parameters run first."
                if interrupted
                else "",
            )
        self.n_trials = max(0, self.n_trials - len(finished))
        return completed

    def _configure_trials(self, trials: list[optuna.trial.Trial], *args: Any) -> Any:
        overrides = super()._configure_trials(trials, *args)
        for offset, trial in enumerate(trials):
            trial.set_user_attr(JOB, self.job_idx + offset)
        return overrides

    def report_best(self, study: optuna.Study) -> None:
        """Log the best trial with its job folder; add its number and job to the results file."""
        best = study.best_trial
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        job = best.user_attrs.get(JOB, best.number)
        log.info(
            "Best trial #%d (job folder %s): value %s, parameters %s",
            best.number,
            sweep_dir / str(job),
            best.value,
            best.params,
        )
        path = sweep_dir / "optimization_results.yaml"
        results = OmegaConf.load(path)
        results.best_trial = best.number
        results.best_job = job
        OmegaConf.save(results, path)
