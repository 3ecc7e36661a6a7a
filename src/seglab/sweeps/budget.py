"""``n_trials`` counted in all, over resumed runs and over every worker of one study.

A trial counts once it is asked: COMPLETE, PRUNED, FAIL and RUNNING ones (another worker's
running trial is a trial of the search). It does not count when something else replaces it: a
trial an interruption left RUNNING (failed with user attribute ``interrupted``, its parameters
re-queued), a stale trial re-queued by the heartbeat's retry callback, or a trial asked beyond the
budget (``surplus``). WAITING trials (queued copies) count when a worker takes them.

Workers race: two of them may both see one trial left and both ask. Asking then checking closes
the race: trial numbers are unique, so the trial is within the budget when fewer than
``n_trials`` counted trials have a smaller number; otherwise it is marked FAIL with user
attribute ``surplus`` and that worker stops.
"""

from __future__ import annotations

from collections import Counter

import optuna
from optuna.trial import FrozenTrial, TrialState

from seglab.sweeps.storage import superseded

INTERRUPTED = "interrupted"  # user attribute: left RUNNING by an interrupted search, re-queued
SURPLUS = "surplus"  # user attribute: asked by a worker after the budget was used up
JOB = "job"  # user attribute: the trial's job number, i.e. its folder in the sweep dir


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that use up ``n_trials`` (see the module docstring)."""
    replaced = superseded(trials)
    return [
        t
        for t in trials
        if t.state != TrialState.WAITING
        and t.number not in replaced
        and not t.user_attrs.get(INTERRUPTED)
        and not t.user_attrs.get(SURPLUS)
    ]


def left(study: optuna.Study, n_trials: int) -> int:
    """How many trials may still be asked."""
    return max(0, n_trials - len(counted(study.get_trials(deepcopy=False))))


def within_budget(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """True when ``trial`` (just asked) is one of the first ``n_trials`` counted trials; if not,
    it is marked surplus and failed (Optuna cannot delete a trial)."""
    before = [t for t in counted(study.get_trials(deepcopy=False)) if t.number < trial.number]
    if len(before) < n_trials:
        return True
    study._storage.set_trial_user_attr(trial._trial_id, SURPLUS, True)
    study.tell(trial, state=TrialState.FAIL)
    return False


def running_elsewhere(study: optuna.Study) -> int:
    """RUNNING trials (other workers'; this worker's are told before it asks again)."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def progress(study: optuna.Study) -> str:
    """``best 0.81 (trial 3); 4 complete, 1 pruned, 0 failed, 1 running`` (counted trials)."""
    trials = counted(study.get_trials(deepcopy=False))
    states = Counter(t.state for t in trials)
    text = ", ".join(
        f"{states[state]} {name}"
        for state, name in (
            (TrialState.COMPLETE, "complete"),
            (TrialState.PRUNED, "pruned"),
            (TrialState.FAIL, "failed"),
            (TrialState.RUNNING, "running"),
        )
    )
    if len(study.directions) == 1 and states[TrialState.COMPLETE]:
        best = study.best_trial
        return f"best {best.value:.6g} (trial {best.number}); {text}"
    return f"no completed trial yet; {text}"
