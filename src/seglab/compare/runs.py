"""Run folders for ``seglab-compare``: finding them, and reading each one's flattened config,
overrides and metrics (the value that ranks it and its validation curve)."""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from seglab.config import override_key  # also registers the ${len:...} resolver of the configs
from seglab.sweeps.summary import RESULT_FILE
from seglab.tracking.run_info import flatten

CONFIG_FILE = Path(".hydra") / "config.yaml"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
HYDRA_FILE = Path(".hydra") / "hydra.yaml"
METRICS_FILE = Path("csv") / "metrics.csv"
RUN_FOLDER_HELP = (
    f"A run folder holds {CONFIG_FILE} and {METRICS_FILE} (logs/train/runs/<date>_<time>/, or "
    "logs/train/multiruns/<date>_<time>/<job>/); the CSV is written by logger=csv or logger=wandb."
)
# Top-level sections and leaf names that are locations, not hyperparameters.
DROPPED_SECTIONS = ("paths", "hydra")
DROPPED_LEAVES = ("ckpt_path", "dirpath", "save_dir", "default_root_dir", "output_dir")
MISSING = "-"


class CompareError(Exception):
    """A user error: reported as one message with exit code 2."""


@dataclass
class Run:
    path: Path
    label: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    value: float | None = None
    epoch: int | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)
    note: str = ""


# --------------------------------------------------------------------------------------------
# configs


def is_location(key: str) -> bool:
    """Paths, output folders and Hydra's own settings are not hyperparameters."""
    parts = key.split(".")
    if parts[0] in DROPPED_SECTIONS or parts[0].startswith("hydra/"):
        return True
    return any(part in DROPPED_LEAVES or part.endswith("_dir") for part in parts)


def format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str)
    return str(value)


def read_params(run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The flattened config of a run (interpolations resolved where possible), the Hydra group
    choices (``model: unet``) under the group's name, and the command-line overrides."""
    cfg = OmegaConf.load(run_dir / CONFIG_FILE)
    flat = flatten(OmegaConf.to_container(cfg, resolve=False), expand_lists=True)
    for key, value in flat.items():
        if isinstance(value, str) and "${" in value and not is_location(key):
            # a resolver of the training process (hydra:, oc.env): keep the text
            with contextlib.suppress(Exception):
                flat[key] = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
            if OmegaConf.is_config(flat[key]):
                flat[key] = OmegaConf.to_container(flat[key], resolve=True)
    hydra_file = run_dir / HYDRA_FILE
    if hydra_file.is_file():
        hydra_cfg = OmegaConf.to_container(OmegaConf.load(hydra_file), resolve=False) or {}
        choices = (hydra_cfg.get("hydra", {}).get("runtime", {}) or {}).get("choices", {}) or {}
        for group, choice in choices.items():
            if group not in flat and not is_location(group):
                flat[group] = choice
    overrides_file = run_dir / OVERRIDES_FILE
    overrides = OmegaConf.load(overrides_file) if overrides_file.is_file() else []
    return flat, [str(o) for o in overrides or []]


def override_keys(overrides: Iterable[str]) -> set[str]:
    """``["+model.x=1", "~seed", "model=resunet"]`` -> ``{"model.x", "seed", "model"}``."""
    return {override_key(o) for o in overrides}


# --------------------------------------------------------------------------------------------
# metrics


def is_last_value_metric(metric: str) -> bool:
    """Best-so-far and test metrics are read as their last logged value."""
    return metric.endswith("_best") or metric.startswith("test/")


def curve_metric(metric: str) -> str:
    """The per-epoch validation curve behind a metric: val/dice_best, test/dice -> val/dice."""
    base = metric.removesuffix("_best")
    return "val/" + base.removeprefix("test/") if base.startswith("test/") else base


def default_mode(metric: str) -> str:
    return "min" if "loss" in metric else "max"


def read_metric_rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as file:
        return list(csv.DictReader(file))


def values_of(rows: list[dict[str, str]], name: str) -> list[tuple[int | None, float]]:
    """``(epoch, value)`` of every row that logged ``name`` (NaN and empty cells skipped)."""
    values = []
    for row in rows:
        text = row.get(name)
        if text in (None, ""):
            continue
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isnan(value):
            continue
        epoch = row.get("epoch")
        values.append((int(float(epoch)) if epoch not in (None, "") else None, value))
    return values


def pick(values: list[tuple[int | None, float]], metric: str, mode: str):
    """The value that ranks a run: the last one for ``*_best`` / ``test/*``, else the best."""
    if not values:
        return None, None
    if is_last_value_metric(metric):
        epoch, value = values[-1]
    else:
        choose = max if mode == "max" else min
        epoch, value = choose(values, key=lambda item: item[1])  # first of equal values
    return value, epoch


def load_run(run_dir: Path, metric: str, mode: str) -> Run:
    run = Run(path=run_dir)
    run.params, run.overrides = read_params(run_dir)
    rows = read_metric_rows(run_dir / METRICS_FILE)
    run.value, run.epoch = pick(values_of(rows, metric), metric, mode)
    if run.value is None:
        # the run-level metrics (not the per-class ones), to pick another --metric from
        logged = sorted({k for row in rows for k, v in row.items() if v and k.count("/") == 1})
        shown = ", ".join(logged[:12]) + (", ..." if len(logged) > 12 else "")
        run.note = f"no {metric} in {METRICS_FILE} (logged: {shown or 'nothing'})"
    run.note = run.note or pruned_note(run_dir)
    by_epoch = {e: v for e, v in values_of(rows, curve_metric(metric)) if e is not None}
    run.curve = sorted(by_epoch.items())
    return run


def pruned_note(run_dir: Path) -> str:
    """``pruned at epoch N`` for a trial of an Optuna search stopped by its pruner (from the
    job's row of the sweep summary, ``job_result.json``), else empty."""
    path = run_dir / RESULT_FILE
    with contextlib.suppress(OSError, ValueError):
        status = str(json.loads(path.read_text()).get("status", ""))
        return status if status.startswith("pruned") else ""
    return ""


# --------------------------------------------------------------------------------------------
# finding runs


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and (path / METRICS_FILE).is_file()


def find_runs(paths: Sequence[str]) -> list[Path]:
    """Every run folder under ``paths`` (run dirs, multirun dirs, globs), sorted, deduplicated."""
    missing, found = [], {}
    for pattern in paths:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [Path(m) for m in matches if Path(m).exists()]
        if not matches:
            missing.append(pattern)
        for match in matches:
            for run_dir in walk_runs(match):
                found.setdefault(run_dir.resolve(), run_dir)
    if missing:
        raise CompareError(
            f"no such path: {', '.join(missing)}. Pass run folders, multirun folders or globs "
            f"(quoted). {RUN_FOLDER_HELP}"
        )
    if not found:
        raise CompareError(f"no run folder found under {', '.join(paths)}. {RUN_FOLDER_HELP}")
    return [found[key] for key in sorted(found)]


def walk_runs(root: Path) -> Iterable[Path]:
    if root.is_file():
        return
    if is_run_dir(root):
        yield root
        return
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if is_run_dir(here):
            dirnames.clear()  # nothing below a run folder is another run
            yield here
        else:
            dirnames[:] = sorted(d for d in dirnames if d not in {".hydra", "wandb", "csv"})


def common_parent(run_dirs: Sequence[Path]) -> Path:
    """The deepest folder holding every run (the multirun folder for the jobs of one sweep)."""
    return Path(os.path.commonpath([str(p.resolve().parent) for p in run_dirs]))


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Paths relative to the current directory when all runs lie below it, else to their
    common parent."""
    cwd = Path.cwd().resolve()
    resolved = [p.resolve() for p in run_dirs]
    if all(p.is_relative_to(cwd) and p != cwd for p in resolved):
        return [str(p.relative_to(cwd)) for p in resolved]
    parent = common_parent(run_dirs)
    return [str(p.relative_to(parent)) for p in resolved]
