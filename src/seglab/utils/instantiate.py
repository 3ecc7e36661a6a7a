"""Instantiate the named ``_target_`` entries of the callbacks and logger config groups."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig


def instantiate_named(cfg: DictConfig | None, group: str) -> list[Any]:
    """``{name: {_target_: ...}, ...}`` -> list of objects; entries set to null are skipped."""
    if not cfg:
        return []
    if not isinstance(cfg, DictConfig):
        raise TypeError(
            f"the {group} config must be a mapping of named _target_ entries, got {cfg!r}"
        )
    objects = []
    for name, entry in cfg.items():
        if entry is None:
            continue
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            raise ValueError(
                f"{group}.{name} must be a mapping with a _target_ (or null to disable it), "
                f"got {entry!r}"
            )
        objects.append(hydra.utils.instantiate(entry))
    return objects
