"""Issue 13, item 2: a multirun job and an Optuna trial resume the same way as a run:
``python train.py resume=<job folder>`` (or ``resume=last``) continues the job in its folder with
its overrides; an Optuna search stopped by SIGTERM is continued by rerunning its command, which
retries the interrupted trial."""

from __future__ import annotations

import csv
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from seglab.resume import resume_argv, sweep_of
from seglab.sweeps.budget import INTERRUPTED
from seglab.sweeps.summary import resumed_job

from .conftest import TINY, run_train_script
from .helpers.runs import metric_rows, start_train_script, validated_epochs
from .test_optuna import SEARCH, load_study, trial_states

BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
OPTUNA = "hydra_plugins.seglab_plugins.optuna_sweeper.ResumableOptunaSweeper"
TIMEOUT = 900  # seconds a subprocess may take before the test gives up (a loaded machine)


def fake_run(folder: Path, override: str, mtime: float) -> Path:
    """A run folder with ``.hydra/overrides.yaml`` (written at ``mtime``) and a checkpoint."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    (folder / ".hydra" / "overrides.yaml").write_text(f"- {override}\n")
    os.utime(folder / ".hydra" / "overrides.yaml", (mtime, mtime))
    return folder


def fake_sweep(folder: Path, sweeper: str) -> Path:
    """A sweep folder's ``multirun.yaml`` naming its sweeper."""
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save({"hydra": {"sweeper": {"_target_": sweeper}}}, folder / "multirun.yaml")
    return folder


def test_resume_last_chooses_the_newest_of_the_run_folders_and_the_sweep_jobs(tmp_path, capsys):
    logs = tmp_path / "logs"
    run = fake_run(logs / "train" / "runs" / "a", "seed=1", 100)
    sweep = fake_sweep(logs / "train" / "multiruns" / "s", BASIC)
    job = fake_run(sweep / "1", "seed=2", 200)
    fake_run(sweep / "0", "seed=3", 50)
    argv = resume_argv(["train.py", "resume=last", f"paths.log_dir={logs}"], "train")
    # the newest is job 1 of the sweep: it continues as one run in its folder, with its overrides
    assert f"hydra.run.dir={job}" in argv and "seed=2" in argv and "hydra.mode=RUN" in argv
    note = capsys.readouterr().err
    assert f"It is a job of the sweep in {sweep}: it continues as a single run" in note
    os.utime(run / ".hydra" / "overrides.yaml", (300, 300))  # the run, started or resumed later
    # a new override of a key that only the run's own overrides make exist (a new user's
    # data=folder run: data.dataset.root) does not break finding the newest run
    new = ["resume=last", f"paths.log_dir={logs}", "data.dataset.root=data"]
    argv = resume_argv(["train.py", *new], "train")
    assert f"hydra.run.dir={run}" in argv and "seed=1" in argv
    assert "data.dataset.root=data" in argv  # applied on top of the run's own
    assert "sweep" not in capsys.readouterr().err
    # an Optuna search's job folder is told apart by the sweeper its multirun.yaml names
    assert sweep_of(job) == (sweep, False) and sweep_of(run) is None
    fake_sweep(sweep, OPTUNA)
    assert sweep_of(job) == (sweep, True)


@pytest.mark.slow
def test_a_multirun_job_resumes_in_its_folder_with_its_overrides(tmp_path):
    sweep_dir, job = tmp_path / "sweep", tmp_path / "sweep" / "0"
    tiny = [o for o in TINY if not o.startswith("trainer.max_epochs=")]
    args = ["-m", *tiny, "logger=csv", "trainer.max_epochs=1", "seed=8"]
    run_train_script([*args, f"hydra.sweep.dir={sweep_dir}"], tmp_path, TIMEOUT, check=True)
    result = run_train_script([f"resume={job}", "trainer.max_epochs=2"], tmp_path, TIMEOUT, True)
    assert f"It is a job of the sweep in {sweep_dir}" in result.stderr
    # the same folder, its own overrides (seed=8), one more epoch appended to its CSV log
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0"]
    assert "seed=8" in OmegaConf.load(job / ".hydra" / "overrides.yaml")
    assert torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    assert validated_epochs(job) == {0, 1}
    # its row in the sweep's summary: the resumed run's value, marked as resumed
    assert "its row in the sweep's summary is updated" in result.stderr
    (row,) = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    best = max(float(r["val/dice"]) for r in metric_rows(job) if r.get("val/dice"))
    assert (row["job"], row["status"]) == ("0", "completed (resumed)")
    assert float(row["value"]) == pytest.approx(best)
    assert "completed (resumed)" in (sweep_dir / "summary.md").read_text()


def test_a_resumed_job_without_a_row_takes_its_folders_number_and_its_own_overrides(tmp_path):
    plain = fake_sweep(tmp_path / "plain", BASIC)
    OmegaConf.save(
        {"hydra": {"sweeper": {"_target_": BASIC}, "overrides": {"task": ["seed=1"]}}},
        plain / "multirun.yaml",
    )
    job = fake_run(plain / "3", "seed=1", 1.0)  # stopped before it wrote job_result.json
    own = [f"resume={job}", f"ckpt_path={job}/checkpoints/last.ckpt", f"hydra.run.dir={job}"]
    task = ["seed=1", "model.depth=3", *own, "hydra.mode=RUN"]
    config = OmegaConf.create({"resume": str(job), "hydra": {"overrides": {"task": task}}})
    assert resumed_job(config, job) == (plain, 3, "model.depth=3")
    # a single run that resumed no sweep job, and an Optuna trial (the study's row stays)
    assert resumed_job(OmegaConf.create({"resume": None}), job) is None
    trial = fake_run(fake_sweep(tmp_path / "search", OPTUNA) / "0", "seed=1", 1.0)
    assert resumed_job(OmegaConf.merge(config, {"resume": str(trial)}), trial) is None


@pytest.mark.slow
def test_an_optuna_trial_stopped_by_sigterm_resumes_by_folder_and_the_search_retries_it(tmp_path):
    epochs = 4
    sweep_dir, job = tmp_path / "sweep", tmp_path / "sweep" / "0"
    tiny = [o for o in TINY if not o.startswith("trainer.max_epochs=")]
    args = ["-m", SEARCH, *tiny, "logger=csv", f"trainer.max_epochs={epochs}"]
    args += ["hydra.sweeper.n_trials=1", f"hydra.sweep.dir={sweep_dir}"]
    log_path = tmp_path / "search.log"
    process = start_train_script(args, tmp_path, log_path, start_new_session=True)
    try:
        while not (job / "checkpoints" / "last.ckpt").is_file():  # the trial's first epoch
            assert process.poll() is None, log_path.read_text()[-4000:]
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGTERM)  # a pre-emption of the whole search
        returncode = process.wait(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log_path.read_text()
    # recorded: the search exits 143; the trial stays RUNNING (its worker is gone: a rerun of the
    # search reclaims it); its job folder holds the point reached; the last line says what to do
    assert returncode == 128 + signal.SIGTERM, output[-4000:]
    assert trial_states(sweep_dir) == ["RUNNING"]
    stopped = torch.load(job / "checkpoints" / "interrupted.ckpt", weights_only=True)
    assert 0 < stopped["epoch"] < epochs
    assert (
        f"Resume with: python train.py resume={job}. This run is an Optuna trial of the search "
        f"in {sweep_dir}: rerunning the search's command with hydra.sweep.dir={sweep_dir} "
        "retries it under the study"
    ) in output

    # 1. its job folder resumes as one run, there, to the end; the study is not told
    result = run_train_script([f"resume={job}"], tmp_path, TIMEOUT, check=True)
    assert (
        f"It is an Optuna trial of the search in {sweep_dir}: it continues as a single run, "
        "which the study does not record"
    ) in result.stderr
    assert not (job / "checkpoints" / "interrupted.ckpt").exists()
    assert torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == epochs - 1
    assert validated_epochs(job) == set(range(epochs))
    assert any(row.get("test/dice") for row in metric_rows(job))
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0"]
    assert trial_states(sweep_dir) == ["RUNNING"]

    # 2. the search's command, rerun: the interrupted trial failed, its parameters run again
    run_train_script(args, tmp_path, TIMEOUT, check=True)
    study = load_study(sweep_dir)
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    assert study.trials[0].user_attrs[INTERRUPTED] is True
    assert study.trials[1].params == study.trials[0].params
    assert validated_epochs(sweep_dir / "1") == set(range(epochs))
