"""A re-queued trial continues its dead predecessor's training instead of starting again.

When a worker dies mid-trial (killed, pre-empted, its machine lost), the trial is failed and its
parameters re-queued (:mod:`seglab.sweeps.workers`: by this machine's next worker at once, by
Optuna's heartbeat otherwise). The copy is a new trial with a job folder of its own. If the dead
trial's job folder (user attribute ``job_dir``, recorded when the trial is asked) is reachable from
this worker and holds a checkpoint, the copy's job gets ``ckpt_path=<its newest checkpoint>``:
Lightning restores weights, optimiser, schedule, epoch and the best score, and the fit goes on
from there (``last.ckpt`` after each epoch, ``interrupted.ckpt`` on SIGTERM). A copy of a copy
looks back along the chain to the newest trial that left a checkpoint. Otherwise (no checkpoint
yet, or the folder is on another machine without a shared filesystem) the copy starts afresh.

The folder is only taken when its ``.hydra/hydra.yaml`` links it to that trial of that study (the
``hydra.job.env_set`` of :func:`seglab.sweeps.trial.link_overrides`), so a reused sweep folder
never hands a trial another search's checkpoint.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna
from omegaconf import OmegaConf
from optuna.storages import RetryFailedTrialCallback
from optuna.trial import FrozenTrial

from seglab.resume import newest_checkpoint
from seglab.sweeps.trial import ENV_STUDY, ENV_TRIAL, quoted

log = logging.getLogger(__name__)

RETRY_OF = "retry_of"  # user attribute of a copy queued by this machine's next worker
JOB_DIR = "job_dir"  # user attribute: the trial's job folder, absolute


def retried_trial(trial: FrozenTrial) -> int | None:
    """The number of the failed trial that ``trial`` re-runs, or None."""
    number = trial.user_attrs.get(RETRY_OF)
    if number is not None:
        return int(number)
    with warnings.catch_warnings():  # "retried_trial_number is experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryFailedTrialCallback.retried_trial_number(trial)


def belongs_to(job_dir: Path, study_name: str, number: int) -> bool:
    """True when ``job_dir`` is the job folder of trial ``number`` of ``study_name`` (the trial
    link its ``.hydra/hydra.yaml`` records)."""
    try:
        env = OmegaConf.load(job_dir / ".hydra" / "hydra.yaml").hydra.job.env_set
        linked = str(env.get(ENV_STUDY)), str(env.get(ENV_TRIAL))
    except (OSError, ValueError, AttributeError):
        return False
    return linked == (study_name, str(number))


def predecessor_checkpoint(study: optuna.Study, trial: FrozenTrial) -> Path | None:
    """The newest checkpoint of the trials that ``trial`` re-runs, newest trial first."""
    number, seen = retried_trial(trial), set()
    if number is None:
        return None
    trials = study.get_trials(deepcopy=False)
    while number is not None and number not in seen and 0 <= number < len(trials):
        seen.add(number)
        failed = trials[number]
        job_dir = Path(failed.user_attrs.get(JOB_DIR) or "/nonexistent")
        if job_dir.is_dir() and belongs_to(job_dir, study.study_name, number):
            checkpoint = newest_checkpoint(job_dir)
            if checkpoint is not None:
                return checkpoint
        number = retried_trial(failed)
    return None


def continuation(study: optuna.Study, trial: FrozenTrial) -> dict[str, str]:
    """``{"ckpt_path": <checkpoint>}`` for a re-run trial whose predecessor left one, else {}."""
    predecessor = retried_trial(trial)
    if predecessor is None:
        return {}
    checkpoint = predecessor_checkpoint(study, trial)
    if checkpoint is None:
        log.info(
            "Trial %d re-runs trial %d, which left no checkpoint here: it starts afresh",
            trial.number,
            predecessor,
        )
        return {}
    log.info(
        "Trial %d re-runs trial %d: it continues from %s", trial.number, predecessor, checkpoint
    )
    return {"ckpt_path": quoted(str(checkpoint))}
