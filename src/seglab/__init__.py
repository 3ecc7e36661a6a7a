"""seglab: train, compare and sweep image-segmentation models (Lightning + Hydra + W&B)."""

import os

# albumentations checks PyPI for a newer version at import: no network calls unless asked for.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from seglab.config import CONFIG_DIR  # noqa: E402

__version__ = "0.1.0"
__all__ = ["CONFIG_DIR", "__version__"]
