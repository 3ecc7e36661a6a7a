"""The W&B side of a run: fill in the logger config (name, group, job type, resume id), hand the
hyperparameters to every logger, and finish the run with its exit code."""

from __future__ import annotations

import logging
import platform
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from seglab.sweeps.context import distinguishing_overrides, sweep_dir, task_overrides
from seglab.tracking.mode import WandbMode, ensure_wandb_mode
from seglab.tracking.run_info import (
    data_fingerprint,
    flatten,
    git_diff,
    git_info,
    installed_versions,
    run_name,
    wandb_run_id,
)
from seglab.utils.redact import redact, redact_text, redacted_argv, secret_values

log = logging.getLogger(__name__)


def wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
    """The trainer's W&B loggers (callbacks log media through them)."""
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def model_name(cfg: DictConfig) -> str:
    """The model's config name (``unet``, ``resunet``, ...), the first part of run names."""
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("model")
        if choice:
            return choice
    return cfg.model._target_.rsplit(".", 1)[-1].lower()


def sweep_group() -> str | None:
    """The W&B group shared by the jobs of one multirun: the name of the sweep folder."""
    folder = sweep_dir()
    return folder.name if folder else None


def complete_wandb_config(cfg: DictConfig, wandb_mode: str) -> None:
    """Fill what the W&B logger config leaves open: the run name (from the overrides that tell
    the run apart), the group (the sweep, so a multirun is one comparison), the job type (``eval``
    for ``train=false``), the id of the run a resumed training continues, and model artifacts
    only when W&B is online."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if not wandb_cfg:
        return
    with open_dict(cfg):
        if not wandb_cfg.get("name"):
            wandb_cfg.name = run_name(model_name(cfg), distinguishing_overrides())
        if not wandb_cfg.get("group"):
            wandb_cfg.group = sweep_group()
        if not cfg.get("train", True):
            wandb_cfg.job_type = "eval"
        elif cfg.get("ckpt_path") and not wandb_cfg.get("id"):
            # resuming: keep logging into the W&B run of the checkpoint's run folder
            wandb_cfg.id = wandb_run_id(Path(cfg.ckpt_path).resolve().parent.parent)
        if wandb_cfg.get("log_model") and wandb_mode != "online":
            log.info("W&B is %s: checkpoints are not uploaded as model artifacts", wandb_mode)
            wandb_cfg.log_model = False


def prepare(cfg: DictConfig) -> WandbMode:
    """Before anything is instantiated: decide the W&B mode (offline without credentials) and
    complete the W&B logger config. Returns the mode and why it is in force."""
    mode = ensure_wandb_mode()
    complete_wandb_config(cfg, mode.mode)
    return mode


def run_hparams(cfg: DictConfig, net: torch.nn.Module, datamodule) -> dict[str, Any]:
    """The resolved config plus what reproduces and compares the run: overrides, git state,
    data fingerprint and parameter count."""
    hparams = OmegaConf.to_container(cfg, resolve=True)
    hparams["overrides"] = " ".join(task_overrides())
    hparams["git"] = git_info(launch_folder())
    hparams["data"]["fingerprint"] = data_fingerprint(datamodule.datasets)
    hparams["model"]["params"] = sum(p.numel() for p in net.parameters())
    return redact(hparams)


def launch_folder() -> str:
    """Where the task was started (the git checkout a run records)."""
    return hydra.utils.get_original_cwd() if HydraConfig.initialized() else "."


@rank_zero_only
def record_versions(cfg: DictConfig) -> None:
    """``versions.yaml`` in the run folder: Python, platform, the installed versions of the
    packages that shape a result, and the git commit; with uncommitted changes their diff is
    saved beside it as ``git.diff`` (secrets hidden). With ``.hydra/`` (config, overrides) this is
    what reruns the run."""
    output_dir = Path(cfg.paths.output_dir)
    folder = launch_folder()
    record = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": installed_versions(),
        "git": git_info(folder),
    }
    diff = git_diff(folder) if record["git"]["dirty"] else None
    if diff:
        values = secret_values(OmegaConf.to_container(cfg, resolve=True))
        (output_dir / "git.diff").write_text(redact_text(diff, values))
        record["git"]["diff"] = "git.diff"
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(redact(record)), output_dir / "versions.yaml")


@rank_zero_only
def log_hyperparameters(
    trainer: L.Trainer, cfg: DictConfig, net: torch.nn.Module, datamodule, mode: WandbMode
) -> None:
    """Hand the run's config and bookkeeping to every logger. Rank zero only: the loggers write
    nothing on the other ranks, so they need not run git or hash the data files either."""
    hparams = run_hparams(cfg, net, datamodule)
    wandb = wandb_loggers(trainer)
    # the W&B run starts here (at its first use) and records the command line: without secrets
    with redacted_argv(secret_values(OmegaConf.to_container(cfg, resolve=True))):
        for logger in trainer.loggers:
            # W&B: flat keys (model.depth, optimizer.lr, ...) are dashboard columns as they are
            logger.log_hyperparams(flatten(hparams) if logger in wandb else hparams)
    if mode.mode == "offline" and wandb:
        output_dir = cfg.paths.output_dir
        log.info(
            "W&B: %s, logging offline under %s/wandb. Upload later with "
            "`wandb sync %s/wandb/offline-run-*` (after `wandb login`), or set "
            "WANDB_MODE=disabled.",
            mode.reason,
            output_dir,
            output_dir,
        )


def finish(exit_code: int = 0, interrupted: str | None = None) -> None:
    """Close the W&B run, if one is open, with the task's exit code (non-zero: failed on the
    dashboard), so the next task or multirun job starts clean. An interrupted run (it can be
    resumed) is finished with exit code 0 and ``interrupted: <signal>`` in its summary (False once
    a resumed run finishes)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        if interrupted:
            wandb.run.summary["interrupted"] = interrupted
        # (a resumed run that has now finished; the summary has keys() but no __contains__)
        elif "interrupted" in wandb.run.summary.keys():  # noqa: SIM118
            wandb.run.summary["interrupted"] = False
        wandb.finish(exit_code=exit_code)
