"""Run bookkeeping and Weights & Biases: one home.

- :mod:`~seglab.tracking.mode`: online / offline / disabled, and why (offline without credentials);
- :mod:`~seglab.tracking.run_info`: git state and diff, package versions, data fingerprint, run
  names, flat config keys, the W&B run id of a run folder;
- :mod:`~seglab.tracking.run`: :func:`prepare` (mode + the W&B logger's name, group, job type and
  resume id), :func:`record_versions` (``versions.yaml``), :func:`log_hyperparameters`,
  :func:`wandb_loggers`, :func:`finish`;
- :mod:`~seglab.tracking.jobs`: the W&B runs of eval / predict jobs (in the training run's group)
  and the predictions table;
- :mod:`~seglab.tracking.task`: :func:`task_wrapper`, which finishes the W&B run with the task's
  exit code (1 on errors, 143 on SIGTERM, 130 on Ctrl-C).
"""

from seglab.tracking.mode import WandbMode, ensure_wandb_mode
from seglab.tracking.run import (
    complete_wandb_config,
    finish,
    log_hyperparameters,
    prepare,
    record_versions,
    wandb_loggers,
)
from seglab.tracking.task import exit_code, task_wrapper

__all__ = [
    "WandbMode",
    "complete_wandb_config",
    "ensure_wandb_mode",
    "exit_code",
    "finish",
    "log_hyperparameters",
    "prepare",
    "record_versions",
    "task_wrapper",
    "wandb_loggers",
]
