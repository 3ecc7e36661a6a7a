"""Hydra callbacks for sweeps (``-m``), set under ``hydra.callbacks`` in conf/hydra/default.yaml.

:class:`SweepSummary` tabulates the objective per job: after each multirun job it records the job
number, the overrides that vary between jobs, the returned objective (``optimized_metric``) and the
status, and rewrites ``summary.csv`` and ``summary.md`` in the sweep folder, so the table also
survives a failed job (Hydra's basic sweeper raises the first job's exception only after all jobs
ran, and then never calls ``on_multirun_end``). At the end of a sweep that completed it prints the
table. :class:`SweepHydraConfig` lets the sweep folder resolve ``${hydra:runtime.cwd}``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

COLUMNS = ("job", "overrides", "objective", "value", "status")


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
        self.rows: list[dict[str, Any]] = []
        self.sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Overrides given once for every job (e.g. trainer.max_epochs=2): left out of the table.
        self.common = set(config.hydra.overrides.task)
        self.rows = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return  # a single run, or a DDP child re-running one job
        failed = job_return.status != JobStatus.COMPLETED
        value = job_return._return_value  # the property re-raises a failed job's exception
        varying = [o for o in job_return.overrides or () if o not in self.common]
        self.rows.append(
            {
                "job": config.hydra.job.num,
                "overrides": " ".join(varying),
                "objective": config.get("optimized_metric"),
                "value": "" if failed or value is None else value,
                "status": f"failed: {type(value).__name__}: {value}" if failed else "completed",
            }
        )
        # resolved here, while the job's HydraConfig is set (the folder may use ${hydra:...})
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.write()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.rows:  # the files were written after the last job
            path = self.sweep_dir / f"{self.filename}.md"
            print(f"\nSweep summary ({path}):\n{self.markdown()}", flush=True)

    def markdown(self) -> str:
        objective = next((r["objective"] for r in self.rows if r["objective"]), "objective")
        lines = [f"| job | overrides | {objective} | status |", "| --- | --- | --- | --- |"]
        for row in self.rows:
            value = f"{row['value']:.4f}" if isinstance(row["value"], float) else row["value"]
            status = " ".join(row["status"].replace("|", "/").split())[:200]
            lines.append(f"| {row['job']} | {row['overrides']} | {value} | {status} |")
        return "\n".join(lines)

    def write(self) -> Path:
        """Write ``<filename>.csv`` (full values) and ``<filename>.md``; returns the ``.md``."""
        sweep_dir = self.sweep_dir
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with open(sweep_dir / f"{self.filename}.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        path = sweep_dir / f"{self.filename}.md"
        path.write_text(self.markdown() + "\n")
        return path
