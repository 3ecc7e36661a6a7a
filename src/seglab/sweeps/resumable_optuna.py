"""seglab's Optuna search (``hparams_search=...``): Hydra's sweep syntax, Optuna >= 4 through
ask-and-tell, resumable, pruning, and any number of workers on one study.

Each worker (the same command, started once per machine, per SLURM array task, ...) loops:
reclaim dead workers' trials, ask a batch of ``n_jobs`` trials within ``n_trials`` (counted over
the whole study, see :mod:`seglab.sweeps.budget`), launch them through the configured launcher
(job folder = trial number, so workers never share one), tell each result: COMPLETE with the
returned objective, PRUNED when the job raised ``optuna.TrialPruned`` (see
:mod:`seglab.sweeps.trial`), FAIL otherwise; the search goes on while the failed share of a batch
is at most ``max_failure_rate``. After each trial it logs the best value so far and the counts.

A trial left RUNNING by a dead worker is failed and its parameters re-queued: at once when that
worker ran on this machine (its process id, user attribute ``worker``, is gone: an interrupted
search resumed with the same command), after the heartbeat's grace period otherwise (Optuna's
heartbeat and ``RetryFailedTrialCallback``, see :mod:`seglab.sweeps.storage`). The copy continues
from the dead trial's newest checkpoint when its job folder is reachable
(:mod:`seglab.sweeps.retry`). A worker with nothing left to ask waits while other trials run with a
heartbeat, so a re-queued trial still runs. A seeded sampler draws each trial from a seed of its
own, derived from the seed and the trial number (:mod:`seglab.sweeps.seeding`): workers started
together with one seed, and a resumed search, never propose the same parameters again; one worker's
search is reproducible.
At the end each worker writes ``optimization_results.yaml`` from the whole study (the last
worker to finish writes the final one).

Errors that are not a trial's own failure stop the search: an unreadable storage (named, with
the fix), a job that returns no objective, anything the launcher raises (an unknown parameter).
When no trial completes, the first failed trial's exception is raised.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled
from optuna.trial import TrialState

from seglab.sweeps import budget
from seglab.sweeps.budget import INTERRUPTED, JOB  # noqa: F401  (re-exported for callers)
from seglab.sweeps.context import SWEEP_CONFIG
from seglab.sweeps.launching import WatchedLauncher, consecutive, trial_overrides
from seglab.sweeps.results import state_name, write_results
from seglab.sweeps.retry import JOB_DIR, continuation
from seglab.sweeps.search_space import parse_params
from seglab.sweeps.seeding import seeded_per_trial
from seglab.sweeps.storage import open_storage
from seglab.sweeps.trial import link_overrides
from seglab.sweeps.workers import WORKER, quiet, reclaim, this_worker

log = logging.getLogger(__name__)


class ResumableOptunaSweeperImpl:
    def __init__(
        self,
        sampler: Any = None,
        direction: Any = "minimize",
        storage: str | None = None,
        study_name: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        max_failure_rate: float = 0.0,
        params: Any = None,
        pruner: Any = None,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        failed_trial_max_retry: int | None = 3,
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(
                f"hydra.sweeper.max_failure_rate={max_failure_rate}: use a share from 0 (stop at "
                "the first failure) to 1.0 (never stop)"
            )
        self.sampler, self.pruner, self.study_name = sampler, pruner, study_name
        self.directions = [direction] if isinstance(direction, str) else [*direction]
        self.storage = None if storage is None else str(storage)
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.params = dict(params or {})
        self.heartbeat = dict(heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        self.max_retry = failed_trial_max_retry
        self.first_failure: BaseException | None = None
        self.resumed = False
        self.config: Any = None  # the sweep's config, from setup()

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.config = config
        launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.launcher = WatchedLauncher(launcher)
        self.sampler = seeded_per_trial(self.sampler, config.hydra.sweeper.get("sampler"))

    @property
    def sweep_dir(self) -> Path:
        return Path(str(self.config.hydra.sweep.dir))

    def sweep(self, arguments: list[str]) -> None:
        # as Hydra's basic sweeper does: the sweep's own config and overrides, which tell the
        # jobs which of their overrides were drawn by the search (seglab's W&B run names)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / SWEEP_CONFIG)
        space, fixed = parse_params([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        study = self.open_study()
        log.info(
            "Study %r in %s: sampler %s, %s pruner, directions %s, n_trials=%d",
            study.study_name,
            self.storage or "memory",
            study.sampler,
            type(study.pruner).__name__,
            self.directions,
            self.n_trials,
        )
        if self.storage is None and not isinstance(study.pruner, optuna.pruners.NopPruner):
            log.warning(
                "hydra.sweeper.storage=null: the jobs cannot reach their trials, so nothing is "
                "pruned; set a storage (e.g. sqlite:///${hydra.sweep.dir}/optuna.db) to prune"
            )
        self.resume(study)
        while self.run_batch(study, space, fixed) or self.wait_for_others(study):
            pass
        self.finish(study)

    def open_study(self) -> optuna.Study:
        storage = open_storage(
            self.storage, failed_trial_max_retry=self.max_retry, **self.heartbeat
        )
        try:
            return optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=self.sampler,
                pruner=self.pruner or optuna.pruners.NopPruner(),
                directions=self.directions,
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
        """On a study with trials: reclaim dead workers' trials, reseed a sampler that is not
        seeded per trial (it would propose the first run's parameters again) and log where the
        search stands. Returns the number of completed trials."""
        interrupted = self.reclaim(study)
        trials = study.get_trials(deepcopy=False)
        if not trials:
            return 0
        if hasattr(study.sampler, "reseed_rng"):
            study.sampler.reseed_rng()
        finished = [t for t in budget.counted(trials) if t.state.is_finished()]
        completed = sum(t.state == TrialState.COMPLETE for t in finished)
        log.info(
            "Resuming study %r: %d trial(s) finished (%d completed) of n_trials=%d.%s",
            study.study_name,
            len(finished),
            completed,
            self.n_trials,
            f" Interrupted trial(s) {interrupted} marked failed, their parameters run first."
            if interrupted
            else "",
        )
        return completed

    def reclaim(self, study: optuna.Study) -> list[int]:
        """Fail and re-queue dead workers' trials (see :func:`seglab.sweeps.workers.reclaim`)."""
        first, self.resumed = not self.resumed, True
        return reclaim(study, first)

    def ask(self, study: optuna.Study, space: dict) -> list[optuna.Trial]:
        """Up to ``n_jobs`` new trials within ``n_trials`` (see :mod:`seglab.sweeps.budget`)."""
        trials = []
        for _ in range(min(self.n_jobs, budget.left(study, self.n_trials))):
            with quiet():
                trial = study.ask(space)
            if not budget.within_budget(study, trial, self.n_trials):
                log.info("Trial %d was asked after n_trials were used up: dropped", trial.number)
                break
            trial.set_user_attr(JOB, trial.number)
            job_dir = self.job_dir(trial.number)
            if job_dir is not None:
                trial.set_user_attr(JOB_DIR, str(job_dir))
            trial.set_user_attr(WORKER, this_worker())
            trials.append(trial)
        return trials

    def run_batch(self, study: optuna.Study, space: dict, fixed: dict) -> bool:
        """Ask, launch and tell one batch of trials; False when there was nothing to ask."""
        self.reclaim(study)
        trials = self.ask(study, space)
        if not trials:
            return False
        returns = []
        beats = [get_heartbeat_thread(t._trial_id, study._storage) for t in trials]
        for beat in beats:
            beat.start()
        try:
            for run in consecutive(trials):
                overrides = [self.job_overrides(study, t, fixed) for t in run]
                returns += self.launcher.launch(overrides, initial_job_idx=run[0].number)
        except Exception:
            for trial in trials[len(returns) :]:
                study.tell(trial, state=TrialState.FAIL)
            raise
        finally:
            for beat in beats:
                beat.join()
        failures = [
            f for t, r in zip(trials, returns, strict=True) if (f := self.tell(study, t, r))
        ]
        if len(failures) / len(returns) > self.max_failure_rate:
            log.error(
                "%d of %d trial(s) failed, more than max_failure_rate=%s: the search stops",
                len(failures),
                len(returns),
                self.max_failure_rate,
            )
            raise failures[0]
        return True

    def job_overrides(self, study: optuna.Study, trial: optuna.Trial, fixed: dict) -> list[str]:
        """The trial's parameters, the fixed ones, the ``ckpt_path`` it continues from (a re-run
        trial) and the link to its trial."""
        resumed = continuation(study, study._storage.get_trial(trial._trial_id))
        return [*trial_overrides(trial, fixed, resumed), *self.link(study, trial.number)]

    def job_dir(self, number: int) -> Path | None:
        """Job ``number``'s folder: ``hydra.sweep.dir`` / ``hydra.sweep.subdir`` resolved with
        ``hydra.job.num`` set, absolute; None before setup() or for a subdir that needs what
        only the launcher knows (e.g. ``${hydra.job.override_dirname}``)."""
        if self.config is None:
            return None
        config = copy.deepcopy(self.config)
        with read_write(config.hydra.job), open_dict(config.hydra.job):
            config.hydra.job.num = number
        try:
            return (Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)).absolute()
        except OmegaConfBaseException:
            return None

    def link(self, study: optuna.Study, number: int) -> list[str]:
        """The overrides that let the job reach its trial (pruning), for a persisted study."""
        if self.storage is None:
            return []
        return link_overrides(self.storage, study.study_name, number)

    def tell(self, study: optuna.Study, trial: optuna.Trial, ret: JobReturn) -> Exception | None:
        """Record a job's result; returns the job's exception when it failed (not pruned)."""
        if ret.status == JobStatus.COMPLETED:
            value = ret.return_value
            values = [float(v) for v in value] if len(self.directions) > 1 else [float(value)]
            study.tell(trial, values=values)
            failure = None
        elif isinstance(ret._return_value, optuna.TrialPruned):
            study.tell(trial, state=TrialState.PRUNED)
            failure = None
        else:
            failure = ret._return_value
            log.warning("Trial %d failed: %s", trial.number, failure)
            study.tell(trial, state=TrialState.FAIL)
            self.first_failure = self.first_failure or failure
        log.info(
            "Trial %d %s. Study: %s", trial.number, state_name(study, trial), budget.progress(study)
        )
        return failure

    def wait_for_others(self, study: optuna.Study) -> bool:
        """With a heartbeat, wait while other workers' trials run: one may die and be re-queued.
        False when there is nothing to wait for."""
        interval = self.heartbeat["heartbeat_interval"]
        if not interval or not is_heartbeat_enabled(study._storage):
            return False
        if not budget.running_elsewhere(study):
            return False
        time.sleep(interval)
        return True

    def finish(self, study: optuna.Study) -> None:
        complete = study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
        if not complete:
            if self.first_failure is not None:
                log.error("No trial completed. The first failed trial raised:")
                raise self.first_failure
            log.warning("No trial completed: no optimization_results.yaml")
            return
        write_results(study, self.sweep_dir)
