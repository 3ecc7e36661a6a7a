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

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)


def segmentation_metrics(num_classes: int, ignore_index: int) -> MetricCollection:
    """IoU and Dice (mean and per class), pixel accuracy and the confusion matrix (pixel counts,
    rows = true class) from per-pixel class predictions."""
    common = {"num_classes": num_classes, "ignore_index": ignore_index, "validate_args": False}
    return MetricCollection(
        {
            "iou": MulticlassJaccardIndex(average="macro", **common),
            "dice": MulticlassF1Score(average="macro", **common),
            "accuracy": MulticlassAccuracy(average="micro", **common),
            "iou_per_class": MulticlassJaccardIndex(average="none", **common),
            "dice_per_class": MulticlassF1Score(average="none", **common),
            "confusion": MulticlassConfusionMatrix(**common),
        }
    )
