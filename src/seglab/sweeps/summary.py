"""Hydra callbacks for sweeps (``-m``), set under ``hydra.callbacks`` in conf/hydra/default.yaml.

:class:`SweepSummary` tabulates the objective per job: job number, the overrides that vary
between jobs, the returned objective (``optimized_metric``) and the status. It works with every
launcher: with joblib, submitit (SLURM) or Ray the jobs end in other processes than the one that
started the sweep, so each job writes its own row into ``<job dir>/job_result.json`` and then
rebuilds ``summary.csv`` and ``summary.md`` in the sweep folder from every job's row, sorted by
job number, under a file lock (jobs may end at the same time). The files thus also hold the
trials of a resumed Optuna study and survive a failed job (Hydra's basic sweeper raises the
first failed job's exception after all jobs ran, and then never calls ``on_multirun_end``). At
the end of a sweep that completed, the table is rebuilt once more and printed.
:class:`SweepHydraConfig` lets the sweep folder resolve ``${hydra:runtime.cwd}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from seglab.config import override_key
from seglab.sweeps.context import sweep_overrides, varying_overrides
from seglab.utils.redact import redact_text
from seglab.utils.tables import csv_text, markdown_table, write_atomic

try:  # POSIX; elsewhere jobs that end at the same moment may each miss the other's row
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

COLUMNS = ("job", "overrides", "objective", "value", "status")
RESULT_FILE = "job_result.json"


class SweepHydraConfig(Callback):
    """Let ``${hydra:...}`` resolve in the sweep folder: ``hydra.sweep.dir`` uses ``paths.log_dir``,
    which uses ``${hydra:runtime.cwd}``, and Hydra 1.3 sets ``HydraConfig`` only when a job starts,
    after the sweeper has read ``hydra.sweep.dir`` ("HydraConfig was not set", hydra issues #2247,
    #3427; fixed upstream by installing the sweep's config first, as this does).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)


class SweepSummary(Callback):
    def __init__(self, filename: str = "summary") -> None:
        self.filename = filename
        self.common: set[str] = set()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Overrides given once for every job (e.g. trainer.max_epochs=2): left out of the table.
        # Launchers hand this callback, with this state, to the processes that run the jobs.
        self.common = set(config.hydra.overrides.task)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if rank_zero_only.rank != 0:
            return  # a DDP child re-running one job, or a SLURM task of rank > 0
        job_dir = Path(config.hydra.runtime.output_dir)
        if config.hydra.mode == RunMode.MULTIRUN:
            varying = varying_overrides(job_return.overrides or (), self.common)
            job, overrides, sweep_dir = config.hydra.job.num, " ".join(varying), None
        else:  # a single run: a plain sweep's job resumed by its folder updates its row
            found = resumed_job(config, job_dir)
            if found is None:
                return
            sweep_dir, job, overrides = found
        failed = job_return.status != JobStatus.COMPLETED
        value = job_return._return_value  # the property re-raises a failed job's exception
        status = job_status(failed, value)
        row = {
            "job": job,
            "overrides": redact_text(overrides),
            "objective": config.get("optimized_metric"),
            "value": "" if failed or value is None else value,
            "status": status if sweep_dir is None else f"{status} (resumed)",
        }
        write_atomic(job_dir / RESULT_FILE, json.dumps(row, default=str))
        # resolved here, while the job's HydraConfig is set (the folder may use ${hydra:...})
        self.write(sweep_dir or Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir() and collect_rows(sweep_dir):
            path = self.write(sweep_dir)
            print(f"\nSweep summary ({path}):\n{path.read_text().strip()}", flush=True)

    def write(self, sweep_dir: Path) -> Path:
        """Rebuild ``<filename>.csv`` (full values) and ``<filename>.md`` from every job's row;
        returns the ``.md``."""
        with locked(sweep_dir / f".{self.filename}.lock"):
            rows = collect_rows(sweep_dir)
            write_atomic(sweep_dir / f"{self.filename}.csv", csv_text(rows, COLUMNS))
            path = sweep_dir / f"{self.filename}.md"
            write_atomic(path, markdown(rows) + "\n")
        return path


def resumed_job(config: DictConfig, job_dir: Path) -> tuple[Path, int, str] | None:
    """(sweep folder, job number, varying overrides) when this single run is a job of a plain
    sweep resumed by its folder (``python train.py resume=<sweep>/<job>``), else None. The job
    keeps the number and overrides of its row (``job_result.json``; a job stopped before it wrote
    one: its folder's number, its overrides less the sweep's and the resume's own). An Optuna
    trial's row is left as it was: the study does not record the resumed run."""
    from seglab.resume import OWN_KEYS, sweep_of

    sweep = sweep_of(job_dir) if config.get("resume") else None
    if sweep is None or sweep[1]:
        return None
    sweep_dir, saved = sweep[0], job_dir / RESULT_FILE
    if saved.is_file():
        row = json.loads(saved.read_text())
        return sweep_dir, row["job"], row["overrides"]
    if not job_dir.name.isdigit():
        return None
    own = [o for o in config.hydra.overrides.task if override_key(o) not in OWN_KEYS]
    varying = varying_overrides(own, sweep_overrides(sweep_dir))
    return sweep_dir, int(job_dir.name), " ".join(varying)


def job_status(failed: bool, value: Any) -> str:
    """``completed``, ``pruned at epoch N`` (an Optuna trial stopped by the pruner: its job raises
    ``optuna.TrialPruned``, told by name so that optuna is not imported) or ``failed: ...``."""
    if not failed:
        return "completed"
    if type(value).__name__ == "TrialPruned":
        return str(value)
    return f"failed: {type(value).__name__}: {value}"


def collect_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job's row under ``sweep_dir`` (any ``hydra.sweep.subdir`` depth), by job number."""
    rows = [json.loads(path.read_text()) for path in sweep_dir.rglob(RESULT_FILE)]
    return sorted(rows, key=lambda row: row["job"])


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table of ``summary.md`` (errors cut to 200 characters)."""
    objective = next((r["objective"] for r in rows if r["objective"]), "objective")
    shown = [
        {
            "job": str(row["job"]),
            "overrides": row["overrides"],
            objective: f"{row['value']:.4f}" if isinstance(row["value"], float) else row["value"],
            "status": " ".join(row["status"].split())[:200],
        }
        for row in rows
    ]
    return markdown_table(shown, numeric=[objective]).rstrip("\n")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as file:
        if fcntl is not None:
            fcntl.flock(file, fcntl.LOCK_EX)
        yield
