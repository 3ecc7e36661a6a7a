"""seglab: train, compare and sweep image-segmentation models (Lightning + Hydra + W&B)."""

import os

# albumentations checks PyPI for a newer version at import: no network calls unless asked for.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from seglab.config import CONFIG_DIR  # noqa: E402

__version__ = "0.1.0"
__all__ = ["CONFIG_DIR", "__version__", "load_model"]


def __getattr__(name: str):
    """``seglab.load_model`` imported on first use, so that ``import seglab`` stays cheap."""
    if name == "load_model":
        from seglab.inference.loading import load_model

        return load_model
    raise AttributeError(f"module 'seglab' has no attribute {name!r}")
