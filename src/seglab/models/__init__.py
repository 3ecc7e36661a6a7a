"""Segmentation networks: (N, in_channels, H, W) images to (N, num_classes, H, W) logits.

Every network is a :class:`SegmentationNet` (``seglab.models.base``); ``SMPModel`` lives in
``seglab.models.smp`` so that importing this package does not import segmentation_models_pytorch.
"""

from seglab.models.base import SegmentationNet
from seglab.models.resnet import ResNetEncoder
from seglab.models.resunet import ResUNet
from seglab.models.unet import UNet

__all__ = ["ResNetEncoder", "ResUNet", "SegmentationNet", "UNet"]
