"""``@task_wrapper`` (as lightning-hydra-template's): every task ends with the W&B run finished and
with an exit code that says how it ended.

- success: exit code 0;
- an exception: the W&B run is finished with exit code 1 (failed on the dashboard) and the
  exception goes on, so a single run exits 1 through Hydra and a multirun records the job as
  failed and goes on with the next one (as Hydra and the Optuna search do);
- an interruption: SIGTERM (a scheduler's pre-emption), SIGUSR1 (SLURM's warning before the time
  limit) or Ctrl-C (SIGINT). During fit :class:`seglab.callbacks.Interruption` stops after the
  current batch with ``checkpoints/interrupted.ckpt``; elsewhere (a second Ctrl-C, the test)
  Lightning stops where it is. The run can be resumed, so the W&B run is *finished* (exit code 0,
  not failed or crashed) with ``interrupted: <signal>`` in its summary; the process exits with
  128 + the signal (143, 138, 130) and logs one line with the command that resumes it. The
  ``SystemExit`` also stops a sweep.

In a multirun each job runs inside :func:`seglab.sweeps.ddp.multirun_job` so that DDP children
run that job only.
"""

from __future__ import annotations

import functools
import logging
import shlex
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from seglab.callbacks.interruption import Interrupted, interruption_of
from seglab.sweeps.ddp import multirun_job
from seglab.tracking.run import finish

log = logging.getLogger(__name__)

SIGTERM_EXIT = 128 + signal.SIGTERM  # 143
SIGINT_EXIT = 128 + signal.SIGINT  # 130
INTERRUPTIONS = {
    SIGTERM_EXIT: "SIGTERM",
    SIGINT_EXIT: "Ctrl-C (SIGINT)",
    128 + signal.SIGUSR1: "SIGUSR1",  # 138
}
T = TypeVar("T")


def exit_code(error: BaseException) -> int:
    """The process exit code that reports ``error``."""
    interrupted = interruption_of(error)
    if interrupted is not None:
        return 128 + interrupted.signum
    if isinstance(error, SIGTERMException):
        return SIGTERM_EXIT
    if isinstance(error, KeyboardInterrupt) or isinstance(error.__context__, KeyboardInterrupt):
        return SIGINT_EXIT  # also Lightning's sys.exit(1) raised while handling Ctrl-C
    if isinstance(error, SystemExit):
        if error.code is None or isinstance(error.code, int):
            return error.code or 0
        return 1  # sys.exit("message")
    return 1


def task_wrapper(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """Run ``task(cfg)`` and finish the W&B run with the task's exit code, also when it fails or
    is interrupted (see the module docstring)."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> T:
        try:
            with multirun_job():
                result = task(cfg)
        except BaseException as error:
            code = exit_code(error)
            if code in INTERRUPTIONS:
                finish(0, interrupted=INTERRUPTIONS[code])  # resumable: not a failed run
                report_interruption(code, interruption_of(error), cfg)
                raise SystemExit(code) from error
            finish(code)
            raise
        finish(0)
        return result

    return wrapped


@rank_zero_only
def report_interruption(code: int, interrupted: Interrupted | None, cfg: DictConfig) -> None:
    run_dir = Path(cfg.paths.output_dir).resolve()
    if interrupted is not None:
        saved = (
            f"saved {interrupted.checkpoint} at epoch {interrupted.epoch}, step {interrupted.step}"
        )
    else:
        saved = "no checkpoint of this point (resuming starts from the run's newest one)"
    log.error(
        "Interrupted by %s: %s; the stages after it (e.g. the test) did not run. Exit code %d. "
        "Resume with: python train.py resume=%s%s",
        INTERRUPTIONS[code],
        saved,
        code,
        shlex.quote(str(run_dir)),
        sweep_hint(run_dir),
    )


def sweep_hint(run_dir: Path) -> str:
    """``. This run is a job of the sweep ...`` in a multirun job (see
    :func:`seglab.resume.sweep_note`), else empty."""
    from seglab.resume import sweep_note, sweep_of
    from seglab.sweeps.context import in_multirun

    sweep = sweep_of(run_dir) if in_multirun() else None
    return f". This run is {sweep_note(*sweep, stopped=True)}" if sweep else ""
