"""The metrics seglab reports, built on torchmetrics.

How they are averaged (the same on train, val and test):

* Pixels are accumulated **globally** over the whole epoch (every image, every process under DDP):
  per class, true positives, false positives and false negatives are summed first, then
  ``IoU_c = TP / (TP + FP + FN)`` and ``Dice_c = 2 TP / (2 TP + FP + FN)``. This is the
  PASCAL VOC / Cityscapes convention, not a mean of per-image scores.
* ``iou`` and ``dice`` are the unweighted mean over classes **including background**; classes
  that neither occur nor are predicted in the epoch are left out of the mean. Per-class values
  (``iou/<class>``, ``dice/<class>``) are logged too, so the foreground alone is always visible.
* ``accuracy`` is the fraction of correctly classified pixels.
* Pixels whose target is ``ignore_index`` count nowhere.
* ``confusion`` (not logged as a scalar) counts pixels per (true class, predicted class); the
  run report and W&B confusion matrix are made from it.
"""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassConfusionMatrix


class SegmentationMetrics(MulticlassConfusionMatrix):
    """torchmetrics' confusion matrix (its update: one bincount per batch, ``ignore_index``
    skipped, summed across processes), with IoU, Dice and accuracy derived from it in ``compute``.

    One state updated once per batch: the same values as torchmetrics' ``MulticlassJaccardIndex``,
    ``MulticlassF1Score`` (macro and per class) and ``MulticlassAccuracy`` (micro), which would
    each redo the counting on every batch (tests/test_metrics.py checks the equality).
    """

    def compute(self) -> dict[str, torch.Tensor]:
        confusion = super().compute()
        counts = confusion.double()
        tp = counts.diag()
        fp, fn = counts.sum(0) - tp, counts.sum(1) - tp
        present = (tp + fp + fn) > 0  # classes neither true nor predicted: out of the means
        iou = torch.where(present, tp / (tp + fp + fn).clamp_min(1), 0.0)
        dice = torch.where(present, 2 * tp / (2 * tp + fp + fn).clamp_min(1), 0.0)
        kept = present.sum().clamp_min(1)
        return {
            "iou": (iou.sum() / kept).float(),
            "dice": (dice.sum() / kept).float(),
            "accuracy": (tp.sum() / counts.sum().clamp_min(1)).float(),
            "iou_per_class": iou.float(),
            "dice_per_class": dice.float(),
            "confusion": confusion,
        }


def segmentation_metrics(num_classes: int, ignore_index: int) -> SegmentationMetrics:
    """IoU and Dice (mean and per class), pixel accuracy and the confusion matrix (pixel counts,
    rows = true class) from per-pixel class predictions."""
    return SegmentationMetrics(
        num_classes=num_classes, ignore_index=ignore_index, validate_args=False
    )
