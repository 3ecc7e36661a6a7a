"""Sweeps through other launchers than Hydra's basic one: the jobs run in other processes
(joblib's workers, submitit's jobs), and the sweep summary must still list every job.

``hydra/launcher=submitit_local`` stands in for ``submitit_slurm``: the same launcher class,
with local processes instead of SLURM jobs. The SLURM preset is checked by composing it.
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from seglab.config import CONFIG_DIR
from seglab.sweeps.ddp import job_argv

from .conftest import TINY, run_train_script
from .helpers.runs import last_metrics, sweep_summary

LAUNCHERS = {
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_a_sweep_through_the_launcher_runs_each_job_in_its_folder_and_summarises_all(
    tmp_path, launcher
):
    sweep_dir = tmp_path / "sweep"
    tiny = [o for o in TINY if not o.startswith("trainer.max_epochs=")]
    result = run_train_script(
        ["-m", *tiny, "trainer.max_epochs=1", "logger=csv", "optimizer.lr=1e-3,1e-2"]
        + [*LAUNCHERS[launcher], f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
        check=True,
    )
    rows = sweep_summary(sweep_dir)
    assert sorted(rows) == [0, 1]
    for job, lr in ((0, "0.001"), (1, "0.01")):
        job_dir = sweep_dir / str(job)
        assert (job_dir / "checkpoints" / "last.ckpt").is_file()
        assert f"optimizer.lr={lr}" in (job_dir / ".hydra" / "overrides.yaml").read_text()
        assert rows[job]["overrides"] == f"optimizer.lr={lr}"
        assert rows[job]["status"] == "completed"
        value = last_metrics(job_dir)["val/dice_best"]
        assert float(rows[job]["value"]) == pytest.approx(value, abs=1e-6)
    # printed by the launching process, which ran no job itself
    table = (sweep_dir / "summary.md").read_text()
    assert f"Sweep summary ({sweep_dir / 'summary.md'})" in result.stdout
    assert table.strip() in result.stdout


def test_the_slurm_preset_spans_trainer_devices_and_nodes():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=slurm", "trainer.devices=4", "trainer.num_nodes=2"]
            + ["hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    # one SLURM task per device on each node: Lightning's SLURM environment takes the ranks
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu" and launcher.timeout_min > 0


def test_a_multirun_job_keeps_only_hydras_flags_of_a_launcher_workers_argv():
    # A Ray worker runs the job with an argv of its own; a strict parse would exit the job.
    worker = [
        "/ray/_private/workers/default_worker.py",
        "--node-ip-address=10.0.0.1",
        "--temp-dir=/t",
    ]
    assert job_argv(worker, ["optimizer.lr=0.01"]) == [
        worker[0],
        "optimizer.lr=0.01",
        "hydra.mode=RUN",
    ]
    # the user's script keeps its config flags and loses -m and the sweep (DDP children)
    script = ["train.py", "-m", "--config-name=train", "optimizer.lr=1e-3,1e-2"]
    assert job_argv(script, ["optimizer.lr=0.001"]) == [
        "train.py",
        "--config-name=train",
        "optimizer.lr=0.001",
        "hydra.mode=RUN",
    ]
