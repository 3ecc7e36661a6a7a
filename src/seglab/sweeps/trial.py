"""The job's side of an Optuna trial: pruning (``hydra.sweeper.pruner``).

The sweeper hands each job its trial through the job's own Hydra config: three
``hydra.job.env_set`` overrides (in ``.hydra/hydra.yaml``; Hydra sets them as environment
variables while the job runs, in whichever process or machine the launcher runs it, and DDP's
extra processes inherit them) name the storage, the study and the trial number. The job opens the
study there with the configured pruner.

:class:`TrialPruning` is a small Lightning callback of seglab's own rather than
optuna-integration's ``PyTorchLightningPruningCallback``: that one raises ``TrialPruned`` inside
``fit`` (no last checkpoint, an exception for the Trainer and for W&B) and under DDP needs a
trial, on an RDB storage, in every process. Here rank zero alone opens the study (any storage,
the journal file included), reports ``optimized_metric`` after each validation epoch and asks the
pruner; the decision is broadcast so that all ranks stop at the same step
(``trainer.should_stop``), the fit ends normally, the test stage is skipped and the job raises
``optuna.TrialPruned`` at the end, which the sweeper records as PRUNED.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

ENV_STORAGE = "SEGLAB_OPTUNA_STORAGE"
ENV_STUDY = "SEGLAB_OPTUNA_STUDY"
ENV_TRIAL = "SEGLAB_OPTUNA_TRIAL"
PRUNED_EPOCH = "trial/pruned_epoch"  # in train()'s metrics when the trial was pruned


def quoted(value: str) -> str:
    """``value`` as a quoted Hydra override value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def link_overrides(storage: str, study_name: str, number: int) -> list[str]:
    """The overrides that hand trial ``number`` to its job (see the module docstring)."""
    return [
        f"++hydra.job.env_set.{ENV_STORAGE}={quoted(storage)}",
        f"++hydra.job.env_set.{ENV_STUDY}={quoted(study_name)}",
        f"++hydra.job.env_set.{ENV_TRIAL}={number}",
    ]


@dataclass
class TrialLink:
    storage: str
    study_name: str
    number: int

    @classmethod
    def from_env(cls) -> TrialLink | None:
        if ENV_TRIAL not in os.environ:
            return None
        return cls(os.environ[ENV_STORAGE], os.environ[ENV_STUDY], int(os.environ[ENV_TRIAL]))

    def open(self, pruner):
        """This job's ``optuna.Trial`` in its study, judged by ``pruner``."""
        import optuna

        from seglab.sweeps.storage import open_storage

        study = optuna.load_study(
            study_name=self.study_name, storage=open_storage(self.storage), pruner=pruner
        )
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, self.number
        )
        return optuna.Trial(study, trial_id)


def configured_pruner(cfg: DictConfig):
    """``hydra.sweeper.pruner`` of this job's config (interpolations such as
    ``${trainer.max_epochs}`` resolved in the job's config), or None when none is configured."""
    if not HydraConfig.initialized():
        return None
    node = HydraConfig.get().sweeper.get("pruner")
    if not node:
        return None
    root = cfg.copy()
    with open_dict(root):
        root._sweeper_pruner = OmegaConf.to_container(node, resolve=False)
    return instantiate(root._sweeper_pruner)


class TrialPruning(L.Callback):
    """Report ``monitor`` to the trial after each validation epoch; stop when it is pruned."""

    def __init__(self, link: TrialLink, pruner, monitor: str) -> None:
        self.link, self.pruner, self.monitor = link, pruner, monitor
        self.trial = None
        self.pruned_epoch: int | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero:
            prune = self.report(trainer, trainer.current_epoch)
        prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            self.pruned_epoch = trainer.current_epoch
            trainer.should_stop = True
            if trainer.is_global_zero:
                log.info("Trial %d pruned at epoch %d", self.link.number, self.pruned_epoch)
                mark_pruned(trainer, self.pruned_epoch)

    def report(self, trainer: L.Trainer, epoch: int) -> bool:
        """Report this epoch's value; True when the trial is to stop here. The fit's last epoch
        is reported but never pruned: it would save no training, and the trial's value counts
        for the search (and for the sampler) only when it completes."""
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise KeyError(
                f"optimized_metric={self.monitor!r} was not logged by validation, so the pruner "
                f"has nothing to judge. Logged: {sorted(trainer.callback_metrics)}. Set "
                "optimized_metric to a validation metric, or hydra.sweeper.pruner=none"
            )
        if self.trial is None:
            self.trial = self.link.open(self.pruner)
        self.trial.report(float(value), step=epoch)
        max_epochs = trainer.max_epochs  # None or -1: no limit
        last = max_epochs is not None and max_epochs >= 0 and epoch >= max_epochs - 1
        return not last and self.trial.should_prune()


def mark_pruned(trainer: L.Trainer, epoch: int) -> None:
    """``pruned at epoch N`` in the W&B run (summary key and tag), when one is logging."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            run.summary["trial/pruned_epoch"] = epoch
            run.summary["trial/status"] = f"pruned at epoch {epoch}"
            run.tags = (*(run.tags or ()), "pruned")


def pruning_callback(cfg: DictConfig) -> TrialPruning | None:
    """The pruning callback of this job, when it runs a trial of a search with a pruner."""
    link, monitor = TrialLink.from_env(), cfg.get("optimized_metric")
    if link is None or not monitor:
        return None
    pruner = configured_pruner(cfg)
    return None if pruner is None else TrialPruning(link, pruner, monitor)


def raise_if_pruned(metrics: dict[str, float]) -> None:
    """End a pruned trial's job with ``optuna.TrialPruned`` (the sweeper records PRUNED); DDP's
    extra processes, which run the job in RUN mode, end normally."""
    from seglab.sweeps.context import in_multirun

    if PRUNED_EPOCH in metrics and in_multirun():
        import optuna

        raise optuna.TrialPruned(f"pruned at epoch {int(metrics[PRUNED_EPOCH])}")
