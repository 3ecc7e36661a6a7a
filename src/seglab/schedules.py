"""Learning-rate schedules that follow a run's real budget, stepped after every optimiser step.

- :class:`StepSchedule`: linear warm-up, then cosine / polynomial / linear decay over the optimiser
  steps of the whole run (``trainer.estimated_stepping_batches``: batches per epoch x
  ``max_epochs``, or ``max_steps``).
- :class:`TimeSchedule`: the same shape over the elapsed fraction of ``trainer.max_time``, read
  from Lightning's ``Timer`` at every step (the Timer keeps its elapsed time in checkpoints, so a
  resumed run continues the decay where it stopped).

Under DDP each process reads its own Timer, so the ranks' learning rates under ``TimeSchedule``
can differ by the few milliseconds between their clocks (a relative difference of ~1e-5 in a
10-minute budget); ``StepSchedule`` is identical on every rank.

Torch's own schedulers (``CosineAnnealingLR``, ``PolynomialLR``: ``scheduler=cosine``/``poly``) are
stepped once per epoch. :func:`build_scheduler` is what ``SegmentationModule`` calls: it hands a
budget schedule the trainer's :class:`Budget`, any other factory the optimiser alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

DECAYS = ("cosine", "poly", "linear", "constant")


def budget_factor(
    progress: float, warmup: float, decay: str, power: float, min_lr_ratio: float
) -> float:
    """The learning rate's multiple of its base value at ``progress`` (0..1) of the budget: linear
    from 0 over the first ``warmup`` of it, then ``decay`` down to ``min_lr_ratio``."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return progress / warmup
    t = (progress - warmup) / (1.0 - warmup) if warmup < 1.0 else 1.0
    shape = {
        "cosine": 0.5 * (1.0 + math.cos(math.pi * t)),
        "poly": (1.0 - t) ** power,
        "linear": 1.0 - t,
        "constant": 1.0,
    }[decay]
    return min_lr_ratio + (1.0 - min_lr_ratio) * shape


@dataclass(frozen=True)
class Budget:
    """What a run may spend: optimiser steps (``inf`` when unbounded) and, with
    ``trainer.max_time``, seconds, with ``elapsed()`` the seconds spent so far."""

    total_steps: float
    max_time: float | None = None
    elapsed: Callable[[], float] | None = None

    @classmethod
    def of(cls, trainer: Any) -> Budget:
        from lightning.pytorch.callbacks import Timer

        timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
        timer = timers[0] if timers and timers[0].time_remaining() is not None else None
        if timer is None:
            return cls(total_steps=trainer.estimated_stepping_batches)
        max_time = timer.time_elapsed() + timer.time_remaining()
        return cls(trainer.estimated_stepping_batches, max_time, timer.time_elapsed)


class BudgetSchedule(LRScheduler):
    """``base_lr * budget_factor(progress())`` after every optimiser step; subclasses define the
    progress (0..1) through the budget."""

    interval = "step"

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup: float = 0.0,
        decay: str = "cosine",
        power: float = 0.9,
        min_lr_ratio: float = 0.0,
    ):
        if decay not in DECAYS:
            raise ValueError(f"scheduler.decay={decay!r} is not one of {DECAYS}: use one of them")
        if not 0.0 <= warmup < 1.0:
            raise ValueError(
                f"scheduler.warmup={warmup} is the warm-up's fraction of the budget: use a value "
                "in [0, 1), e.g. 0.02"
            )
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(
                f"scheduler.min_lr_ratio={min_lr_ratio} is the final lr's fraction of the "
                "initial one: use a value in [0, 1], e.g. 0.0"
            )
        self.warmup, self.decay, self.power, self.min_lr_ratio = warmup, decay, power, min_lr_ratio
        super().__init__(optimizer)

    def progress(self) -> float:
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        factor = budget_factor(
            self.progress(), self.warmup, self.decay, self.power, self.min_lr_ratio
        )
        return [base_lr * factor for base_lr in self.base_lrs]

    @classmethod
    def for_budget(cls, factory: Callable[..., BudgetSchedule], optimizer, budget: Budget):
        raise NotImplementedError


class StepSchedule(BudgetSchedule):
    """Warm-up and decay over ``total_steps`` optimiser steps (``None`` in a config: the trainer's
    ``estimated_stepping_batches``)."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, **shape: Any):
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(
                f"scheduler.total_steps={total_steps} must be a whole number of steps >= 1 "
                "(leave it null: the run's optimiser steps)"
            )
        self.total_steps = total_steps
        super().__init__(optimizer, **shape)

    def progress(self) -> float:
        return self.last_epoch / self.total_steps

    @classmethod
    def for_budget(cls, factory, optimizer, budget: Budget):
        if getattr(factory, "keywords", {}).get("total_steps") is not None:
            return factory(optimizer=optimizer)
        if not math.isfinite(budget.total_steps):
            raise ValueError(
                "scheduler=warmup_cosine/warmup_poly decay over the run's optimiser steps, but "
                "the run has no step limit (trainer.max_epochs=-1, trainer.max_steps=-1): set "
                "trainer.max_steps, or with trainer.max_time use scheduler=time_cosine"
            )
        return factory(optimizer=optimizer, total_steps=int(budget.total_steps))


class TimeSchedule(BudgetSchedule):
    """Warm-up and decay over ``max_time`` seconds, ``elapsed()`` being the seconds spent (in
    training: Lightning's ``Timer``, set by ``trainer.max_time``)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_time: float,
        elapsed: Callable[[], float],
        **shape: Any,
    ):
        if not max_time or max_time <= 0:
            raise ValueError(f"scheduler max_time={max_time} s must be positive")
        self.max_time, self.elapsed = float(max_time), elapsed
        super().__init__(optimizer, **shape)

    def progress(self) -> float:
        return self.elapsed() / self.max_time

    def state_dict(self) -> dict[str, Any]:
        # the clock is the trainer's Timer (its elapsed time is saved by the Timer itself)
        return {k: v for k, v in super().state_dict().items() if k != "elapsed"}

    @classmethod
    def for_budget(cls, factory, optimizer, budget: Budget):
        if budget.max_time is None:
            raise ValueError(
                "scheduler=time_cosine decays over trainer.max_time, which is not set: set "
                "trainer.max_time=DD:HH:MM:SS (e.g. 00:00:10:00), or use scheduler=warmup_cosine"
            )
        return factory(optimizer=optimizer, max_time=budget.max_time, elapsed=budget.elapsed)


def build_scheduler(factory: Callable[..., LRScheduler], optimizer, budget: Callable[[], Budget]):
    """``(scheduler, interval)``: a :class:`BudgetSchedule` built for ``budget()`` (called only for
    one, since it may load the train loader) and stepped per step; any other scheduler from
    ``factory(optimizer=...)``, stepped per epoch."""
    target = getattr(factory, "func", factory)
    if isinstance(target, type) and issubclass(target, BudgetSchedule):
        return target.for_budget(factory, optimizer, budget()), "step"
    return factory(optimizer=optimizer), "epoch"
