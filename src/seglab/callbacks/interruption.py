"""Stop a fit cleanly on SIGINT (Ctrl-C), SIGTERM (pre-emption) or SIGUSR1 (SLURM's warning before
its time limit), with a resumable checkpoint of the exact point reached.

Built on Lightning's own path for SIGTERM: once ``trainer.received_sigterm`` is set, the fit loop
raises ``SIGTERMException`` at the end of the current batch, calls every callback's
``on_exception`` and tears down (the DataLoader workers and DDP processes end with it).
:class:`Interruption` does what Lightning's ``OnExceptionCheckpoint`` does (save in
``on_exception``, remove the file in ``teardown``) but is not one: with an ``OnExceptionCheckpoint``
among the callbacks, Lightning 2.6 turns every ``fit(ckpt_path=None)`` into ``ckpt_path="last"``,
i.e. a fit into a folder that holds checkpoints would silently resume. It

- catches the three signals during fit (a second Ctrl-C aborts at once, without a checkpoint);
  Lightning's own SIGTERM handler stops each DDP rank at the batch where *its* signal arrived,
  and its SLURM handler saves mid-step from inside the signal handler, so both are replaced for
  the duration of the fit and restored after it;
- decides once per training batch, on every rank at the same step, whether any rank got a signal
  (one ``max`` reduction of the signal number), so that all ranks stop after the same batch;
  a validation of the fit is never cut short: a signal during it, or at the training batch just
  before it, stops the fit once it has ended (a checkpoint from the middle of a validation would
  resume without that validation's metrics);
- saves ``<dirpath>/interrupted.ckpt`` only for an interruption (an error leaves the last good
  checkpoint alone), and tags the exception with an :class:`Interrupted` record that the task
  wrapper turns into the exit code ``128 + signal`` and the line saying how to resume;
- under DDP, rank zero waits for the ranks it started to exit (no orphan or zombie process);
- carries the global random states (torch, numpy, Python) in every checkpoint;
- leaves the file in place until a later fit of the run completes (Lightning's ``teardown``
  removes it then: ``last.ckpt`` is newer); evaluating it (``train=false``) keeps it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from dataclasses import dataclass
from types import FrameType
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_prefixed_message

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


@dataclass(frozen=True)
class Interrupted:
    """What an interruption left behind: the signal, the checkpoint, where training stood."""

    signum: int
    checkpoint: str
    epoch: int
    step: int

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


def wait_for_other_ranks(trainer: L.Trainer, timeout: float = 120.0) -> None:
    """Rank zero of a DDP run started by Lightning's script launcher waits until the other ranks
    of its node (its child processes, stopping after the same batch) have exited, so that none
    outlives the run (killed after ``timeout`` seconds)."""
    for process in getattr(trainer.strategy.launcher, "procs", None) or []:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _fitting(trainer: L.Trainer) -> bool:
    """Whether a validation is the fit's own (not its sanity check, nor trainer.validate)."""
    return trainer.state.fn == "fit" and not trainer.sanity_checking


def interruption_of(error: BaseException) -> Interrupted | None:
    """The :class:`Interrupted` record of an exception that stopped a fit, if it was a signal."""
    return getattr(error, "seglab_interrupted", None)


class Interruption(Callback):
    """Save ``<dirpath>/interrupted.ckpt`` and stop every rank after the same batch when the fit
    gets SIGINT, SIGTERM or SIGUSR1 (see the module docstring)."""

    def __init__(self, dirpath: str, filename: str = "interrupted") -> None:
        if not filename:
            raise ValueError(
                "callbacks.interruption.filename is empty: name the file, e.g. interrupted"
            )
        self.ckpt_path = os.path.join(dirpath, f"{filename}.ckpt")
        self._received: int = 0  # the signal this process got, 0 for none
        self._decided: int = 0  # the signal all ranks stop for

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self._received:
            raise KeyboardInterrupt  # Ctrl-C twice: stop now, without a checkpoint
        self._received = self._received or signum

    def _install(self) -> None:
        for signum in SIGNALS:
            signal.signal(signum, self._handler)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._received = self._decided = 0

    # Lightning registers its handlers after on_fit_start and restores the earlier ones at the
    # end of the fit: install ours once it has (the sanity check starts first, when it runs).
    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._decide(trainer)

    # A fit's validation is never cut short: a checkpoint from its middle would resume without it
    # (Lightning restores no partial metric state and skips to the epoch's end, where the
    # callbacks monitoring val/dice then fail). A stop decided at the batch before it, or a signal
    # during it, takes effect once it has ended (Lightning's loops raise after it).
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if _fitting(trainer):
            trainer._signal_connector.received_sigterm = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if _fitting(trainer):
            self._decide(trainer)

    def _decide(self, trainer: L.Trainer) -> None:
        """Every rank, at the same batch: stop if any rank got a signal."""
        if trainer.world_size == 1:  # no collective (nor a GPU sync) in a single process
            self._decided = self._received
        else:
            received = torch.tensor(self._received, device=trainer.strategy.root_device)
            self._decided = int(trainer.strategy.reduce(received, reduce_op="max"))
        if self._decided:
            # Lightning's flag: its loops raise SIGTERMException after this batch, on every rank
            trainer._signal_connector.received_sigterm = True

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception) -> None:
        if not isinstance(exception, SIGTERMException):
            return  # an error, or a second Ctrl-C: keep the last good checkpoint
        signum = self._decided or self._received or signal.SIGTERM
        name = signal.Signals(signum).name
        where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
        log.info(rank_prefixed_message(f"{name}: stopping at {where}", trainer.global_rank))
        trainer.save_checkpoint(self.ckpt_path)
        exception.seglab_interrupted = Interrupted(
            signum, self.ckpt_path, trainer.current_epoch, trainer.global_step
        )
        wait_for_other_ranks(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":  # a fit that completed (an interrupted one calls no teardown hooks)
            trainer.strategy.remove_checkpoint(self.ckpt_path)

    # The global random states travel in every checkpoint (Lightning's own keeps none), as
    # tensors and numbers, so that safe loading (weights_only=True) reads them.
    def state_dict(self) -> dict[str, Any]:
        states = _collect_rng_states(include_cuda=torch.cuda.is_available())
        kind, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]
        return {"rng": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = dict(state_dict.get("rng") or {})
        if not states:
            return  # a checkpoint written before seglab kept them
        kind, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
        if not torch.cuda.is_available():
            states.pop("torch.cuda", None)
        _set_rng_states(states)
