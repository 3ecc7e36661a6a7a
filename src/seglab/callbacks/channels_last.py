"""Channels-last memory format for the network (``trainer=gpu`` turns it on).

Convolutions on tensor cores (and oneDNN on recent CPUs) run faster on NHWC tensors. Converting the
module's weights is enough: a convolution whose weight is channels-last produces channels-last
outputs from NCHW inputs too, so batches need no change. Checkpoints load into either format.
"""

from __future__ import annotations

import lightning as L
import torch


class ChannelsLast(L.Callback):
    """Puts the LightningModule in ``torch.channels_last`` before fitting, validating, testing or
    predicting."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)
