"""Lightning's W&B logger, with the W&B run started in a background thread.

Starting a W&B run takes about a second on a 2-core CPU (``import wandb``, its service process,
the run's files) before the first training step, in every job of a sweep. Here
:meth:`WandbLogger.start` begins it in a thread and returns at once. Until the run is up, the
hyperparameters and metrics logged are queued (in order), and ``logger.experiment`` is a stand-in
(:class:`StartingRun`): Lightning touches it before the fit starts, and only using one of its
attributes (a callback's images, the pruning callback's summary) waits for the run. Once the run is
up, the next logging call writes the queue first. A failure to start is raised at the first use
after it, in the training thread. :func:`wait_for_background_starts` (called by
:func:`seglab.tracking.finish` before the run is closed) waits for runs still starting and writes
their queues, so a job that fails or ends early still leaves its W&B run complete.

What the console shows before the run has started (e.g. the model summary) is missing from the W&B
run's console log; the log lines of that time are in the job's ``train.log``, as always.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)

_starting: set[WandbLogger] = set()  # loggers whose background start nobody has waited for


class StartingRun:
    """Stands for the W&B run while it starts: getting or setting any attribute waits for the
    run and then acts on it."""

    def __init__(self, logger: WandbLogger) -> None:
        object.__setattr__(self, "_logger", logger)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._run(), name, value)

    def _run(self) -> Any:
        self._logger.wait()
        return self._logger.experiment


class WandbLogger(LightningWandbLogger):
    """:class:`lightning.pytorch.loggers.WandbLogger` with :meth:`start` (see the module
    docstring); without ``start`` it behaves as Lightning's (the run starts at first use)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start_thread: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self._queued: list[functools.partial] = []

    @rank_zero_only
    def start(self, background: bool = True) -> None:
        """Start the W&B run: in a thread (``background``), or now, in this thread. W&B's
        TensorBoard sync needs its run before any TensorBoard writer: it starts now."""
        if self._experiment is not None or self._start_thread is not None:
            return
        if not background or self._wandb_init.get("sync_tensorboard"):
            _ = self.experiment
            return
        self._start_thread = threading.Thread(
            target=self._start_run, name="wandb-start", daemon=True
        )
        _starting.add(self)
        self._start_thread.start()

    def _start_run(self) -> None:
        try:
            _ = LightningWandbLogger.experiment.fget(self)
        except BaseException as error:  # raised in the training thread, by wait()
            self._start_error = error

    def starting(self) -> bool:
        """Whether the run is still starting in the background."""
        thread = self._start_thread
        return thread is not None and thread.is_alive()

    def wait(self) -> None:
        """Wait for a background start; then write what was queued meanwhile."""
        thread = self._start_thread
        if thread is None:
            return
        thread.join()
        self._start_thread = None
        _starting.discard(self)
        if self._start_error is not None:
            error, self._start_error = self._start_error, None
            self._queued = []
            raise RuntimeError(f"The W&B run could not start: {error}") from error
        queued, self._queued = self._queued, []
        for call in queued:
            call()

    @property
    @rank_zero_experiment
    def experiment(self):  # noqa: ANN201 (wandb's Run, or its stand-in while it starts)
        if self.starting():
            return StartingRun(self)
        self.wait()
        return super().experiment

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        if self.starting():
            self._queued.append(functools.partial(super().log_hyperparams, params))
            return
        self.wait()
        super().log_hyperparams(params)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.starting():
            self._queued.append(functools.partial(super().log_metrics, dict(metrics), step))
            return
        self.wait()
        super().log_metrics(metrics, step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if status == "success":
            self.wait()  # the model artifacts need the run
        super().finalize(status)

    def __getstate__(self) -> dict[str, Any]:
        self.wait()  # no thread in the state; the spawned processes attach to the started run
        return super().__getstate__()


def wait_for_background_starts() -> None:
    """Wait for every W&B run still starting in the background (see :meth:`WandbLogger.wait`);
    a run that failed to start is logged, not raised: the caller is closing the job."""
    for logger in list(_starting):
        try:
            logger.wait()
        except RuntimeError as error:
            log.error("%s", error)
