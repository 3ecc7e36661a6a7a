"""The training task: ``python train.py [overrides]`` or ``seglab-train [overrides]`` (both
:func:`seglab.cli.train`, which imports this module when the job runs).

Composes ``conf/train.yaml``, instantiates data, network, module, callbacks, loggers and trainer,
fits (resuming from ``ckpt_path`` when given), tests the best checkpoint and returns
``cfg.optimized_metric`` so that Hydra sweepers can optimise it. W&B and run bookkeeping live in
:mod:`seglab.tracking`; :func:`run_task` is :func:`train` behind its ``task_wrapper`` (the W&B run
is always finished, with the exit code: 1 on errors, 143 on SIGTERM, 130 on Ctrl-C).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from seglab import tracking
from seglab.checkpoints import CheckpointError, check_fits
from seglab.data.bad_samples import report_bad_samples
from seglab.data.checks import check_data
from seglab.inference.card import ModelCard
from seglab.models.base import SegmentationNet
from seglab.module import SegmentationModule
from seglab.preflight import check_config
from seglab.resume import continue_csv_logs
from seglab.sweeps.trial import PRUNED_EPOCH, TrialPruning, pruning_callback, raise_if_pruned
from seglab.utils.config_tree import print_config_tree
from seglab.utils.instantiate import instantiate_named
from seglab.utils.redact import redact

log = logging.getLogger(__name__)


def check_compatible(net: SegmentationNet, datamodule) -> None:
    """Fail before training when the network is not a SegmentationNet, or when it and the data
    disagree on channels or classes."""
    if not isinstance(net, SegmentationNet):
        raise TypeError(
            f"model._target_ built a {type(net).__name__}, not a seglab.models.SegmentationNet: "
            "derive your network from it (see seglab/models/base.py)"
        )
    if net.in_channels != datamodule.in_channels:
        raise ValueError(
            f"model.in_channels={net.in_channels} but the data has {datamodule.in_channels} "
            f"channel(s); set model.in_channels={datamodule.in_channels}"
        )
    if net.num_classes != datamodule.num_classes:
        raise ValueError(
            f"model.num_classes={net.num_classes} but data.class_names has "
            f"{datamodule.num_classes} entries {datamodule.class_names}; set "
            f"model.num_classes={datamodule.num_classes}"
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


@dataclass
class Objects:
    """What one run wires together."""

    datamodule: L.LightningDataModule
    net: torch.nn.Module
    module: SegmentationModule
    trainer: L.Trainer


def instantiate(cfg: DictConfig) -> Objects:
    """Data, network (checked against the data), module, callbacks, loggers and trainer."""
    log.info("Instantiating data <%s>", cfg.data._target_)
    datamodule = hydra.utils.instantiate(cfg.data)
    log.info("Instantiating model <%s>", cfg.model._target_)
    net = hydra.utils.instantiate(cfg.model)
    check_compatible(net, datamodule)
    check_fits(cfg.get("ckpt_path"), net)
    if cfg.get("check_data", True):
        # data.on_bad_sample=skip: the table is shown, and the loaders skip the bad samples
        strict = getattr(datamodule, "on_bad_sample", "fail") == "fail"
        check_data(datamodule, max_samples=cfg.get("check_data_samples"), strict=strict)
    module = SegmentationModule(
        net=net,
        loss=hydra.utils.instantiate(cfg.loss),
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        class_names=datamodule.class_names,
        ignore_index=datamodule.ignore_index,
        card=ModelCard.from_training(net, redact(OmegaConf.to_container(cfg.data, resolve=True))),
    )
    callbacks = instantiate_named(cfg.get("callbacks"), "callbacks")
    pruning = pruning_callback(cfg)  # a trial of a search with a pruner
    callbacks += [pruning] if pruning else []
    loggers = instantiate_named(cfg.get("logger"), "logger")
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    return Objects(datamodule=datamodule, net=net, module=module, trainer=trainer)


def instantiate_resumed(cfg: DictConfig) -> Objects:
    """:func:`instantiate` for ``resume=<run>``: a checkpoint that does not fit says which
    overrides to leave out; the run's CSV metrics are appended to."""
    try:
        run = instantiate(cfg)
    except CheckpointError as error:
        raise CheckpointError(
            f"resume={cfg.resume}: {error}. The run's own config fits its checkpoint: leave out "
            "the overrides given with resume= that change the model or the data's classes"
        ) from None
    continue_csv_logs(run.trainer.loggers, cfg.ckpt_path)
    return run


def fit_and_test(cfg: DictConfig, run: Objects) -> dict[str, float]:
    """Fit (or, for ``train=false``, validate the checkpoint), then test the best checkpoint."""
    trainer, module, datamodule = run.trainer, run.module, run.datamodule
    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        ckpt_path = best_checkpoint(trainer)  # test the best checkpoint of this fit
        if not ckpt_path:
            log.warning("No best checkpoint was saved: testing the current weights")
            ckpt_path = None
    else:
        trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    pruning = next((c for c in trainer.callbacks if isinstance(c, TrialPruning)), None)
    if pruning and pruning.pruned_epoch is not None:  # a pruned trial: not worth a test
        return {**metrics, PRUNED_EPOCH: float(pruning.pruned_epoch)}
    if cfg.get("test", True):
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})
    return metrics


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training (and test) task; returns the final metrics as floats."""
    check_ckpt_path(cfg)
    check_config(cfg)
    wandb_mode = tracking.prepare(cfg)
    print_config_tree(cfg, save_to=Path(cfg.paths.output_dir) / "config_tree.log")
    tracking.record_versions(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    run = instantiate_resumed(cfg) if cfg.get("resume") else instantiate(cfg)
    tracking.log_hyperparameters(run.trainer, cfg, run.net, run.datamodule, wandb_mode)
    metrics = fit_and_test(cfg, run)
    report_bad_samples(run.trainer.default_root_dir)  # data.on_bad_sample=skip
    log_summary(run.trainer, metrics)
    return metrics


# train() as a task: the W&B run always finished with the exit code; one job of a multirun
run_task = tracking.task_wrapper(train)


@rank_zero_only
def log_summary(trainer: L.Trainer, metrics: dict[str, float]) -> None:
    shown = {k: round(v, 4) for k, v in metrics.items() if k.count("/") == 1 or k.endswith("best")}
    log.info("Final metrics: %s", shown)
    if best := best_checkpoint(trainer):
        log.info("Best checkpoint: %s", best)


def best_checkpoint(trainer: L.Trainer) -> str:
    """The best checkpoint of the fit ("" without one; the interruption callback is a Lightning
    checkpoint callback that has no best)."""
    return getattr(trainer.checkpoint_callback, "best_model_path", "") or ""


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


def task(cfg: DictConfig) -> float | None:
    """The job ``seglab.cli.train`` runs (Hydra's task function): :func:`run_task`, then the
    value a sweeper optimises."""
    metrics = run_task(cfg)
    raise_if_pruned(metrics)
    return metric_value(metrics, cfg.get("optimized_metric"))


if __name__ == "__main__":
    from seglab import cli

    cli.train()
