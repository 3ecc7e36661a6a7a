"""The command lines of seglab's Hydra tasks: ``train.py``, ``eval.py``, ``predict.py``,
``export.py`` and the ``seglab-*`` console scripts call these.

This module imports hydra and omegaconf only: each task module (and with it torch, Lightning,
albumentations, W&B) is imported when Hydra runs the job (:func:`seglab.config.deferred`), so
``python train.py --help``, ``--cfg job`` and config errors (a renamed or unknown key, a group
option that does not exist) load neither torch nor Lightning; tests/test_startup.py keeps it so.
Values checked in the job (:mod:`seglab.preflight`) still come after the task's imports.
"""

from __future__ import annotations

from seglab.config import hydra_task

train = hydra_task("train", "seglab.train:task", resumable=True)
evaluate = hydra_task("eval", "seglab.eval:task", strict_keys=True)
predict = hydra_task("predict", "seglab.predict:task", strict_keys=True)
export = hydra_task("export", "seglab.export:task")
inspect = hydra_task("inspect", "seglab.inspection:task")

__all__ = ["evaluate", "export", "inspect", "predict", "train"]
