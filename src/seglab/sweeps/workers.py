"""The workers of one study: who runs a trial (user attribute ``worker``: ``host:pid``) and what
becomes of the trials of a worker that died.

A RUNNING trial whose worker ran on this machine and whose process is gone is failed at once
(user attribute ``interrupted``) and its parameters are queued to run first; on the first look
at a study, a RUNNING trial without ``worker`` (a study of an older seglab) that started more
than 10 s ago is taken for interrupted too. Trials of other machines are failed by Optuna's
heartbeat once stale (:mod:`seglab.sweeps.storage`), whose retry callback re-queues them.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState

from seglab.sweeps.budget import INTERRUPTED
from seglab.sweeps.retry import RETRY_OF
from seglab.utils.files import process_runs

WORKER = "worker"  # trial user attribute: host:pid of the worker that runs it
UNNAMED_AGE_S = 10.0


@contextmanager
def quiet() -> Iterator[None]:
    """Without Optuna's notes that heartbeats and ``fail_stale_trials`` are meant for
    ``Study.optimize`` / experimental: this search drives them itself, through ask-and-tell."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed", UserWarning)
        yield


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_dead_here(worker: str | None) -> bool:
    """True when ``worker`` (host:pid) ran on this machine and its process is gone."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not process_runs(int(pid))


def is_unnamed_and_old(trial: optuna.trial.FrozenTrial) -> bool:
    """A RUNNING trial without ``worker`` from before seglab recorded workers. (A worker names
    its trial a moment after asking for it: a younger unnamed trial is another live worker's.)"""
    if trial.user_attrs.get(WORKER) is not None or trial.datetime_start is None:
        return False
    return (datetime.now() - trial.datetime_start).total_seconds() > UNNAMED_AGE_S


def reclaim(study: optuna.Study, first: bool) -> list[int]:
    """Fail and re-queue the RUNNING trials of dead workers of this machine (and, on the first
    call, those of a study from before workers were recorded); fail stale trials (heartbeat)."""
    reclaimed = []
    for trial in study.get_trials(deepcopy=False, states=[TrialState.RUNNING]):
        dead = is_dead_here(trial.user_attrs.get(WORKER))
        if not (dead or (first and is_unnamed_and_old(trial))):
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker of this machine reclaimed it first
        reclaimed.append(trial.number)
        if trial.params:  # interrupted before its parameters were drawn: nothing to re-run
            study.enqueue_trial(dict(trial.params), user_attrs={RETRY_OF: trial.number})
    with quiet():
        fail_stale_trials(study)
    return reclaimed
