"""SegmentationModule: a :class:`seglab.models.SegmentationNet` trained with a configurable loss,
optimiser and scheduler, and measured with :mod:`seglab.metrics`.

Logged names: ``<stage>/loss``, ``<stage>/iou``, ``<stage>/dice``, ``<stage>/accuracy``,
``<stage>/iou/<class>``, ``<stage>/dice/<class>`` for stage in train, val, test, and
``val/dice_best``, the best validation Dice so far. The latest confusion matrix of each stage (pixel
counts, rows = true class) is kept in ``confusion_matrices[stage]`` for callbacks to report.
A non-finite training loss stops the run with :class:`FloatingPointError` (the run diverged),
naming the last good checkpoint.
``validation_step`` and ``test_step`` return ``{"preds": class indices, "target": mask}`` (N x h x
w, the mask aligned to the logits), which callbacks receive as ``outputs`` in
``on_{validation,test}_batch_end`` (per-image metrics, :class:`seglab.callbacks.PerImageMetrics`).
Every checkpoint carries the ``card`` (a :class:`seglab.inference.card.ModelCard`: network config,
classes, normalisation, ...) under ``checkpoint["seglab"]``, so that it is usable without the
training config (``seglab.load_model``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric

from seglab.metrics import segmentation_metrics
from seglab.models.base import SegmentationNet
from seglab.schedules import Budget, build_scheduler
from seglab.utils.argmax import class_argmax

if TYPE_CHECKING:
    from seglab.inference.card import ModelCard

# Epoch values are synchronised by torchmetrics before they are logged (see _log_epoch_metrics).
warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting")

STAGES = ("train", "val", "test")
OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class SegmentationModule(L.LightningModule):
    """Trains ``net`` for per-pixel classification.

    Args:
        net: maps (N, in_channels, H, W) to (N, num_classes, h, w) logits; the loss and metrics
            compare them with ``net.align_target(mask, logits)`` (the mask itself, or its centre
            for a network whose output is smaller).
        loss: called as ``loss(logits, target)`` with int64 (N, H, W) targets.
        optimizer: factory ``optimizer(params=...)``, e.g. a Hydra ``_partial_`` of AdamW.
        scheduler: optional factory ``scheduler(optimizer=...)``, stepped once per epoch; a
            :class:`seglab.schedules.BudgetSchedule` is also given the run's step / time budget
            and stepped after every optimiser step.
        class_names: one name per class index, used in per-class metric names.
        ignore_index: target value excluded from the metrics (the loss has its own setting).
        card: what inference needs (``ModelCard``), saved in every checkpoint; None saves none.
    """

    def __init__(
        self,
        net: SegmentationNet,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        class_names: Sequence[str] = ("background", "foreground"),
        ignore_index: int = 255,
        card: ModelCard | None = None,
    ):
        super().__init__()
        self.card = card
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        num_classes = len(self.class_names)
        # ModuleDict keys may not be "train" (nn.Module.train): key by "<stage>_".
        self.metrics = nn.ModuleDict(
            {f"{stage}_": segmentation_metrics(num_classes, ignore_index) for stage in STAGES}
        )
        self.mean_loss = nn.ModuleDict({f"{stage}_": MeanMetric() for stage in STAGES})
        self.val_dice_best = MaxMetric()
        self.confusion_matrices: dict[str, torch.Tensor] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        images, masks = batch["image"], batch["mask"]
        logits = self(images)
        masks = self.net.align_target(masks, logits)
        loss = self.loss(logits, masks)
        if stage == "train" and not torch.isfinite(loss):
            self._diverged(loss)
        preds = class_argmax(logits)
        self.metrics[f"{stage}_"].update(preds, masks)
        self.mean_loss[f"{stage}_"].update(loss.detach(), weight=images.shape[0])
        if stage == "train":
            # the running loss in the progress bar; the logged train/loss is the epoch mean
            self.log("loss", loss, prog_bar=True, logger=False, on_step=True, on_epoch=False)
        return {"loss": loss, "preds": preds, "target": masks}

    def _log_epoch_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        """Compute, log and reset the stage's loss and metrics.

        torchmetrics synchronises the states across processes here, in a hook every rank runs in
        the same order; so the values are logged without Lightning's own sync_dist, whose extra
        collectives (started by rank zero's progress bar alone) could deadlock the ranks.
        """
        values = self.metrics[f"{stage}_"].compute()
        self.metrics[f"{stage}_"].reset()
        logged = {f"{stage}/loss": self.mean_loss[f"{stage}_"].compute()}
        self.mean_loss[f"{stage}_"].reset()
        self.confusion_matrices[stage] = values["confusion"].cpu()
        logged.update({f"{stage}/{name}": values[name] for name in ("iou", "dice", "accuracy")})
        for name in ("iou", "dice"):
            per_class = values[f"{name}_per_class"]
            for class_name, value in zip(self.class_names, per_class, strict=True):
                logged[f"{stage}/{name}/{class_name}"] = value
        self.log_dict(logged)
        return logged

    def _diverged(self, loss: torch.Tensor) -> None:
        lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else None
        raise FloatingPointError(
            f"the training loss is {loss.item()} at epoch {self.current_epoch}, step "
            f"{self.global_step}: training diverged (learning rate {lr}). Lower optimizer.lr, "
            "or check the data for NaN/inf values (seglab-inspect data=...). "
            f"{self._last_good_checkpoint()}"
        )

    def _last_good_checkpoint(self) -> str:
        """The newest checkpoint file the trainer's checkpoint callbacks saved (all before the
        divergence: a non-finite loss stops the step before it changes any weight)."""
        callbacks = self.trainer.checkpoint_callbacks if self._trainer is not None else []
        paths = [
            getattr(c, a, "") for c in callbacks for a in ("last_model_path", "best_model_path")
        ]
        saved = [Path(p) for p in paths if p and Path(p).is_file()]
        if not saved:
            return "No checkpoint was saved before it."
        newest = max(saved, key=lambda path: path.stat().st_mtime)
        return (
            f"The last good checkpoint: {newest} (continue from it with python train.py "
            f"resume={newest.parent.parent} ckpt_path={newest} optimizer.lr=<lower>)."
        )

    def on_train_start(self) -> None:
        # The sanity-check validation counts towards nothing (nor the best score, which a
        # resumed fit has from its checkpoint: see on_load_checkpoint).
        self.metrics["val_"].reset()
        self.mean_loss["val_"].reset()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")["loss"]

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict:
        step = self._step(batch, "val")
        return {"preds": step["preds"], "target": step["target"]}

    def on_validation_epoch_end(self) -> None:
        logged = self._log_epoch_metrics("val")
        if self.trainer.sanity_checking:
            return
        self.val_dice_best.update(logged["val/dice"])
        self.log("val/dice_best", self.val_dice_best.compute(), prog_bar=True)

    def on_fit_end(self) -> None:
        # A resumed fit with nothing left to train (stopped after its last epoch) runs no
        # validation: its result is still the best score so far, restored from the checkpoint.
        best = self.val_dice_best.max_value
        if "val/dice_best" not in self.trainer.callback_metrics and torch.isfinite(best):
            self.trainer.callback_metrics["val/dice_best"] = best.detach().clone()

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict:
        step = self._step(batch, "test")
        return {"preds": step["preds"], "target": step["target"]}

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self(batch["image"]).softmax(dim=1)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.card is not None:
            checkpoint["seglab"] = self.card.to_dict()
        # the best validation Dice so far (the same on every rank: it follows synced values)
        checkpoint["val_dice_best"] = self.val_dice_best.max_value.detach().cpu().clone()
        checkpoint["train_metric_states"] = self._train_metric_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._trainer is None or self.trainer.state.fn != "fit":
            return  # evaluating a checkpoint: val/dice_best is that validation's
        best = checkpoint.get("val_dice_best")
        self.val_dice_best.reset()
        if best is not None and torch.isfinite(best):
            self.val_dice_best.update(best.to(self.val_dice_best.max_value.device))
        self._load_train_metric_states(checkpoint.get("train_metric_states"))

    # A checkpoint saved mid-epoch carries the train loss and metrics accumulated so far in that
    # epoch, every rank's (one gather: every rank saves a checkpoint), so that the resumed epoch's
    # train/loss, train/dice... cover the whole epoch, as in a run that was never stopped.
    def _train_metric_states(self) -> dict[str, Any]:
        metrics = {"metrics": self.metrics["train_"], "loss": self.mean_loss["train_"]}
        states = {
            name: {key: value.detach().clone() for key, value in metric.metric_state.items()}
            for name, metric in metrics.items()
        }
        world_size = self.trainer.world_size if self._trainer is not None else 1
        if world_size > 1:
            states = self.all_gather(states)  # (world_size, ...) per state
        else:
            states = {n: {k: v.unsqueeze(0) for k, v in s.items()} for n, s in states.items()}
        cpu = {n: {k: v.cpu() for k, v in s.items()} for n, s in states.items()}
        return {"world_size": world_size, "states": cpu}

    def _load_train_metric_states(self, saved: dict[str, Any] | None) -> None:
        if not saved or saved.get("world_size") != self.trainer.world_size:
            return  # an older checkpoint, or another number of processes: the epoch's rest
        rank = self.trainer.global_rank
        metrics = {"metrics": self.metrics["train_"], "loss": self.mean_loss["train_"]}
        for name, metric in metrics.items():
            metric.reset()
            states = saved["states"][name]
            metric.merge_state(
                {k: v[rank].to(getattr(metric, k).device) for k, v in states.items()}
            )

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler, interval = build_scheduler(
            self.scheduler_factory, optimizer, lambda: Budget.of(self.trainer)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval},
        }
