"""Sweeps (``python train.py -m ...``): one folder per job, a summary of the objective, and DDP.

The real script runs in a subprocess, as users run it (DDP re-executes the script for rank 1).
"""

from __future__ import annotations

import re

import pytest

from .conftest import TINY, run_train_script
from .helpers import wandb_records
from .helpers.runs import last_metrics, sweep_summary, validated_epochs

pytestmark = pytest.mark.slow


def test_grid_runs_each_job_in_its_folder_and_summarises_the_objective(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_train_script(
        ["-m", *TINY, "logger=csv", "optimizer.lr=1e-3,1e-2", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
        check=True,
    )
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1"]
    rows = sweep_summary(sweep_dir)
    assert sorted(rows) == [0, 1]
    for job, lr in ((0, "0.001"), (1, "0.01")):
        job_dir = sweep_dir / str(job)
        assert (job_dir / "checkpoints" / "last.ckpt").is_file()
        metrics = last_metrics(job_dir)
        # only the swept override is listed; the objective is the job's own val/dice_best
        assert rows[job]["overrides"] == f"optimizer.lr={lr}"
        assert rows[job]["objective"] == "val/dice_best"
        assert rows[job]["status"] == "completed"
        assert float(rows[job]["value"]) == pytest.approx(metrics["val/dice_best"], abs=1e-6)
    # the same table is printed at the end of the sweep and kept as Markdown
    table = (sweep_dir / "summary.md").read_text()
    assert "| job | overrides | val/dice_best | status |" in table
    assert table.strip() in result.stdout


def test_a_failed_job_is_listed_as_failed_beside_the_completed_ones(tmp_path):
    sweep_dir = tmp_path / "sweep"
    tiny = [o for o in TINY if not o.startswith("model.depth=")]
    result = run_train_script(
        ["-m", *tiny, "logger=csv", "model.depth=2,0", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
    )
    # Hydra's basic sweeper runs every job, then re-raises the failed job's exception
    assert result.returncode != 0
    assert "UNet depth must be >= 1" in result.stderr
    rows = sweep_summary(sweep_dir)
    assert rows[0]["status"] == "completed" and float(rows[0]["value"]) > 0
    assert rows[1]["overrides"] == "model.depth=0" and rows[1]["value"] == ""
    assert rows[1]["status"].startswith("failed: ")
    assert "UNet depth must be >= 1, got 0" in rows[1]["status"]
    assert "| 1 | model.depth=0 |  | failed: " in (sweep_dir / "summary.md").read_text()


def test_a_job_that_fails_after_wandb_started_is_a_failed_run_and_the_sweep_goes_on(tmp_path):
    sweep_dir = tmp_path / "sweep"
    # job 0 diverges during fit (an infinite learning rate), job 1 trains
    result = run_train_script(
        ["-m", *TINY, "logger=wandb", "optimizer.lr=inf,1e-3", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
    )
    assert result.returncode == 1  # the basic sweeper re-raises the failed job's error at the end
    rows = sweep_summary(sweep_dir)
    assert rows[0]["status"].startswith("failed: FloatingPointError")
    assert rows[1]["status"] == "completed"
    for job, code in ((0, 1), (1, 0)):
        records = wandb_records.read_finished(sweep_dir / str(job))
        assert wandb_records.exit_code(records) == code


def test_grid_with_ddp_runs_each_job_once_in_its_own_folder(tmp_path, monkeypatch):
    # The default sweep folder (logs/train/multiruns/<date>_<time>/ under the working directory):
    # a rank re-running the sweep on its own would create a second time-stamped folder.
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    result = run_train_script(
        ["-m", *TINY, "logger=wandb", "trainer.devices=2", "optimizer.lr=1e-3,1e-2"],
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, result.stderr[-4000:]
    # the sweep was launched once and each job once, each with two processes
    assert output.count("Launching 2 jobs locally") == 1
    assert len(re.findall(r"#0 : ", output)) == 1 and len(re.findall(r"#1 : ", output)) == 1
    assert output.count("Starting with 2 processes") == 2
    assert output.count("Sweep summary") == 1
    # one sweep folder, nothing else anywhere under tmp_path
    assert [p.name for p in tmp_path.iterdir()] == ["logs"]
    assert [p.name for p in (tmp_path / "logs").iterdir()] == ["train"]
    assert [p.name for p in (tmp_path / "logs" / "train").iterdir()] == ["multiruns"]
    (sweep_dir,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1"]
    rows = sweep_summary(sweep_dir)
    assert sorted(rows) == [0, 1]
    for job, lr, name in ((0, 0.001, "unet-lr0.001"), (1, 0.01, "unet-lr0.01")):
        job_dir = sweep_dir / str(job)
        metrics, epochs = last_metrics(job_dir), validated_epochs(job_dir)
        assert epochs == {0, 1}
        assert float(rows[job]["value"]) == pytest.approx(metrics["val/dice_best"], abs=1e-6)
        # one W&B run per job (rank zero only), holding that job's config, named by what varies
        # in the sweep, grouped with the other job under the sweep's id
        records = wandb_records.read_finished(job_dir)
        assert wandb_records.config(records)["optimizer.lr"] == lr
        run = wandb_records.run_info(records)
        assert (run.display_name, run.run_group, run.job_type) == (name, sweep_dir.name, "train")
        # the local media of each validation epoch, drawn once (rank zero)
        assert sorted(p.name for p in (job_dir / "predictions").iterdir()) == [
            "epoch_000.png",
            "epoch_001.png",
        ]
