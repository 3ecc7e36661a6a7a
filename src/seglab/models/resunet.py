"""U-Net with a torchvision ResNet encoder (as segmentation_models_pytorch's ``Unet``).

The encoder gives feature maps at strides 2, 4, 8, 16 and 32. The decoder walks back up in five
steps: each up-samples by 2 (nearest), concatenates the encoder map of the same stride (the last
step, back at full resolution, has none) and applies two 3x3 convolutions with batch norm and
ReLU; a 1x1 convolution gives one logit map per class.

Inputs whose height or width is not a multiple of 32 are zero-padded on the bottom/right and the
logits are cropped back to the input size (by :class:`seglab.models.base.SegmentationNet`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seglab.models.base import SegmentationNet
from seglab.models.resnet import ResNetEncoder
from seglab.models.unet import DoubleConv


class DecoderBlock(nn.Module):
    """Up-sample x2, concatenate the skip map (when there is one), double convolution."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.conv = DoubleConv(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


class ResUNet(SegmentationNet):
    """U-Net decoder on a ResNet encoder for ``num_classes``-way per-pixel classification.

    Args:
        in_channels: channels of the input image; pretrained RGB kernels are adapted to it.
        num_classes: number of output logit maps (background included).
        encoder: ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101`` (torchvision).
        pretrained: ``None`` (random init) or ``"imagenet"`` (downloads torchvision's weights).
        weights_path: local encoder weights instead: a torchvision ResNet state dict file.
        decoder_channels: output channels of the five decoder steps, coarse to fine.
        freeze_encoder: train the decoder only (see :meth:`SegmentationNet.freeze_encoder`).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        encoder: str = "resnet34",
        pretrained: str | None = None,
        weights_path: str | None = None,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        freeze_encoder: bool = False,
    ):
        decoder_channels = tuple(decoder_channels)
        if len(decoder_channels) != 5 or min(decoder_channels) < 1:
            raise ValueError(
                "model.decoder_channels needs 5 positive widths (one per up-sampling step), "
                f"got {list(decoder_channels)}"
            )
        super().__init__(in_channels, num_classes, size_multiple=32)  # the encoder's stride
        self.encoder = ResNetEncoder(encoder, in_channels, pretrained, weights_path)
        # skips at strides 16, 8, 4, 2, then none at full resolution
        skip_channels = (*reversed(self.encoder.out_channels[:-1]), 0)
        block_inputs = (self.encoder.out_channels[-1], *decoder_channels[:-1])
        self.decoder = nn.ModuleList(
            DecoderBlock(block_in, skip, block_out)
            for block_in, skip, block_out in zip(
                block_inputs, skip_channels, decoder_channels, strict=True
            )
        )
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, kernel_size=1)
        if freeze_encoder:
            self.freeze_encoder()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        x = features.pop()
        for block in self.decoder:
            x = block(x, features.pop() if len(features) > 0 else None)
        return self.head(x)
