"""The training task: ``python train.py [overrides]`` or ``seglab-train [overrides]``.

Composes ``conf/train.yaml``, instantiates data, network, module, callbacks, loggers and trainer,
fits (resuming from ``ckpt_path`` when given), tests the best checkpoint and returns
``cfg.optimized_metric`` so that Hydra sweepers can optimise it.
"""

from __future__ import annotations

import logging
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

from seglab.checkpoints import check_fits
from seglab.config import CONFIG_DIR
from seglab.data.checks import check_data
from seglab.module import SegmentationModule
from seglab.preflight import check_config
from seglab.utils.config_tree import print_config_tree
from seglab.utils.ddp_multirun import multirun_job
from seglab.utils.instantiate import instantiate_named
from seglab.utils.run_info import (
    data_fingerprint,
    distinguishing_overrides,
    flatten,
    git_info,
    hydra_overrides,
    run_name,
    sweep_group,
    wandb_run_id,
)
from seglab.utils.wandb_mode import ensure_wandb_mode

log = logging.getLogger(__name__)


def finish_wandb() -> None:
    """Close the W&B run, if one is open, so the next task or multirun job starts clean."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def check_compatible(net: torch.nn.Module, datamodule) -> None:
    """Fail before training when the network and the data disagree on channels or classes."""
    in_channels = getattr(net, "in_channels", None)
    if in_channels is not None and in_channels != datamodule.in_channels:
        raise ValueError(
            f"model.in_channels={in_channels} but the data has {datamodule.in_channels} "
            f"channel(s); set model.in_channels={datamodule.in_channels}"
        )
    num_classes = getattr(net, "num_classes", None)
    if num_classes is not None and num_classes != datamodule.num_classes:
        raise ValueError(
            f"model.num_classes={num_classes} but data.class_names has {datamodule.num_classes} "
            f"entries {datamodule.class_names}; set model.num_classes={datamodule.num_classes}"
        )


def check_ckpt_path(cfg: DictConfig) -> None:
    """A wrong checkpoint path fails before anything starts, naming the path and the fix."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path and not Path(ckpt_path).is_file():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path} does not exist. Point it at a .ckpt file, e.g. "
            "logs/train/runs/<run>/checkpoints/last.ckpt, or leave it unset to start fresh."
        )
    if not cfg.get("train", True) and not ckpt_path:
        raise ValueError("train=false evaluates a checkpoint: also set ckpt_path=<path to .ckpt>")


def model_name(cfg: DictConfig) -> str:
    """The model's config name (``unet``, ``resunet``, ...), the first part of run names."""
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("model")
        if choice:
            return choice
    return cfg.model._target_.rsplit(".", 1)[-1].lower()


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


def run_hparams(cfg: DictConfig, net: torch.nn.Module, datamodule) -> dict[str, Any]:
    """The resolved config plus what reproduces and compares the run: overrides, git state,
    data fingerprint and parameter count."""
    hparams = OmegaConf.to_container(cfg, resolve=True)
    hparams["overrides"] = " ".join(hydra_overrides())
    hparams["git"] = git_info(hydra.utils.get_original_cwd() if HydraConfig.initialized() else ".")
    hparams["data"]["fingerprint"] = data_fingerprint(datamodule.datasets)
    hparams["model"]["params"] = sum(p.numel() for p in net.parameters())
    return hparams


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training (and test) task; returns the final metrics as floats."""
    check_ckpt_path(cfg)
    check_config(cfg)
    wandb_mode = ensure_wandb_mode()
    complete_wandb_config(cfg, wandb_mode)
    output_dir = Path(cfg.paths.output_dir)
    print_config_tree(cfg, save_to=output_dir / "config_tree.log")
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    log.info("Instantiating data <%s>", cfg.data._target_)
    datamodule = hydra.utils.instantiate(cfg.data)
    log.info("Instantiating model <%s>", cfg.model._target_)
    net = hydra.utils.instantiate(cfg.model)
    check_compatible(net, datamodule)
    check_fits(cfg.get("ckpt_path"), net)
    if cfg.get("check_data", True):
        check_data(datamodule, max_samples=cfg.get("check_data_samples"))
    module = SegmentationModule(
        net=net,
        loss=hydra.utils.instantiate(cfg.loss),
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        class_names=datamodule.class_names,
        ignore_index=datamodule.ignore_index,
    )
    callbacks = instantiate_named(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_named(cfg.get("logger"), "logger")
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)

    log_run_info(trainer, cfg, net, datamodule, wandb_mode)

    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        # test the best checkpoint of this fit
        ckpt_path = (
            trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        )
        if not ckpt_path:
            log.warning("No best checkpoint was saved: testing the current weights")
            ckpt_path = None
    else:
        trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}

    if cfg.get("test", True):
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})

    log_summary(trainer, metrics)
    return metrics


@rank_zero_only
def log_run_info(trainer: L.Trainer, cfg: DictConfig, net, datamodule, wandb_mode: str) -> None:
    """Hand the run's config and bookkeeping to every logger. Rank zero only: the loggers write
    nothing on the other ranks, so they need not run git or hash the data files either."""
    hparams = run_hparams(cfg, net, datamodule)
    wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
    for logger in trainer.loggers:
        # W&B: flat keys (model.depth, optimizer.lr, ...) are dashboard columns as they are
        logger.log_hyperparams(flatten(hparams) if logger in wandb_loggers else hparams)
    if wandb_mode == "offline" and wandb_loggers:
        output_dir = cfg.paths.output_dir
        log.info(
            "W&B: no credentials found, logging offline under %s/wandb. Upload later with "
            "`wandb sync %s/wandb/offline-run-*` (after `wandb login`), or set "
            "WANDB_MODE=disabled.",
            output_dir,
            output_dir,
        )


@rank_zero_only
def log_summary(trainer: L.Trainer, metrics: dict[str, float]) -> None:
    shown = {k: round(v, 4) for k, v in metrics.items() if k.count("/") == 1 or k.endswith("best")}
    log.info("Final metrics: %s", shown)
    if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path:
        log.info("Best checkpoint: %s", trainer.checkpoint_callback.best_model_path)


def metric_value(metrics: dict[str, float], name: str | None) -> float | None:
    """The value a sweeper optimises; a clear error when the configured name was never logged."""
    if not name:
        return None
    if name not in metrics:
        raise KeyError(
            f"optimized_metric={name!r} was not logged. Logged metrics: {sorted(metrics)}. "
            "Set optimized_metric to one of them."
        )
    return metrics[name]


def run_task(cfg: DictConfig) -> dict[str, Any]:
    """Train, and always close the W&B run (also on an exception) so nothing stays open.

    In a multirun (``-m``) the job runs inside :func:`multirun_job`, so that DDP children run this
    job only and the next job starts with a clean process group.
    """
    try:
        with multirun_job():
            return train(cfg)
    finally:
        finish_wandb()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = run_task(cfg)
    return metric_value(metrics, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
