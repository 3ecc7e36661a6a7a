"""Secrets are never saved: values of secret-named settings are replaced by ``<redacted>`` in
everything a run writes (``.hydra/``, the config tree, hyperparameters of every logger, the W&B
run name, checkpoints' model card, ``versions.yaml``, ``git.diff``).

A name is secret when its last part ends in ``token``, ``key``, ``password`` or ``secret``
(``WANDB_API_KEY``, ``HF_TOKEN``, ``logger.wandb.api_key``, ``+secret_token=...``). Two nets:

- by key: a config value under a secret name, and ``key=value`` overrides with a secret key;
- by value: the values of secret-named environment variables and config values, wherever they
  appear (e.g. resolved from ``${oc.env:...}`` into another key). Values shorter than
  :data:`MIN_LENGTH` characters are only redacted by key (replacing ``1`` everywhere would wreck
  the files).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from seglab.sweeps.context import SWEEP_CONFIG, sweep_dir
from seglab.utils.tables import write_atomic

REDACTED = "<redacted>"
MIN_LENGTH = 8
SECRET_NAME = re.compile(r"(?:^|[_.\-])(?:api)?(?:token|key|password|secret)$", re.IGNORECASE)
# key=value in overrides, Hydra's override_dirname (a=1,b=2) and command lines
ASSIGNMENT = re.compile(r"([+~]*[\w.\-/]+)=([^,\s]*)")


def is_secret_name(name: Any) -> bool:
    """``WANDB_API_KEY``, ``logger.wandb.api_key``, ``hf_token``: yes; ``monitor``: no."""
    return bool(SECRET_NAME.search(str(name).rsplit(".", 1)[-1]))


def _items(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _items(item, str(key))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _items(item, prefix)
    else:
        yield prefix, value


def secret_values(config: Any = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values to hide wherever they appear: of secret-named environment variables and
    of secret-named keys of ``config`` (a plain container), longest first."""
    environ = os.environ if environ is None else environ
    values = {value for name, value in environ.items() if is_secret_name(name)}
    values |= {str(v) for k, v in _items(config) if is_secret_name(k) and v is not None}
    values |= {m[2] for _, v in _items(config) if isinstance(v, str) for m in _secret_pairs(v)}
    return sorted((v for v in values if len(v) >= MIN_LENGTH), key=len, reverse=True)


def _secret_pairs(text: str) -> list[re.Match]:
    return [m for m in ASSIGNMENT.finditer(text) if is_secret_name(m[1]) and m[2]]


def redact_text(text: str, values: Iterable[str] = ()) -> str:
    """``text`` with each of ``values`` and the value of each secret ``key=value`` hidden."""
    for value in values:
        text = text.replace(value, REDACTED)
    return ASSIGNMENT.sub(
        lambda m: f"{m[1]}={REDACTED}" if is_secret_name(m[1]) and m[2] else m[0], text
    )


def redact(value: Any, values: Iterable[str] | None = None) -> Any:
    """A copy of ``value`` (plain containers and scalars) with secrets hidden; ``values``: the
    secret values (default: :func:`secret_values` of ``value``)."""
    values = secret_values(value) if values is None else list(values)

    def walk(item: Any, key: Any = "") -> Any:
        if isinstance(item, Mapping):
            return {k: walk(v, k) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return type(item)(walk(v, key) for v in item)
        if is_secret_name(key) and item not in (None, ""):
            return REDACTED
        return redact_text(item, values) if isinstance(item, str) else item

    return walk(value)


@contextlib.contextmanager
def redacted_argv(values: Iterable[str] = ()) -> Iterator[None]:
    """``sys.argv`` with secrets hidden for the duration (W&B records the command line of the
    run when it starts); restored after, so DDP's extra processes get the real one."""
    argv = sys.argv
    sys.argv = [redact_text(arg, values) for arg in argv]
    try:
        yield
    finally:
        sys.argv = argv


def redact_config(cfg: DictConfig, resolve: bool = True) -> DictConfig:
    """``cfg`` (resolved) with secrets hidden, as a new DictConfig."""
    return OmegaConf.create(redact(OmegaConf.to_container(cfg, resolve=resolve)))


def redact_yaml_file(path: Path, values: Iterable[str]) -> None:
    """Rewrite a YAML file Hydra saved (``.hydra/*.yaml``, ``multirun.yaml``) without secrets;
    untouched when it holds none. Interpolations stay as written."""
    loaded = OmegaConf.load(path)
    container = OmegaConf.to_container(loaded, resolve=False)
    redacted = redact(container, values)
    if redacted != container:  # replaced whole: parallel jobs read a sweep's multirun.yaml
        write_atomic(path, OmegaConf.to_yaml(OmegaConf.create(redacted)))


class RedactHydraFiles(Callback):
    """Hydra callback: Hydra saves ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml``
    (and a sweep's ``multirun.yaml``) before the task starts; at the job's start they are
    rewritten with their secrets hidden."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        values = secret_values(OmegaConf.to_container(config, resolve=False))
        files = []
        if config.hydra.output_subdir is not None:
            folder = Path(config.hydra.runtime.output_dir) / config.hydra.output_subdir
            files += sorted(folder.glob("*.yaml"))
        sweep = sweep_dir()
        if sweep is not None:
            files.append(sweep / SWEEP_CONFIG)
        for path in files:
            if path.is_file():
                redact_yaml_file(path, values)
