"""Where the Hydra configs live, and the OmegaConf resolvers they use.

In a source checkout (editable install) the configs are the repository's ``conf/``; an installed
wheel carries the same files as ``seglab/conf``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

_PACKAGED = Path(__file__).resolve().parent / "conf"
_CHECKOUT = Path(__file__).resolve().parents[2] / "conf"
CONFIG_DIR = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


def register_resolvers() -> None:
    """``${len:${data.class_names}}`` gives the number of classes to the model and the loss."""
    if not OmegaConf.has_resolver("len"):
        OmegaConf.register_new_resolver("len", lambda value: len(value))


register_resolvers()
