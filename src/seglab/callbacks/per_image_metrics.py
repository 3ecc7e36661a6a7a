"""Which images fail: Dice and IoU of every image of a test (or validate-only) run, worst first.

:class:`PerImageMetrics` takes each test (or ``trainer.validate``) batch's predictions from the
module's step (``outputs["preds"]``, ``outputs["target"]``: see :mod:`seglab.module`) and scores
each image alone with the metrics training reports (:func:`seglab.metrics.segmentation_metrics`:
mean over the classes present in the image or predicted in it, ``ignore_index`` pixels and the
batch padding left out). At the end it writes ``<dirpath>/<stage>/per_image.csv`` sorted by Dice,
worst first (images whose pixels are all ignored last), with the image's name from the dataset's
``source(index)`` (the file, relative to the data root; ``sample <index>`` for generated data),
and logs the same rows as ``<stage>/per_image`` (a ``wandb.Table``) to every W&B logger.

One process: the rows are the images this process evaluated (seglab-eval runs on one device).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from seglab.data.validation import source_of
from seglab.metrics import segmentation_metrics
from seglab.tracking import wandb_loggers
from seglab.utils.tables import csv_text, write_atomic

log = logging.getLogger(__name__)


def first_dataset(loaders):
    """The raw dataset of the (first) loader (inside seglab's TransformedDataset), or None."""
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    if isinstance(loaders, list | tuple):
        loaders = loaders[0] if loaders else None
    dataset = getattr(loaders, "dataset", None)
    return getattr(dataset, "dataset", dataset)


def sort_worst_first(rows: list[dict]) -> list[dict]:
    """Rows by Dice, lowest first; NaN (nothing to score) last."""
    return sorted(rows, key=lambda row: (math.isnan(row["dice"]), row["dice"]))


class PerImageMetrics(L.Callback):
    """Per-image Dice / IoU after testing (or validate-only); see the module docstring.

    Args:
        dirpath: the report folder (the run dir's ``report/``); the CSV goes into ``<stage>/``.
    """

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)
        self.rows: list[dict] = []
        self._metrics = None
        self._seen = 0

    # --- collecting ----------------------------------------------------------------------------
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(pl_module)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # not the validations during fit
            self._start(pl_module)

    def _start(self, pl_module: L.LightningModule) -> None:
        self.rows, self._seen = [], 0
        metrics = segmentation_metrics(len(pl_module.class_names), pl_module.ignore_index)
        metrics.sync_on_compute = False  # one image of this process, never across processes
        self._metrics = metrics.to(pl_module.device)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._collect(trainer.test_dataloaders, pl_module, outputs)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._collect(trainer.val_dataloaders, pl_module, outputs)

    def _collect(self, loaders, pl_module: L.LightningModule, outputs) -> None:
        if not isinstance(outputs, dict) or "preds" not in outputs:
            raise TypeError(
                f"PerImageMetrics needs {type(pl_module).__name__}'s test/validation step to "
                "return {'preds': ..., 'target': ...} (seglab's SegmentationModule does)"
            )
        dataset = first_dataset(loaders)
        for preds, target in zip(outputs["preds"], outputs["target"], strict=True):
            self.rows.append(self._score(preds, target, pl_module, dataset))
            self._seen += 1

    def _score(self, preds, target, pl_module, dataset) -> dict:
        self._metrics.update(preds[None], target[None])
        values = self._metrics.compute()
        self._metrics.reset()
        source = source_of(dataset, self._seen) if dataset is not None else None
        row = {
            "index": self._seen,
            "image": source.image if source else str(self._seen),
            "dice": float(values["dice"]),
            "iou": float(values["iou"]),
            "accuracy": float(values["accuracy"]),
            "pixels": int((target != pl_module.ignore_index).sum()),
        }
        present = values["confusion"].sum(0) + values["confusion"].sum(1) > 0
        for c, name in enumerate(pl_module.class_names):
            row[f"dice/{name}"] = float(values["dice_per_class"][c]) if present[c] else math.nan
        return row

    # --- writing -------------------------------------------------------------------------------
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer, "test")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            self.write(trainer, "val")

    def write(self, trainer: L.Trainer, stage: str) -> None:
        self.rows = sort_worst_first(self.rows)
        if not trainer.is_global_zero or not self.rows:
            return
        path = self.dirpath / stage / "per_image.csv"
        columns = list(self.rows[0])
        write_atomic(path, csv_text(self.rows, columns))
        for logger in wandb_loggers(trainer):
            import wandb

            table = wandb.Table(columns=columns, data=[list(r.values()) for r in self.rows])
            logger.log_metrics({f"{stage}/per_image": table}, step=trainer.global_step)
        log.info("Per-image metrics (%s, %d images, worst first): %s", stage, len(self.rows), path)
