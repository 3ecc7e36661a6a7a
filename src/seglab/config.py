"""Where the Hydra configs live, and the OmegaConf resolvers they use.

In a source checkout (editable install) the configs are the repository's ``conf/``; an installed
wheel carries the same files as ``seglab/conf``.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

_PACKAGED = Path(__file__).resolve().parent / "conf"
_CHECKOUT = Path(__file__).resolve().parents[2] / "conf"
CONFIG_DIR = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


def register_resolvers() -> None:
    """``${len:${data.class_names}}`` gives the number of classes to the model and the loss."""
    if not OmegaConf.has_resolver("len"):
        OmegaConf.register_new_resolver("len", lambda value: len(value))


register_resolvers()


# Config keys that moved: an override using one gets a message naming the new key instead of
# Hydra's bare "Key 'root' is not in struct"; data.datasets.<split>.<option> too.
RENAMED_KEYS = {"data.root": "data.dataset.root", "data.download": "data.dataset.download"}


class RenamedKeyError(SystemExit):
    """An override uses a config key that seglab renamed; the message names the new key."""


def override_key(override: str) -> str:
    """The config key an override sets: ``+a.b=1``, ``~a.b`` and ``a.b=1`` all set ``a.b``."""
    return override.lstrip("+~").partition("=")[0]


def renamed_key_fix(override: str) -> str | None:
    """The override to use instead of ``override``, or None when its key was not renamed."""
    key, value = override_key(override), override.partition("=")[2] or "..."
    if key in RENAMED_KEYS:
        return f"'{RENAMED_KEYS[key]}={value}'"
    if key.startswith("data.datasets."):
        split, _, option = key.removeprefix("data.datasets.").partition(".")
        return f"'data.splits.{split}.{option}={value}' or, for every split, " + (
            f"'data.dataset.{option}={value}'"
        )
    return None


def check_renamed_keys(overrides: Sequence[str]) -> None:
    """Stop with one line naming the new key when an override uses a renamed one."""
    for override in overrides:
        fix = renamed_key_fix(override)
        if fix:
            key = override_key(override)
            raise RenamedKeyError(
                f"{key} was renamed: use {fix} (dataset options live under data.dataset, "
                "per-split ones under data.splits; see README 'Your own data: data=folder')"
            )


class UnknownKeyError(SystemExit):
    """An override names a key the task's config does not have; the message names the close one."""


def known_keys(config_name: str) -> list[str]:
    """The top-level keys of ``conf/<config_name>.yaml``, the groups of its defaults list and
    ``hydra``."""
    primary = OmegaConf.load(Path(CONFIG_DIR) / f"{config_name}.yaml")
    groups = [
        str(group).split()[-1]
        for entry in primary.get("defaults", [])
        if not isinstance(entry, str)
        for group in entry
    ]
    return sorted({*(str(k) for k in primary if k != "defaults"), *groups, "hydra"})


def check_unknown_keys(config_name: str, overrides: Sequence[str]) -> None:
    """Stop with one line when an override's first key part is not in the task's config (a
    typo such as ``splt=val``); ``+key=`` (a new key), ``~key`` and options pass."""
    known = known_keys(config_name)
    for override in overrides:
        if override.startswith(("+", "~", "-")) or "=" not in override:
            continue
        key = override.partition("=")[0]
        top = key.split(".")[0].split("/")[0]
        if top and top not in known:
            close = difflib.get_close_matches(top, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UnknownKeyError(
                f"{key} is not a key of conf/{config_name}.yaml: {hint}(its keys: "
                f"{', '.join(known)}; add a new key with +{override})"
            )


def deferred(target: str) -> Callable[[DictConfig], Any]:
    """The task function ``"module:function"``, imported when Hydra runs the job (after composing
    the config), so that ``--help``, ``--cfg`` and config errors cost hydra and omegaconf only,
    not the task's torch and Lightning. It carries the task module's name: Hydra names the job
    after it (``hydra.job.name``: ``train``, ``eval``...; the ``<job name>.log`` of the run)."""
    module, _, name = target.partition(":")

    def task(cfg: DictConfig) -> Any:
        function = getattr(importlib.import_module(module), name)
        log_lightning_through_hydra()
        return function(cfg)

    task.__module__, task.__name__, task.__qualname__ = module, name, name
    return task


def log_lightning_through_hydra() -> None:
    """Lightning's messages once, through the job's logging (console and ``<job>.log``).

    ``import lightning`` gives the ``lightning`` logger a console handler of its own; imported
    after Hydra has set up the job's logging (as :func:`deferred` does), its messages would also
    reach Hydra's handlers, and each would be printed twice."""
    lightning = logging.getLogger("lightning")
    if logging.getLogger().handlers:
        for handler in list(lightning.handlers):
            if type(handler) is logging.StreamHandler:
                lightning.removeHandler(handler)


def hydra_task(
    config_name: str, task: str, strict_keys: bool = False, resumable: bool = False
) -> Callable[[], Any]:
    """The command line of a seglab task (:mod:`seglab.cli`): ``@hydra.main`` reading
    ``conf/<config_name>.yaml`` and running ``task`` (``"module:function"``, imported only when
    the job runs: :func:`deferred`). It first refuses renamed config keys with a message naming
    the new ones (Hydra would fail on them with "Key ... is not in struct" alone) and, with
    ``strict_keys``, override keys the config does not have (:func:`check_unknown_keys`). A
    ``resumable`` task expands ``resume=<run folder>`` into that run's command line
    (:mod:`seglab.resume`)."""
    hydra_main = hydra.main(
        version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name
    )(deferred(task))

    def main() -> Any:
        check_renamed_keys(sys.argv[1:])
        if resumable and any(override_key(arg) == "resume" for arg in sys.argv[1:]):
            from seglab.resume import resume_argv  # lightning: only when resuming

            sys.argv = resume_argv(sys.argv, config_name)
        if strict_keys:
            check_unknown_keys(config_name, sys.argv[1:])
        return hydra_main()

    return main
