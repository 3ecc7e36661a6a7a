"""Budget schedules: lr at given steps and elapsed times (a fake clock), and their wiring into the
module and trainer (steps from trainer.estimated_stepping_batches, time from trainer.max_time)."""

import functools
import io
import math

import pytest
import torch

from seglab.schedules import Budget, StepSchedule, TimeSchedule, budget_factor, build_scheduler

from .conftest import TINY, compose_train

# the tiny run without callbacks, loggers, checkpoints or validation
BARE = [
    *(o for o in TINY if not o.startswith("callbacks.")),
    "callbacks=none",
    "logger=none",
    "test=false",
    "check_data=false",
    "trainer.limit_val_batches=0",
    "+trainer.enable_checkpointing=false",
    "+trainer.enable_progress_bar=false",
]


def optimizer(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def lrs_over(scheduler, steps):
    values = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        values.append(scheduler.get_last_lr()[0])
    return values


def test_budget_factor_warms_up_then_decays_to_the_floor():
    cosine = dict(warmup=0.1, decay="cosine", power=0.9, min_lr_ratio=0.1)
    assert budget_factor(0.0, **cosine) == 0.0
    assert budget_factor(0.05, **cosine) == pytest.approx(0.5)
    assert budget_factor(0.1, **cosine) == pytest.approx(1.0)
    assert budget_factor(0.55, **cosine) == pytest.approx(0.1 + 0.9 * 0.5)
    assert budget_factor(1.0, **cosine) == budget_factor(7.0, **cosine) == pytest.approx(0.1)
    poly = {**cosine, "decay": "poly", "warmup": 0.0, "min_lr_ratio": 0.0}
    assert budget_factor(0.5, **poly) == pytest.approx(0.5**0.9)


def test_step_schedule_follows_the_steps():
    scheduler = StepSchedule(optimizer(), total_steps=10, warmup=0.2)
    lrs = lrs_over(scheduler, 10)
    assert lrs[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert lrs[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[10] == pytest.approx(0.0)


def test_time_schedule_follows_the_clock_not_the_steps():
    now = [0.0]
    scheduler = TimeSchedule(optimizer(2.0), max_time=100, elapsed=lambda: now[0], warmup=0.1)
    assert scheduler.get_last_lr() == [0.0]
    for seconds, lr in [(5, 1.0), (10, 2.0), (55, 1.0), (100, 0.0), (130, 0.0)]:
        now[0] = seconds
        scheduler.optimizer.step()
        scheduler.step()
        assert scheduler.get_last_lr()[0] == pytest.approx(lr), seconds
    state = scheduler.state_dict()  # the clock stays out of checkpoints (weights_only loading)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert "elapsed" not in torch.load(buffer, weights_only=True)


def test_build_scheduler_gives_budget_schedules_the_budget():
    budget = Budget(total_steps=40, max_time=60.0, elapsed=lambda: 30.0)
    step_factory = functools.partial(StepSchedule, total_steps=None)  # as the config gives it
    step, interval = build_scheduler(step_factory, optimizer(), lambda: budget)
    assert isinstance(step, StepSchedule) and step.total_steps == 40 and interval == "step"
    time_factory = functools.partial(TimeSchedule, warmup=0.0)
    scheduler, _ = build_scheduler(time_factory, optimizer(), lambda: budget)
    assert scheduler.get_last_lr()[0] == pytest.approx(0.5)  # half the time spent
    cosine = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=3)
    assert build_scheduler(cosine, optimizer(), lambda: 1 / 0)[1] == "epoch"
    with pytest.raises(ValueError, match="trainer.max_time=DD:HH:MM:SS"):
        build_scheduler(time_factory, optimizer(), lambda: Budget(total_steps=40))
    with pytest.raises(ValueError, match="set trainer.max_steps"):
        build_scheduler(functools.partial(StepSchedule), optimizer(), lambda: Budget(math.inf))


def test_schedules_follow_the_trainers_budget(tmp_path):
    """Through the module and Lightning: samples_per_epoch=24 at batch 4 is 6 steps an epoch; the
    step schedule ends at its floor after the epoch, and the time schedule reads the Timer."""
    from seglab.train import instantiate

    base = [*BARE, "data.samples_per_epoch=24", "trainer.max_epochs=1"]
    cfg = compose_train(tmp_path, [*base, "scheduler=warmup_cosine", "scheduler.min_lr_ratio=0.1"])
    run = instantiate(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    scheduler = run.trainer.lr_scheduler_configs[0].scheduler
    assert run.trainer.num_training_batches == 6 and run.trainer.global_step == 6
    assert scheduler.total_steps == 6
    assert scheduler.get_last_lr()[0] == pytest.approx(0.1 * cfg.optimizer.lr)
    cfg = compose_train(
        tmp_path,
        [*base, "scheduler=time_cosine", "trainer.max_time=00:00:10:00"],
    )
    run = instantiate(cfg)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    scheduler = run.trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.max_time == 600
    assert 0 < scheduler.get_last_lr()[0] < cfg.optimizer.lr  # warming up (the first 2% of 10 min)
