"""Where the model fails, per class: IoU, Dice, support and the confusion matrix of an evaluation.

:class:`SegmentationReport` runs at the end of testing, and at the end of a validate-only run
(``train=false``), on rank zero. It reads the per-class metrics the module logged
(``<stage>/iou/<class>``, ``<stage>/dice/<class>``, synchronised over the ranks) and the module's
confusion matrix of that stage (``confusion_matrices[stage]``: pixel counts, rows = true class),
and writes into ``<dirpath>/<stage>/``:

- ``per_class.csv`` and ``per_class.md``: class, IoU, Dice, support (ground-truth pixels);
- ``confusion_matrix.csv`` (pixel counts) and ``confusion_matrix.png`` (row-normalised heatmap:
  which fraction of each true class's pixels went to each predicted class);

and for every W&B logger ``<stage>/per_class`` (a ``wandb.Table``) and ``<stage>/confusion_matrix``
(W&B's own confusion-matrix chart, built from the pixel counts: one table row per class pair,
never one per pixel).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn

from seglab.callbacks.prediction_images import class_names_of
from seglab.tracking import wandb_loggers
from seglab.utils.overlay import new_figure

log = logging.getLogger(__name__)

COLUMNS = ("class", "iou", "dice", "support")
ANNOTATE_UP_TO = 20  # classes; beyond, the heatmap cells are too small for numbers


def per_class_rows(
    metrics: dict, confusion: np.ndarray, class_names: list[str], stage: str
) -> list[dict]:
    """One row per class: the logged IoU and Dice (NaN if not logged) and its true pixels."""

    def value(name: str) -> float:
        logged = metrics.get(name)
        return float(logged) if logged is not None else float("nan")

    support = confusion.sum(axis=1)
    return [
        {
            "class": name,
            "iou": value(f"{stage}/iou/{name}"),
            "dice": value(f"{stage}/dice/{name}"),
            "support": int(support[c]),
        }
        for c, name in enumerate(class_names)
    ]


def write_per_class(rows: list[dict], folder: Path, stage: str, metrics: dict) -> list[Path]:
    csv_path, md_path = folder / "per_class.csv", folder / "per_class.md"
    with open(csv_path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"# Per-class {stage} metrics",
        "",
        "| class | IoU | Dice | support (pixels) |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {r['class']} | {r['iou']:.4f} | {r['dice']:.4f} | {r['support']} |" for r in rows),
    ]
    means = [
        f"{name} {float(metrics[f'{stage}/{name}']):.4f}"
        for name in ("iou", "dice")
        if f"{stage}/{name}" in metrics
    ]
    if means:
        lines += [
            "",
            f"Mean over classes (as logged as `{stage}/iou`, `{stage}/dice`): " + ", ".join(means),
        ]
    md_path.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]


def write_confusion_csv(confusion: np.ndarray, class_names: list[str], path: Path) -> Path:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["true \\ predicted", *class_names])
        for name, counts in zip(class_names, confusion.tolist(), strict=True):
            writer.writerow([name, *counts])
    return path


def row_normalised(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (a class with no true pixels stays 0)."""
    totals = confusion.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)


def save_confusion_png(
    confusion: np.ndarray, class_names: list[str], path: Path, title: str
) -> Path:
    """Heatmap of the row-normalised matrix, true class down, predicted class across."""
    fractions = row_normalised(confusion)
    n = len(class_names)
    side = max(3.5, 0.55 * n + 2.0)
    figure = new_figure(side + 1.0, side)
    ax = figure.subplots()
    heatmap = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(heatmap, ax=ax, fraction=0.046, pad=0.04, label="fraction of true pixels")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    if n <= ANNOTATE_UP_TO:
        for (row, column), fraction in np.ndenumerate(fractions):
            colour = "white" if fraction > 0.5 else "black"
            ax.text(
                column, row, f"{fraction:.2f}", ha="center", va="center", fontsize=7, color=colour
            )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def wandb_confusion_matrix(confusion: np.ndarray, class_names: list[str], title: str):
    """W&B's confusion-matrix chart (preset ``wandb/confusion_matrix/v1``, as
    ``wandb.plot.confusion_matrix`` makes it) from pixel counts: n x n rows
    (Actual, Predicted, nPredictions) instead of one label pair per pixel."""
    import wandb

    data = [
        [class_names[actual], class_names[predicted], int(count)]
        for (actual, predicted), count in np.ndenumerate(confusion)
    ]
    table = wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=data)
    fields = {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"}
    return wandb.plot.plot_table(
        vega_spec_name="wandb/confusion_matrix/v1",
        data_table=table,
        fields=fields,
        string_fields={"title": title},
    )


class SegmentationReport(L.Callback):
    """Per-class metrics and the confusion matrix after testing (or validate-only), rank zero.

    Args:
        dirpath: the report folder (the run dir's ``report/``); each stage writes into its own
            subfolder, ``test/`` or ``val/``.
    """

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.report(trainer, pl_module, "test")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # not the validations during fit
            self.report(trainer, pl_module, "val")

    def report(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        confusion = getattr(pl_module, "confusion_matrices", {}).get(stage)
        if confusion is None:
            rank_zero_warn(
                f"SegmentationReport: {type(pl_module).__name__} has no confusion_matrices"
                f"['{stage}'] (seglab's SegmentationModule keeps one per stage); no report."
            )
            return
        confusion = torch.as_tensor(confusion).cpu().numpy().astype(np.int64)
        class_names = class_names_of(trainer, pl_module, len(confusion))
        metrics = dict(trainer.callback_metrics)
        rows = per_class_rows(metrics, confusion, class_names, stage)
        folder = self.dirpath / stage
        folder.mkdir(parents=True, exist_ok=True)
        title = f"{stage} confusion matrix (row-normalised), step {trainer.global_step}"
        written = [
            *write_per_class(rows, folder, stage, metrics),
            write_confusion_csv(confusion, class_names, folder / "confusion_matrix.csv"),
            save_confusion_png(confusion, class_names, folder / "confusion_matrix.png", title),
        ]
        for logger in wandb_loggers(trainer):
            import wandb

            table = wandb.Table(columns=list(COLUMNS), data=[list(r.values()) for r in rows])
            chart = wandb_confusion_matrix(confusion, class_names, f"{stage} confusion matrix")
            logger.log_metrics(
                {f"{stage}/per_class": table, f"{stage}/confusion_matrix": chart},
                step=trainer.global_step,
            )
        log.info("Segmentation report (%s): wrote %s", stage, ", ".join(map(str, written)))
