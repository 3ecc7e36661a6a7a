"""Checks of the composed config before any work: what would otherwise surface minutes later as a
raw traceback (a missing mandatory value, a number that is not one, no GPU for a GPU trainer, an
output folder that cannot be created, a checkpoint that cannot be read) fails at once with one
line naming the config key, the value and the fix.

:class:`ConfigError` is a Hydra ``CompactHydraException``: Hydra prints its message alone (no
traceback, ``HYDRA_FULL_ERROR=1`` shows one) and exits with code 1.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seglab.checkpoints import read_checkpoint

MISSING = "???"


class ConfigError(CompactHydraException, ValueError):
    """A config value cannot work; the message (one line) names the key, the value and the fix."""


@dataclass(frozen=True)
class Number:
    """A numeric config value: its key, what it means, its smallest value and an example."""

    key: str
    meaning: str
    minimum: float
    example: Any
    whole: bool = True
    strict: bool = False  # the value must be above the minimum, not equal to it


NUMBERS = (
    Number("trainer.max_epochs", "the number of epochs (-1: no limit)", -1, 10),
    Number("trainer.min_epochs", "the smallest number of epochs", 0, 1),
    Number("data.batch_size", "the samples per batch and process", 1, 8),
    Number("data.samples_per_epoch", "the training samples per epoch (null: each once)", 1, 200),
    Number("optimizer.lr", "the learning rate", 0, 0.001, whole=False, strict=True),
)


def command(*overrides: str) -> str:
    """``python train.py <overrides>``, each quoted so that it can be pasted into a shell."""
    return " ".join(["python train.py", *(shlex.quote(o) for o in overrides)])


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` (or :class:`~seglab.checkpoints.CheckpointError`) on the first
    value that cannot work."""
    check_missing(cfg)
    for number in NUMBERS:
        check_number(cfg, number)
    check_accelerator(cfg.get("trainer") or {})
    check_time_schedule(cfg)
    check_loss_classes(cfg)
    output_dir = OmegaConf.select(cfg, "paths.output_dir")
    if output_dir:
        check_writable(output_dir, "paths.output_dir", "paths.log_dir=<a writable folder>")
    check_callback_folders(cfg)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path and Path(ckpt_path).is_file():  # a path that does not exist is named elsewhere
        read_checkpoint(ckpt_path)


def missing_keys(node: Any, prefix: str = "") -> list[str]:
    """The full keys of mandatory values (``???``) not set, read without resolving anything."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = ((f"[{i}]", v) for i, v in enumerate(node))
    else:
        return []
    found = []
    for key, value in items:
        full_key = f"{prefix}{key}" if str(key).startswith("[") or not prefix else f"{prefix}.{key}"
        found += [full_key] if value == MISSING else missing_keys(value, full_key)
    return found


def check_missing(cfg: DictConfig) -> None:
    keys = missing_keys(OmegaConf.to_container(cfg, resolve=False))
    if keys:
        raise ConfigError(
            f"{', '.join(keys)} must be set (mandatory, ??? in the config): "
            f"{command(*(f'{key}=...' for key in keys))}"
        )


def check_number(cfg: DictConfig, number: Number) -> None:
    value = OmegaConf.select(cfg, number.key, default=None)
    if value is None:  # not in this config, or optional
        return
    fix = f"set {number.meaning}, e.g. {command(f'{number.key}={number.example}')}"
    kinds = (int,) if number.whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "a whole number" if number.whole else "a number"
        raise ConfigError(f"{number.key}={value!r} is not {kind}: {fix}")
    if not (value > number.minimum if number.strict else value >= number.minimum):
        bound = "above" if number.strict else "at least"
        raise ConfigError(f"{number.key}={value} must be {bound} {number.minimum}: {fix}")


def check_time_schedule(cfg: DictConfig) -> None:
    """A schedule over trainer.max_time (seglab.schedules.TimeSchedule) needs a time budget."""
    target = OmegaConf.select(cfg, "scheduler._target_", default=None)
    if target == "seglab.schedules.TimeSchedule" and not OmegaConf.select(cfg, "trainer.max_time"):
        raise ConfigError(
            "scheduler=time_cosine decays over trainer.max_time, which is not set: add a budget, "
            f"e.g. {command('scheduler=time_cosine', 'trainer.max_time=00:00:10:00')}, or use "
            "scheduler=warmup_cosine (over the run's steps)"
        )


def check_loss_classes(cfg: DictConfig) -> None:
    """The loss's per-class values must fit the data's classes: one class weight per class, and
    border weights between objects of a class that exists."""
    try:
        classes = OmegaConf.select(cfg, "data.class_names", default=None)
    except OmegaConfBaseException:  # an interpolation that cannot resolve: named where used
        return
    if not classes or OmegaConf.select(cfg, "loss", default=None) is None:
        return
    count, names = len(classes), ", ".join(f"{i} {name}" for i, name in enumerate(classes))
    weights = OmegaConf.select(cfg, "loss.class_weights", default=None)
    if weights is not None and len(weights) != count:
        ones = ",".join("1" for _ in classes)
        raise ConfigError(
            f"loss.class_weights={list(weights)} has {len(weights)} value(s) but the data has "
            f"{count} classes ({names}): give one weight per class, e.g. "
            f"{command(f'loss.class_weights=[{ones}]')} (seglab-inspect suggests them), or "
            "loss.class_weights=null"
        )
    border_w0 = OmegaConf.select(cfg, "loss.border_w0", default=0)
    objects = OmegaConf.select(cfg, "loss.border_objects_class", default=0)
    whole = isinstance(objects, int) and not isinstance(objects, bool)
    if border_w0 and not (whole and 0 <= objects < count):
        raise ConfigError(
            f"loss.border_objects_class={objects} is not a class of the data ({names}): name "
            "the class whose touching objects the border weights separate, e.g. "
            f"{command('loss.border_objects_class=0')}"
        )


def check_accelerator(trainer: DictConfig | dict) -> None:
    accelerator = str(trainer.get("accelerator", "")).lower()
    if accelerator not in ("gpu", "cuda"):
        return
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    devices = trainer.get("devices")
    if available == 0:
        raise ConfigError(
            f"trainer.accelerator={accelerator} but torch finds no GPU on this machine "
            f"(torch.cuda.is_available() is False): train on the CPU with {command('trainer=cpu')}"
            " (in place of trainer=gpu), or trainer.accelerator=auto"
        )
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > available:
        raise ConfigError(
            f"trainer.devices={devices} but this machine has {available} GPU(s): "
            f"{command(f'trainer.devices={available}')}"
        )
    if isinstance(devices, (list, ListConfig)) and any(int(d) >= available for d in devices):
        raise ConfigError(
            f"trainer.devices={list(devices)} names GPUs this machine does not have (it has "
            f"{available}, numbered from 0): {command(f'trainer.devices={available}')}"
        )


def unwritable(path: str | Path) -> str | None:
    """Why a folder cannot be created or written (None when it can), creating nothing."""
    existing = Path(path).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def check_writable(path: str | Path, key: str, example: str) -> None:
    reason = unwritable(path)
    if reason:
        raise ConfigError(
            f"{key}={path} cannot be created: {reason}: choose a folder you can write, e.g. "
            f"{command(example)}"
        )


def check_callback_folders(cfg: DictConfig) -> None:
    """The folders callbacks write into (``callbacks.<name>.dirpath``: checkpoints, predictions,
    reports) can be created: a checkpoint folder that cannot would fail after the first epoch."""
    for name, callback in (cfg.get("callbacks") or {}).items():
        dirpath = callback.get("dirpath") if isinstance(callback, DictConfig) else None
        if dirpath:
            key = f"callbacks.{name}.dirpath"
            check_writable(dirpath, key, f"{key}=<a writable folder>")


class OutputDirCheck(Callback):
    """Hydra callback: the run (or sweep) folder can be created, checked before Hydra creates it
    (Hydra's own failure is a bare ``NotADirectoryError`` / ``PermissionError``)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.check(config, "hydra.sweep.dir")

    @staticmethod
    def check(config: DictConfig, key: str) -> None:
        HydraConfig.instance().set_config(config)  # ${hydra:...} in the paths resolves
        try:
            check_writable(OmegaConf.select(config, key), key, "paths.log_dir=<a writable folder>")
        except ConfigError as error:
            # Hydra turns a callback's exception into a warning and goes on: exit with the line
            raise SystemExit(str(error)) from None
