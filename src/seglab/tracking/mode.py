"""Decide, before any W&B run starts, whether it can log online; otherwise force offline mode.

W&B must never prompt for a key or wait on a network it cannot reach. Without credentials, runs are
written offline under the run directory and can be uploaded later with ``wandb sync``. The mode
comes with the reason it is in force, so that the log says why a run is offline.
"""

from __future__ import annotations

import logging
import netrc
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

NO_CREDENTIALS = "no credentials found (no WANDB_API_KEY, no `wandb login`)"
# WANDB_MODE as set by ensure_wandb_mode in this process (a later job of a multirun sees it set)
_set_here: str | None = None


@dataclass(frozen=True)
class WandbMode:
    mode: str  # online, offline, disabled (or what the user set)
    reason: str  # why, e.g. "WANDB_MODE=offline is set" or NO_CREDENTIALS


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


def ensure_wandb_mode() -> WandbMode:
    """Set ``WANDB_MODE=offline`` unless a mode is set explicitly or credentials exist; return the
    mode in force and why."""
    global _set_here
    mode = os.environ.get("WANDB_MODE")
    if mode and mode == _set_here:
        return WandbMode(mode, NO_CREDENTIALS)  # set by an earlier task of this process
    if mode:
        return WandbMode(mode, f"WANDB_MODE={mode} is set in the environment")
    if has_wandb_credentials():
        return WandbMode("online", "credentials found")
    os.environ["WANDB_MODE"] = _set_here = "offline"
    return WandbMode("offline", NO_CREDENTIALS)
