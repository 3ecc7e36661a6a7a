"""The W&B run starts in a background thread (seglab.tracking.WandbLogger): the job does not wait
for it, hyperparameters and metrics logged meanwhile are queued and written in order, using the
run waits for it, a failure to start is raised where the run is used next, and a job that ends
before using its run still finishes it complete. A command line with secrets starts the run in
the foreground (argv is hidden only then)."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
import wandb

from seglab import tracking
from seglab.tracking import WandbLogger
from seglab.tracking.wandb_logger import StartingRun, wait_for_background_starts
from seglab.train import run_task

from .helpers import wandb_records


class FakeConfig:
    def __init__(self):
        self.updates: list[dict] = []

    def update(self, params, allow_val_change=False):
        self.updates.append(dict(params))


class FakeRun:
    def __init__(self):
        self.config = FakeConfig()
        self.logged: list[dict] = []
        self.tags = ()
        self.id, self.name = "fake01", "unet"

    def log(self, row):
        self.logged.append(dict(row))


@pytest.fixture
def held_init(monkeypatch):
    """``wandb.init`` held until the test releases it; records the thread that called it."""
    release = threading.Event()
    calls: list[str] = []
    run = FakeRun()

    def init(**kwargs):
        calls.append(threading.current_thread().name)
        assert release.wait(30), "the test never released wandb.init"
        return run

    monkeypatch.setattr(wandb, "init", init)
    return release, calls, run


def test_start_returns_at_once_and_what_is_logged_meanwhile_is_written_in_order(held_init):
    release, calls, run = held_init
    logger = WandbLogger(project="seglab")
    logger.start()  # returns while wandb.init is still held
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"lr-AdamW": 0.1}, step=0)
    assert isinstance(logger.experiment, StartingRun)  # as Lightning's fit set-up touches it
    assert logger._experiment is None and run.config.updates == [] and run.logged == []
    threading.Timer(0.2, release.set).start()
    logger.experiment.tags = ("first",)  # using the stand-in waits for the run
    assert run.tags == ("first",)
    logger.log_metrics({"train/loss": 0.5}, step=10)  # the queue first, then this
    assert run.config.updates == [{"lr": 0.1}]
    assert run.logged == [
        {"lr-AdamW": 0.1, "trainer/global_step": 0},
        {"train/loss": 0.5, "trainer/global_step": 10},
    ]
    assert logger.experiment is run
    logger.log_hyperparams({"depth": 3})  # started: written at once
    assert run.config.updates == [{"lr": 0.1}, {"depth": 3}]
    assert calls == ["wandb-start"]


def test_start_in_the_foreground_starts_the_run_in_the_calling_thread(held_init):
    release, calls, run = held_init
    release.set()
    logger = WandbLogger(project="seglab")
    logger.start(background=False)
    assert logger._experiment is run
    assert calls == [threading.current_thread().name]


def test_tensorboard_sync_starts_the_run_in_the_calling_thread(held_init):
    release, calls, run = held_init
    release.set()
    logger = WandbLogger(project="seglab", sync_tensorboard=True)
    logger.start()  # W&B must patch TensorBoard before any writer exists
    assert logger._experiment is run and calls == [threading.current_thread().name]


def test_pickling_the_logger_waits_for_the_run_and_leaves_the_thread_out(held_init):
    # (Lightning pickles loggers for strategy=ddp_spawn; the spawned processes attach to the run)
    release, _, run = held_init
    logger = WandbLogger(project="seglab")
    logger.start()
    logger.log_hyperparams({"lr": 0.1})
    threading.Timer(0.2, release.set).start()
    state = logger.__getstate__()
    assert state["_start_thread"] is None and state["_queued"] == []
    assert state["_id"] == "fake01" and state["_experiment"] is None
    assert run.config.updates == [{"lr": 0.1}]


def test_a_run_that_cannot_start_fails_where_it_is_used_naming_the_cause(monkeypatch, caplog):
    def init(**kwargs):
        raise wandb.errors.CommError("entity 'nobody' not found")

    monkeypatch.setattr(wandb, "init", init)
    logger = WandbLogger(project="seglab")
    logger.start()
    with pytest.raises(RuntimeError, match="W&B run could not start: entity 'nobody' not found"):
        logger.experiment.log({"train/loss": 0.5})
    # the training's next logging call is where a job finds out
    logging_too = WandbLogger(project="seglab")
    logging_too.start()
    logging_too._start_thread.join()
    with pytest.raises(RuntimeError, match="could not start: entity 'nobody' not found"):
        logging_too.log_metrics({"train/loss": 0.5}, step=10)
    # closing a job whose run failed to start logs the cause and does not raise again
    failed = WandbLogger(project="seglab")
    failed.start()
    with caplog.at_level(logging.ERROR):
        wait_for_background_starts()
    assert "could not start: entity 'nobody' not found" in caplog.text


def test_finishing_a_job_waits_for_a_run_nothing_used(held_init):
    release, _, run = held_init
    logger = WandbLogger(project="seglab")
    logger.start()
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"lr-AdamW": 0.1}, step=0)
    threading.Timer(0.2, release.set).start()
    tracking.finish(1)  # e.g. the job failed before the run was up
    assert run.config.updates == [{"lr": 0.1}]
    assert run.logged == [{"lr-AdamW": 0.1, "trainer/global_step": 0}]


def recording_init(monkeypatch, check=lambda: None) -> list[str]:
    """The real ``wandb.init``, recording the name of the thread that calls it."""
    started_in: list[str] = []
    real_init = wandb.init

    def init(**kwargs):
        started_in.append(threading.current_thread().name)
        check()
        return real_init(**kwargs)

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(wandb, "init", init)
    return started_in


def test_a_training_run_starts_its_offline_wandb_run_in_the_background(
    tiny_cfg, tmp_path, monkeypatch
):
    started_in = recording_init(monkeypatch)
    run_task(tiny_cfg("logger=wandb"))
    assert started_in == ["wandb-start"]
    records = wandb_records.read_finished(tmp_path)
    assert wandb_records.config(records)["model.depth"] == 2
    assert any("val/dice" in row for row in wandb_records.history(records))
    assert wandb_records.exit_code(records) == 0


def test_a_command_line_with_a_secret_starts_the_run_in_the_foreground_hidden(
    tiny_cfg, tmp_path, monkeypatch
):
    secret = "config-secret-777-ABC"
    argv = ["train.py", f"+secret_token={secret}"]
    monkeypatch.setattr(sys, "argv", list(argv))

    def argv_hidden():  # what W&B records as the command line
        assert secret not in " ".join(sys.argv)

    started_in = recording_init(monkeypatch, check=argv_hidden)
    run_task(tiny_cfg("logger=wandb", f"+secret_token={secret}"))
    assert started_in == [threading.current_thread().name]
    assert sys.argv == argv  # restored afterwards (DDP's extra processes re-run it)
    records = wandb_records.read_finished(tmp_path)
    assert secret.encode() not in wandb_records.run_file(tmp_path).read_bytes()
    assert wandb_records.exit_code(records) == 0
