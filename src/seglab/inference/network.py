"""A :class:`Predictor`'s tiling and test-time augmentation as a network, for Lightning's loops.

``seglab-eval`` tests a checkpoint through the same :class:`seglab.module.SegmentationModule`
test (or validation) step as training, so that its metrics, per-class report and confusion
matrix are training's. With ``tta`` or ``tile_size`` set, that module's network is a
:class:`PredictorNet`: its forward is :meth:`Predictor.batch_probabilities` (each image of the
batch tiled and / or augmented), returned as log-probabilities, so that the step's ``argmax`` is
the predictor's mask and its softmax (in the loss) gives the averaged probabilities back.
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.inference.predictor import Predictor

# log(0) would be -inf; the smallest float32 probability keeps the loss finite
SMALLEST = torch.finfo(torch.float32).tiny


class PredictorNet(nn.Module):
    """``predictor.net`` behind ``predictor``'s tiling and TTA; (N, C, H, W) -> log-probabilities.

    The network is a submodule, so Lightning moves it to the trainer's device; the predictor then
    runs it on the device of each batch.
    """

    def __init__(self, predictor: Predictor):
        super().__init__()
        self.predictor = predictor
        self.net = predictor.net
        self.in_channels = self.net.in_channels
        self.num_classes = self.net.num_classes
        self.size_multiple = self.net.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor.batch_probabilities(x).clamp_min(SMALLEST).log()

    def align_target(self, mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return self.net.align_target(mask, logits)
