"""Test-only callbacks for the resume-exactness tests, added to a real ``train.py`` run from the
command line (``+callbacks.<name>._target_=tests.helpers.exactness.<Callback>``): one sends this
process a real signal after a given training step, one records the sample indices of every
training batch."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from lightning.pytorch.callbacks import Callback

HERE = "tests.helpers.exactness"
# the overrides that record every training batch's indices in <run dir>/indices.txt
RECORD = [
    f"+callbacks.record_indices._target_={HERE}.RecordIndices",
    "+callbacks.record_indices.path=${paths.output_dir}/indices.txt",
]


def stop_after(step: int, signum: str = "SIGTERM") -> list[str]:
    """The overrides that send the run ``signum`` once training step ``step`` is done."""
    return [
        f"+callbacks.signal_after._target_={HERE}.SignalAfterStep",
        f"+callbacks.signal_after.step={step}",
        f"+callbacks.signal_after.signum={signum}",
    ]


class SignalAfterStep(Callback):
    """Sends ``signum`` to this process once training step ``step`` is done (as a scheduler or
    Ctrl-C would, between two batches)."""

    def __init__(self, step: int, signum: str = "SIGTERM"):
        self.step, self.signum = step, signal.Signals[signum]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class RecordIndices(Callback):
    """Appends ``rank epoch step index index ...`` to ``path`` for every training batch."""

    def __init__(self, path: str):
        self.path = Path(path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        indices = " ".join(str(i) for i in batch["index"].tolist())
        line = f"{trainer.global_rank} {trainer.current_epoch} {trainer.global_step} {indices}\n"
        with open(self.path, "a") as file:
            file.write(line)


def read_indices(path: Path) -> list[tuple[int, int, int, list[int]]]:
    """The lines :class:`RecordIndices` wrote: ``(rank, epoch, step, indices)``."""
    rows = []
    for line in Path(path).read_text().splitlines():
        rank, epoch, step, *indices = map(int, line.split())
        rows.append((rank, epoch, step, indices))
    return rows
