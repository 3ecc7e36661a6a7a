"""Inference with a trained network: preprocessing, tiled sliding-window prediction, test-time
augmentation, and writers for masks, overlays and probability maps.

Depends only on a network's ``net(x)`` and its ``in_channels`` / ``num_classes`` /
``size_multiple``; tiling uses MONAI's ``sliding_window_inference``. Exported ONNX / TorchScript
files (:mod:`seglab.inference.export`) run as such networks (:mod:`seglab.inference.runners`).
"""

from seglab.inference.card import ModelCard
from seglab.inference.predictor import Predictor, mask_dtype
from seglab.inference.preprocessing import Preprocessing
from seglab.inference.writers import (
    read_probabilities,
    write_mask,
    write_overlay,
    write_probabilities,
)

__all__ = [
    "ModelCard",
    "Predictor",
    "Preprocessing",
    "mask_dtype",
    "read_probabilities",
    "write_mask",
    "write_overlay",
    "write_probabilities",
]
