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

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Count (true, predicted) pairs of class indices in one ``torch.bincount``: bin 0 holds
        the ``ignore_index`` pixels (dropped), bin ``1 + true * C + predicted`` the others.
        torchmetrics' own update (the same counts) first copies the kept pixels out by boolean
        indexing, and under ``trainer.deterministic=true`` replaces the bincount (deterministic
        without weights) by a (pixels x C^2) comparison tensor: 1.8 GB for a batch of eight
        256x256 masks of VOC's 21 classes."""
        n = self.num_classes
        target = target.flatten().long()
        pairs = target * n + preds.flatten().long() + 1
        if self.ignore_index is not None:
            pairs = torch.where(target == self.ignore_index, 0, pairs)
        counts = torch.bincount(pairs, minlength=n * n + 1)
        if counts.numel() > n * n + 1:  # a target >= n: no bin of the matrix
            raise ValueError(
                f"a mask holds a class index >= {n} (the number of classes) that is not "
                f"ignore_index={self.ignore_index}: fix the masks, or set data.class_names / "
                "data.ignore_index to match them (seglab-inspect data=... lists the mask values)"
            )
        self.confmat += counts[1:].reshape(n, n)

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
