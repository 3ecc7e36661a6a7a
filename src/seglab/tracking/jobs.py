"""W&B runs of the jobs that use a trained model: ``seglab-eval`` (``job_type=eval``) and
``seglab-predict`` (``job_type=predict``), in the group of the run that trained the checkpoint.

The training run's group is the one :func:`seglab.tracking.run.complete_wandb_config` gave it: its
``logger.wandb.group`` when set, else its sweep folder's name for a multirun job. A single
training run has no group; its eval and predict jobs then share the group named after its run
folder (``logs/train/runs/<date>_<time>``), and every job records the training run's folder and
W&B id in its config (``training.run_dir``, ``training.wandb_id``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from seglab.tracking.run_info import wandb_run_id

log = logging.getLogger(__name__)

JOB_TYPES = ("eval", "predict")


def training_run_dir(ckpt_file: str | Path) -> Path:
    """``<run>/checkpoints/<file>.ckpt`` -> ``<run>``; a checkpoint kept elsewhere: its folder."""
    folder = Path(ckpt_file).resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def training_group(run_dir: str | Path) -> str:
    """The W&B group of the training run in ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    config, hydra = run_dir / ".hydra" / "config.yaml", run_dir / ".hydra" / "hydra.yaml"
    if config.is_file():
        group = OmegaConf.select(OmegaConf.load(config), "logger.wandb.group", default=None)
        if group:
            return str(group)
    if hydra.is_file():
        mode = OmegaConf.select(OmegaConf.load(hydra), "hydra.mode", default=None)
        if str(mode) == "MULTIRUN":  # <sweep dir>/<job number>: the sweep's group
            return run_dir.parent.name
    return run_dir.name


def complete_job_config(cfg: DictConfig, job_type: str, ckpt_file: str | Path) -> dict[str, Any]:
    """Fill the W&B logger config of an eval / predict job (name, group, job type; a new run, no
    model upload) and return what it records about the training run."""
    if job_type not in JOB_TYPES:
        raise ValueError(f"job_type must be one of {JOB_TYPES}, got {job_type!r}")
    run_dir = training_run_dir(ckpt_file)
    training = {
        "run_dir": str(run_dir),
        "checkpoint": str(ckpt_file),
        "wandb_id": wandb_run_id(run_dir),
        "group": training_group(run_dir),
    }
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg:
        with open_dict(cfg):
            wandb_cfg.job_type = job_type
            wandb_cfg.group = wandb_cfg.get("group") or training["group"]
            wandb_cfg.name = wandb_cfg.get("name") or f"{job_type}-{run_dir.name}"
            wandb_cfg.id = None  # a run of its own, never the training run resumed
            wandb_cfg.log_model = False
    return training
