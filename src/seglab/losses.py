"""Segmentation losses on (N, C, H, W) logits and (N, H, W) class-index targets.

All of them skip pixels whose target is ``ignore_index``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """Per-pixel softmax cross-entropy, as in the U-Net paper, with optional class weights."""

    def __init__(
        self,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = 255,
        label_smoothing: float = 0.0,
    ):
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        super().__init__(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)


class DiceLoss(nn.Module):
    """Soft Dice loss, ``1 - mean over classes of 2|P∩T| / (|P| + |T|)``.

    Intersections and sizes are summed over the whole batch ("batch Dice", as nnU-Net), so a class
    absent from one image does not produce a 0/0.

    Args:
        include_background: include class 0 in the mean (nnU-Net leaves it out).
        smooth: added to numerator and denominator.
    """

    def __init__(
        self, ignore_index: int = 255, include_background: bool = False, smooth: float = 1e-5
    ):
        super().__init__()
        self.ignore_index = ignore_index
        self.include_background = include_background
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[1]
        valid = (target != self.ignore_index).unsqueeze(1)
        probs = logits.float().softmax(dim=1) * valid
        one_hot = F.one_hot(torch.where(valid.squeeze(1), target, 0), num_classes)
        one_hot = one_hot.permute(0, 3, 1, 2).to(probs.dtype) * valid
        dims = (0, 2, 3)
        intersection = (probs * one_hot).sum(dims)
        cardinality = probs.sum(dims) + one_hot.sum(dims)
        dice = (2 * intersection + self.smooth) / (cardinality + self.smooth)
        if not self.include_background and num_classes > 1:
            dice = dice[1:]
        return 1 - dice.mean()


class DiceCELoss(nn.Module):
    """``ce_weight * cross-entropy + dice_weight * Dice`` (the nnU-Net default)."""

    def __init__(
        self,
        ignore_index: int = 255,
        class_weights: Sequence[float] | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        include_background: bool = False,
    ):
        super().__init__()
        self.ce = CrossEntropyLoss(class_weights, ignore_index)
        self.dice = DiceLoss(ignore_index, include_background)
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.ce_weight * self.ce(logits, target) + self.dice_weight * self.dice(
            logits, target
        )
