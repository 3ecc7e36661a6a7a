"""Decide, before any W&B run starts, whether it can log online; otherwise force offline mode.

W&B must never prompt for a key or wait on a network it cannot reach. Without credentials, runs are
written offline under the run directory and can be uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)


def has_wandb_credentials() -> bool:
    """True when an API key is set in the environment or stored by ``wandb login`` (netrc)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc")).expanduser()
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def ensure_wandb_mode() -> str:
    """Set ``WANDB_MODE=offline`` unless a mode is set explicitly or credentials exist.

    Returns the mode in force: ``online``, ``offline`` or ``disabled`` (or what the user set).
    """
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if has_wandb_credentials():
        return "online"
    os.environ["WANDB_MODE"] = "offline"
    return "offline"
