"""Read what a training run wrote: its CSV metrics (``<run dir>/csv/metrics.csv``), and what a
sweep wrote: its summary (``<sweep dir>/summary.csv``); start ``train.py`` in the background (to
interrupt it)."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path
from typing import Any

from ..conftest import train_script_argv, train_script_env


def start_train_script(args: list[str], cwd: Path, log_path: Path, **popen: Any):
    """``python train.py ARGS`` started in the background, stdout and stderr into ``log_path``."""
    with open(log_path, "w") as log:
        return subprocess.Popen(
            train_script_argv(args),
            cwd=cwd,
            env=train_script_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            **popen,
        )


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """Every row of the run's metrics CSV (empty strings where a row has no value)."""
    with open(Path(run_dir) / "csv" / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def last_metrics(run_dir: Path) -> dict[str, float]:
    """The last logged value of every metric (``stage/name`` columns)."""
    values: dict[str, float] = {}
    for row in metric_rows(run_dir):
        values.update({k: float(v) for k, v in row.items() if v and "/" in k})
    return values


def validated_epochs(run_dir: Path) -> set[int]:
    """The epochs that logged ``val/dice``."""
    return {int(row["epoch"]) for row in metric_rows(run_dir) if row.get("val/dice")}


def sweep_summary(sweep_dir: Path) -> dict[int, dict[str, str]]:
    """The rows of a sweep's ``summary.csv`` by job number."""
    with open(Path(sweep_dir) / "summary.csv", newline="") as file:
        return {int(row["job"]): row for row in csv.DictReader(file)}
