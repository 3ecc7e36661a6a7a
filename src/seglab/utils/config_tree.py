"""Print the composed config as a rich tree (rank zero) and save it into the run directory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import rich
import rich.syntax
import rich.tree
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from seglab.utils.redact import redact_config

FIRST_FIELDS = ("data", "model", "loss", "optimizer", "scheduler", "callbacks", "logger", "trainer")


@rank_zero_only
def print_config_tree(
    cfg: DictConfig, save_to: str | Path | None = None, first: Sequence[str] = FIRST_FIELDS
) -> None:
    """Show each top-level field of ``cfg`` (resolved, secrets hidden) as a branch; also write it
    to ``save_to``."""
    cfg = redact_config(cfg)
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    fields = [f for f in first if f in cfg] + [f for f in cfg if f not in first and f != "hydra"]
    for field in fields:
        branch = tree.add(field, style="bold", guide_style="dim")
        value = cfg[field]
        text = (
            OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        )
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        with open(save_to, "w") as file:
            rich.print(tree, file=file)
