"""Segmentation networks: (N, in_channels, H, W) images to (N, num_classes, H, W) logits."""

from seglab.models.resnet import ResNetEncoder
from seglab.models.resunet import ResUNet
from seglab.models.unet import UNet

__all__ = ["ResNetEncoder", "ResUNet", "UNet"]
