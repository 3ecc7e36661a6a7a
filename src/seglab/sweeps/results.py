"""What a search reports: a trial's end state in the log, ``optimization_results.yaml``."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from seglab.sweeps.budget import JOB

log = logging.getLogger(__name__)


def state_name(study: optuna.Study, trial: optuna.Trial) -> str:
    frozen = study._storage.get_trial(trial._trial_id)
    if frozen.state == TrialState.PRUNED:
        return f"pruned at epoch {frozen.last_step}"  # steps are epochs (seglab.sweeps.trial)
    return frozen.state.name.lower()


def write_results(study: optuna.Study, sweep_dir: Path) -> None:
    """``optimization_results.yaml`` from the whole study: the best trial (its number and job
    folder) or, for several objectives, the Pareto front."""
    if len(study.directions) > 1:
        solutions = [{"params": t.params, "values": t.values} for t in study.best_trials]
        results = {"name": "optuna", "solutions": solutions}
        log.info("Number of Pareto solutions: %d", len(solutions))
    else:
        best = study.best_trial
        job = best.user_attrs.get(JOB, best.number)
        results = {
            "name": "optuna",
            "best_params": best.params,
            "best_value": best.value,
            "best_trial": best.number,
            "best_job": job,
        }
        log.info(
            "Best trial #%d (job folder %s): value %s, parameters %s",
            best.number,
            sweep_dir / str(job),
            best.value,
            best.params,
        )
    OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
