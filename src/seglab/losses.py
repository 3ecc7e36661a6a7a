"""Segmentation losses on (N, C, H, W) logits and (N, H, W) class-index targets.

All of them skip pixels whose target is ``ignore_index``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seglab.border_weights import border_weights


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """Per-pixel softmax cross-entropy, as in the U-Net paper, with optional class weights and the
    paper's border weights (:mod:`seglab.border_weights`).

    Args:
        border_w0: the border term's height (the paper: 10); 0 turns the border weights off.
        border_sigma: its width in pixels (the paper: 5).
        border_objects_class: the class whose connected components are the objects to separate
            (ISBI 2012: the cells, class 0 ``background``; the gaps are the membrane).
    """

    def __init__(
        self,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = 255,
        label_smoothing: float = 0.0,
        border_w0: float = 0.0,
        border_sigma: float = 5.0,
        border_objects_class: int = 0,
    ):
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        super().__init__(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)
        if border_w0 < 0 or border_sigma <= 0:
            raise ValueError(
                f"border_w0={border_w0} and border_sigma={border_sigma}: the border weights need "
                "border_w0 >= 0 (0 turns them off) and border_sigma > 0 (pixels; the paper: 5)"
            )
        self.border_w0 = border_w0
        self.border_sigma = border_sigma
        self.border_objects_class = border_objects_class

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not self.border_w0:
            return super().forward(logits, target)
        if not 0 <= self.border_objects_class < logits.shape[1]:
            raise ValueError(
                f"border_objects_class={self.border_objects_class} is not one of the "
                f"{logits.shape[1]} classes of the logits: name the class of the objects to "
                "separate (0 to number of classes - 1)"
            )
        per_pixel = F.cross_entropy(
            logits,
            target,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            reduction="none",
        )
        weights = border_weights(
            target, self.border_objects_class, self.border_w0, self.border_sigma
        )
        valid = target != self.ignore_index
        if self.weight is not None:
            # as torch's weighted mean: sum(w_class * loss) / sum(w_class) over the valid pixels
            weights = weights * self.weight.to(weights.dtype)[torch.where(valid, target, 0)]
        weights = weights * valid
        return (per_pixel * weights).sum() / weights.sum().clamp_min(torch.finfo(weights.dtype).eps)


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
    """``ce_weight * cross-entropy + dice_weight * Dice`` (the nnU-Net default); the ``border_*``
    arguments weight the cross-entropy as :class:`CrossEntropyLoss`'s."""

    def __init__(
        self,
        ignore_index: int = 255,
        class_weights: Sequence[float] | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        include_background: bool = False,
        border_w0: float = 0.0,
        border_sigma: float = 5.0,
        border_objects_class: int = 0,
    ):
        super().__init__()
        self.ce = CrossEntropyLoss(
            class_weights,
            ignore_index,
            border_w0=border_w0,
            border_sigma=border_sigma,
            border_objects_class=border_objects_class,
        )
        self.dice = DiceLoss(ignore_index, include_background)
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.ce_weight * self.ce(logits, target) + self.dice_weight * self.dice(
            logits, target
        )
