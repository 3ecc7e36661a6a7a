"""seglab: train, compare and sweep image-segmentation models (Lightning + Hydra + W&B)."""

from seglab.config import CONFIG_DIR

__version__ = "0.1.0"
__all__ = ["CONFIG_DIR", "__version__"]
