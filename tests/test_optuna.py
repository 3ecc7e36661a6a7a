"""Optuna search (``python train.py -m hparams_search=unet_optuna``): the search space the config
promises, resuming an interrupted study, failed trials, and errors that must stop the search.

Searches run the real script in a subprocess on the tiny data, one epoch per trial.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from seglab.config import CONFIG_DIR
from seglab.sweeps.budget import INTERRUPTED, JOB, left
from seglab.sweeps.launching import WatchedLauncher
from seglab.sweeps.search_space import parse_params
from seglab.sweeps.workers import WORKER

from .conftest import TINY, run_train_script
from .helpers import wandb_records
from .helpers.runs import last_metrics, start_train_script, sweep_summary, validated_epochs

SEARCH = "hparams_search=unet_optuna"
STUDY = "unet_optuna"
SWEEPER = "hydra_plugins.seglab_plugins.optuna_sweeper.ResumableOptunaSweeper"


def tiny(*searched: str) -> list[str]:
    """The tiny run with one epoch and the CSV logger; keys in ``searched`` are left to the
    search (a key given on the command line is a fixed parameter)."""
    fixed = [o for o in TINY if o.split("=")[0] not in {"trainer.max_epochs", *searched}]
    return [*fixed, "trainer.max_epochs=1", "logger=csv"]


def compose_search(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[SEARCH, *overrides], return_hydra_config=True)


def load_study(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def trial_states(sweep_dir: Path) -> list[str]:
    """The states of the study's trials, read-only (optuna's storage would create the tables,
    racing the search that creates them); empty while there is no study yet."""
    path = sweep_dir / "optuna.db"
    if not path.is_file():
        return []
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return [state for (state,) in db.execute("SELECT state FROM trials ORDER BY number")]
    except sqlite3.OperationalError:  # no tables yet, or locked for a moment
        return []


def assert_best_written(sweep_dir: Path, study: optuna.Study) -> None:
    """optimization_results.yaml names the best COMPLETE trial, its parameters and job."""
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    complete = study.get_trials(states=[TrialState.COMPLETE])
    best = study.trials[results.best_trial]
    assert best.state == TrialState.COMPLETE
    assert results.best_value == pytest.approx(max(t.value for t in complete))
    assert best.value == pytest.approx(results.best_value)
    assert OmegaConf.to_container(results.best_params) == best.params
    assert results.best_job == best.user_attrs[JOB]


# -- the config ------------------------------------------------------------------------------


def test_unet_optuna_composes_with_the_promised_search_space():
    cfg = compose_search()
    sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False)
    assert sweeper["_target_"] == SWEEPER
    assert sweeper["sampler"]["_target_"] == "optuna.samplers.TPESampler"
    assert isinstance(sweeper["sampler"]["seed"], int)
    assert sweeper["direction"] == "maximize" and sweeper["n_trials"] > 0
    assert sweeper["storage"] == "sqlite:///${hydra.sweep.dir}/optuna.db"
    assert sweeper["max_failure_rate"] == 1.0  # failed trials never stop the search
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.optimized_metric == "val/dice_best"

    params = [f"{key}={value}" for key, value in sweeper["params"].items()]
    space, fixed = parse_params(params)  # as the sweeper parses them
    assert fixed == {}
    assert space["optimizer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["optimizer.weight_decay"] == FloatDistribution(1e-6, 1e-2, log=True)
    assert space["model.base_width"] == CategoricalDistribution([8, 16, 32])
    assert space["model.depth"] == CategoricalDistribution([2, 3, 4])
    assert set(space["loss"].choices) == {p.stem for p in (CONFIG_DIR / "loss").glob("*.yaml")}
    assert set(space["data/augmentation"].choices) == {"default", "light", "strong", "none"}
    # every value of the search space composes with the rest of the config
    for name, distribution in space.items():
        if isinstance(distribution, CategoricalDistribution):
            values = distribution.choices
        else:
            values = [distribution.low, distribution.high]
        for value in values:
            trial_cfg = compose_search(f"{name}={value}")
            if "." in name:  # a value; the others choose a config of a group
                assert OmegaConf.select(trial_cfg, name) == value
    assert compose_search("loss=ce").loss._target_ == "seglab.losses.CrossEntropyLoss"
    light = compose_search("data/augmentation=light").hydra.runtime.choices
    assert light["data/augmentation"] == "light"


@pytest.mark.slow
def test_an_unknown_search_name_lists_the_available_ones(tmp_path):
    result = run_train_script(["-m", "hparams_search=unet_optima"], cwd=tmp_path)
    assert result.returncode == 1
    assert "Could not find 'hparams_search/unet_optima'" in result.stderr
    assert "Available options in 'hparams_search':" in result.stderr
    assert "unet_optuna" in result.stderr


# -- the sweeper, in-process -----------------------------------------------------------------


def dead_pid() -> int:
    """The process id of a process that has ended."""
    code = "import os; print(os.getpid())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout)


def make_sweeper(storage: str | None, n_trials: int = 3, **settings):
    """The search in-process (no Hydra launch): a seeded random sampler (unless ``settings``
    give one) over ``storage``."""
    from seglab.sweeps.resumable_optuna import ResumableOptunaSweeperImpl

    return ResumableOptunaSweeperImpl(
        direction="maximize",
        storage=storage,
        study_name=STUDY,
        n_trials=n_trials,
        **{"sampler": optuna.samplers.RandomSampler(seed=0), "n_jobs": 1, "max_failure_rate": 1.0}
        | settings,
    )


def test_resume_fails_and_requeues_the_interrupted_trial_and_continues_job_numbers(tmp_path):
    storage = f"sqlite:///{tmp_path / 'new folder' / 'optuna.db'}"
    sweeper = make_sweeper(storage, n_trials=3)
    study = sweeper.open_study()  # creates the storage's folder first
    done = study.ask({"x": CategoricalDistribution([1, 2])})
    study.tell(done, 0.5)
    running = study.ask({"x": CategoricalDistribution([1, 2])})  # as a killed search leaves it
    running.set_user_attr(WORKER, f"{socket.gethostname()}:{dead_pid()}")

    assert sweeper.resume(study) == 1  # completed trials
    # 2 trials left; the next job is #2 (job number = trial number)
    assert left(study, sweeper.n_trials) == 2 and len(study.trials) == 2 + 1
    trials = study.get_trials()
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs[INTERRUPTED] is True
    # queued: the next trial re-runs the interrupted one's parameters
    assert trials[2].state == TrialState.WAITING
    assert trials[2].system_attrs["fixed_params"] == running.params
    # a second resume counts the interrupted trial nowhere
    assert make_sweeper(storage, n_trials=3).resume(study) == 1


def test_a_storage_that_cannot_be_opened_stops_with_the_setting_and_the_fix():
    with pytest.raises(RuntimeError, match=r"hydra.sweeper.storage='nosuchdb://x'.*sqlite:///"):
        make_sweeper("nosuchdb://x").open_study()


class FakeLauncher:
    def __init__(self, *returns: JobReturn) -> None:
        self.returns = list(returns)

    def launch(self, job_overrides, initial_job_idx):
        return self.returns


def job_return(status: JobStatus, value) -> JobReturn:
    return JobReturn(overrides=["x=1"], status=status, _return_value=value)


def test_a_job_without_objective_stops_the_search_and_says_what_to_set():
    launcher = WatchedLauncher(FakeLauncher(job_return(JobStatus.COMPLETED, None)))
    with pytest.raises(ValueError, match="optimized_metric=val/dice_best"):
        launcher.launch([["x=1"]], initial_job_idx=0)
    failed = job_return(JobStatus.FAILED, FloatingPointError("loss is nan"))
    launcher = WatchedLauncher(FakeLauncher(job_return(JobStatus.COMPLETED, 0.5), failed))
    assert len(launcher.launch([["x=1"], ["x=2"]], initial_job_idx=0)) == 2
    assert launcher.completed == 1 and launcher.failed == [failed]


# -- real searches -----------------------------------------------------------------------------


def kill_search_when(condition: Callable[[], bool], args: list[str], cwd: Path) -> None:
    """Start the search ``args`` and SIGKILL its whole process group once ``condition()``."""
    log_path = cwd / "first.log"
    process = start_train_script(args, cwd, log_path, start_new_session=True)
    try:
        while not condition():
            assert process.poll() is None, log_path.read_text()[-4000:]
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def interrupted_in_a_trial(sweep_dir: Path) -> bool:
    """A trial has completed and the running one's job has started (its folder exists)."""
    states = trial_states(sweep_dir)
    started = (sweep_dir / str(len(states) - 1) / ".hydra").is_dir()
    return "COMPLETE" in states and states[-1] == "RUNNING" and started


@pytest.mark.slow
def test_an_interrupted_search_resumes_to_n_trials_in_all(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", SEARCH, *tiny(), "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep_dir}"]
    # interrupt for real: kill the whole process group while a trial after the first one runs
    kill_search_when(lambda: interrupted_in_a_trial(sweep_dir), args, tmp_path)
    # usually [COMPLETE, RUNNING]; on a slow poll the second trial may have completed already
    killed = len(trial_states(sweep_dir)) - 1  # the number of the trial that was running
    assert killed in (1, 2) and trial_states(sweep_dir)[killed] == "RUNNING"

    result = run_train_script(args, cwd=tmp_path, check=True)  # the same command resumes
    assert f"Resuming study 'unet_optuna': {killed} trial(s) finished" in result.stdout
    assert "sampler TPESampler (seed 1234 + trial number)" in result.stdout
    study = load_study(sweep_dir)
    trials = study.trials
    # n_trials=3 in all: the interrupted trial failed, is not counted, and its params ran again
    states = ["COMPLETE"] * killed + ["FAIL"] + ["COMPLETE"] * (3 - killed)
    assert [t.state.name for t in trials] == states
    assert trials[killed].user_attrs[INTERRUPTED] is True
    assert trials[killed + 1].params == trials[killed].params
    # each completed trial in its own job folder (numbering continued), which holds its params
    complete = study.get_trials(states=[TrialState.COMPLETE])
    jobs = [t.user_attrs[JOB] for t in complete]
    assert jobs == [t.number for t in complete] and killed not in jobs
    # the resumed search drew new parameters (trial numbers went on), not the first run's again
    assert len({repr(sorted(t.params.items())) for t in complete}) == len(complete)
    for trial in complete:
        job_dir = sweep_dir / str(trial.user_attrs[JOB])
        overrides = OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")
        assert {f"{name}={value}" for name, value in trial.params.items()} <= set(overrides)
        assert last_metrics(job_dir)["val/dice_best"] == pytest.approx(trial.value, abs=1e-6)
    assert_best_written(sweep_dir, study)
    # the summary lists the trials of both runs; the interrupted one never ended
    rows = sweep_summary(sweep_dir)
    assert sorted(rows) == jobs
    assert all(row["status"] == "completed" for row in rows.values())
    assert "Sweep summary" in result.stdout


@pytest.mark.slow
def test_the_killed_trials_copy_continues_from_its_checkpoint(tmp_path):
    sweep_dir = tmp_path / "sweep"
    epochs = [o for o in tiny() if not o.startswith("trainer.max_epochs=")]
    args = ["-m", SEARCH, *epochs, "trainer.max_epochs=6", "hydra.sweeper.n_trials=1"]
    args.append(f"hydra.sweep.dir={sweep_dir}")
    last = sweep_dir / "0" / "checkpoints" / "last.ckpt"
    kill_search_when(last.is_file, args, tmp_path)  # as soon as trial 0 saved its first epoch
    assert trial_states(sweep_dir) == ["RUNNING"]
    saved_epoch = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert saved_epoch < 5  # killed mid-trial

    result = run_train_script(args, cwd=tmp_path, check=True)  # the same command resumes
    assert f"Trial 1 re-runs trial 0: it continues from {last}" in result.stdout
    trials = load_study(sweep_dir).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == trials[0].params
    # the copy trained the epochs the killed trial had left, in its own folder, to max_epochs
    assert validated_epochs(sweep_dir / "1") == set(range(saved_epoch + 1, 6))
    overrides = OmegaConf.load(sweep_dir / "1" / ".hydra" / "overrides.yaml")
    assert f"ckpt_path='{last}'" in overrides
    assert last_metrics(sweep_dir / "1")["val/dice_best"] == pytest.approx(trials[1].value)


@pytest.mark.slow
def test_a_failed_trial_is_recorded_and_the_search_goes_on(tmp_path):
    sweep_dir = tmp_path / "sweep"
    with_wandb = [o for o in tiny("model.depth") if o != "logger=csv"] + ["logger=wandb"]
    result = run_train_script(
        ["-m", SEARCH, *with_wandb, "model.depth=choice(0,2)"]
        # trial n draws from a seed of (seed, n): with seed 3 the three trials draw depth 2, 0, 2
        # (the default 1234 draws 2, 2, 2: no failure to record)
        + ["hydra.sweeper.sampler.seed=3", "hydra.sweeper.n_trials=3"]
        + [f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
    )
    # the search completed: exit code 0, failures are in the study and the summary
    assert result.returncode == 0, result.stderr[-4000:]
    study = load_study(sweep_dir)
    states = {t.number: (t.params["model.depth"], t.state) for t in study.trials}
    assert len(states) == 3
    assert {state for _, state in states.values()} == {TrialState.COMPLETE, TrialState.FAIL}
    for depth, state in states.values():  # depth 0 raises in the model's constructor
        assert state == (TrialState.FAIL if depth == 0 else TrialState.COMPLETE)
    assert_best_written(sweep_dir, study)
    rows = sweep_summary(sweep_dir)
    for number, (_, state) in states.items():
        if state == TrialState.FAIL:
            assert "UNet depth must be >= 1" in rows[number]["status"]
            assert rows[number]["value"] == ""
        else:
            assert rows[number]["status"] == "completed"
            # the trial's W&B run: named by the parameters the search drew, grouped by the sweep
            records = wandb_records.read_finished(sweep_dir / str(number))
            run = wandb_records.run_info(records)
            params = study.trials[number].params
            assert run.display_name.startswith(f"unet-lr{params['optimizer.lr']:.4g}-")
            assert f"-depth2-{params['loss']}-" in run.display_name
            assert "num_samples" not in run.display_name  # fixed for the whole search
            assert run.run_group == "sweep"


@pytest.mark.slow
def test_a_search_where_every_trial_fails_exits_with_the_trials_error(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_train_script(
        ["-m", SEARCH, *tiny("model.depth"), "model.depth=0"]
        + ["hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "UNet depth must be >= 1" in result.stderr
    assert "No trials are completed yet" not in result.stderr
    assert [t.state for t in load_study(sweep_dir).trials] == [TrialState.FAIL] * 2


@pytest.mark.slow
def test_an_unknown_search_parameter_stops_the_search_naming_it(tmp_path):
    result = run_train_script(
        ["-m", SEARCH, *tiny(), "model.dpth=choice(2,3)", f"hydra.sweep.dir={tmp_path / 's'}"],
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "Could not override 'model.dpth'" in result.stderr
    assert "Key 'dpth' is not in struct" in result.stderr
