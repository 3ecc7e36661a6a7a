"""``@task_wrapper`` (as lightning-hydra-template's): every task ends with the W&B run finished and
with an exit code that says how it ended.

- success: exit code 0;
- an exception: the W&B run is finished with exit code 1 (failed on the dashboard) and the
  exception goes on, so a single run exits 1 through Hydra and a multirun records the job as
  failed and goes on with the next one (as Hydra and the Optuna search do);
- SIGTERM (a scheduler's pre-emption; Lightning stops at the next batch with a ``SystemExit``
  that carries no code, i.e. 0): exit code 128 + 15 = 143;
- Ctrl-C (Lightning turns ``KeyboardInterrupt`` into ``sys.exit(1)``): exit code 130.

An interrupted task raises ``SystemExit`` with that code, which also stops a sweep, and logs
that the stages after the interruption (the test) did not run. In a multirun each job runs inside
:func:`seglab.sweeps.ddp.multirun_job` so that DDP children run that job only.
"""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Callable
from typing import TypeVar

from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from seglab.sweeps.ddp import multirun_job
from seglab.tracking.run import finish

log = logging.getLogger(__name__)

SIGTERM_EXIT = 128 + signal.SIGTERM  # 143
SIGINT_EXIT = 128 + signal.SIGINT  # 130
INTERRUPTIONS = {SIGTERM_EXIT: "SIGTERM", SIGINT_EXIT: "Ctrl-C (SIGINT)"}
T = TypeVar("T")


def exit_code(error: BaseException) -> int:
    """The process exit code that reports ``error``."""
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
            finish(code)
            if code in INTERRUPTIONS:
                report_interruption(code)
                raise SystemExit(code) from error
            raise
        finish(0)
        return result

    return wrapped


@rank_zero_only
def report_interruption(code: int) -> None:
    log.error(
        "Interrupted by %s: the run stopped before it finished, the stages after this point "
        "(e.g. the test) did not run. Exit code %d; the W&B run is marked failed.",
        INTERRUPTIONS[code],
        code,
    )
