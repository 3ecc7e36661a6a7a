"""What a run records about itself so that runs can be compared and reproduced: the code version
(git commit, dirty flag and diff), the installed versions of the packages that shape a result, a
fingerprint of the data, the run name (from the overrides that tell
the run apart, see :mod:`seglab.sweeps.context`), the flattened config as dashboard columns, and
the W&B run id a run folder holds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from seglab.utils.redact import is_secret_name

# Overrides that say where or how a run is logged, not what it trains: left out of run names.
NOT_IN_NAME = (
    "hydra.",
    "paths.",
    "logger",
    "callbacks",
    "tags",
    "task_name",
    "ckpt_path",
    "resume",
)
MAX_NAME_LENGTH = 128
# recorded in versions.yaml (those installed)
PACKAGES = (
    "torch",
    "torchvision",
    "lightning",
    "torchmetrics",
    "albumentations",
    "opencv-python-headless",
    "hydra-core",
    "omegaconf",
    "numpy",
    "segmentation-models-pytorch",
    "monai",
    "wandb",
    "seglab",
)


def installed_versions(packages=PACKAGES) -> dict[str, str]:
    """``{distribution: version}`` of those of ``packages`` that are installed."""
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _git(cwd: str | Path, *args: str) -> str | None:
    """The output of ``git ARGS`` in ``cwd``; None outside a checkout or without git."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_diff(cwd: str | Path) -> str | None:
    """The uncommitted changes to tracked files (``git diff HEAD``) of the checkout of ``cwd``."""
    return _git(cwd, "--no-optional-locks", "diff", "HEAD")


def git_info(cwd: str | Path) -> dict[str, Any]:
    """``commit``, ``branch`` and ``dirty`` (uncommitted changes to tracked files) of the git
    checkout that holds ``cwd``; empty values outside a checkout or without git."""

    def git(*args: str) -> str | None:
        output = _git(cwd, *args)
        return None if output is None else output.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "branch": None, "dirty": None}
    status = git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


def dataset_identity(dataset) -> list[str]:
    """What identifies a dataset's samples: its files (relative path and size), or, for datasets
    without files (synthetic), its parameters."""
    files = getattr(dataset, "files", None)
    if files is not None:
        root = Path(getattr(dataset, "root", "/"))
        lines = []
        for path in map(Path, files):
            name = path.relative_to(root) if path.is_relative_to(root) else path.name
            size = path.stat().st_size if path.is_file() else -1
            lines.append(f"{name}:{size}")
        return lines
    simple = (int, float, str, bool, tuple, list, type(None))
    params = {k: v for k, v in sorted(vars(dataset).items()) if isinstance(v, simple)}
    return [f"{type(dataset).__name__}{params}", f"len={len(dataset)}"]


def data_fingerprint(datasets: Mapping[str, Any]) -> dict[str, Any]:
    """Sample counts per split and short hashes of each split's file list and of all of them."""
    fingerprint: dict[str, Any] = {}
    total = hashlib.sha256()
    for split, dataset in datasets.items():
        identity = "\n".join(dataset_identity(dataset)).encode()
        fingerprint[f"{split}_samples"] = len(dataset)
        fingerprint[f"{split}_hash"] = hashlib.sha256(identity).hexdigest()[:12]
        total.update(split.encode() + b"\0" + identity + b"\0")
    fingerprint["hash"] = total.hexdigest()[:12]
    return fingerprint


def run_name(base: str, overrides: Iterable[str]) -> str:
    """A short, readable run name: ``base`` then each override as ``<last key part><value>``
    (group choices by their value alone, paths by their last part, long decimals to 4 significant
    digits), e.g. ``unet-lr0.001-dice``."""
    parts = [base] if base else []
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if not sep or key.startswith(NOT_IN_NAME) or value == base or is_secret_name(key):
            continue
        value = value.rstrip("/").rsplit("/", 1)[-1]  # a path: its last part
        value = short_number(value)
        short = value if "." not in key and "/" not in key else key.split(".")[-1] + value
        parts.append(re.sub(r"[^\w.,\[\]+-]", "", short))
    return "-".join(parts)[:MAX_NAME_LENGTH] or "run"


def short_number(value: str) -> str:
    """``0.00024156772025296256`` (an Optuna sample) -> ``0.0002416``; anything else unchanged."""
    if len(value) <= 8 or "." not in value:
        return value  # short as written (1e-4, 0.001, 1.0), or an integer (a seed)
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return value


def flatten(value: Any, prefix: str = "", expand_lists: bool = False) -> dict[str, Any]:
    """``{"model": {"depth": 4}}`` -> ``{"model.depth": 4}``: keys as in Hydra overrides. Lists
    stay values (W&B columns), or with ``expand_lists`` become ``key.0``, ``key.1``, ... (so that
    seglab-compare sees which list items differ). Empty containers stay values."""
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif expand_lists and isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return {prefix: value}
    if not value:
        return {prefix: value} if prefix else {}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key), expand_lists))
    return flat


def wandb_run_id(run_dir: str | Path) -> str | None:
    """The id of the W&B run logged under ``run_dir`` (online or offline), if any."""
    runs = sorted(Path(run_dir).glob("wandb/*run-*/run-*.wandb"), key=lambda p: p.stat().st_mtime)
    return runs[-1].stem.removeprefix("run-") if runs else None
