"""``python train.py ARGS`` with one kill planted, for benchmarks/soak.py (not for users).

    SEGLAB_SOAK_KILL=SIGKILL:step:13 python benchmarks/soak_child.py ARGS
    SEGLAB_SOAK_KILL=SIGTERM:save:2 python benchmarks/soak_child.py ARGS

Runs seglab's training task exactly as ``train.py`` does (the same ``seglab.train.main``, so
``resume=`` and every override behave the same), after planting a real signal, sent by the process
to itself with ``os.kill``:

- ``step:N``: at the end of the training batch after which ``trainer.global_step`` is N;
- ``save:N``: inside the N-th checkpoint save of this process, once the temporary file of
  :class:`seglab.checkpoint_io.AtomicCheckpointIO` exists and before it is renamed into place.
  For SIGKILL the temporary file is left half-written (as a kill during a slow write would leave
  it); SIGTERM only sets the interruption flag, so that save completes.

Why the process signals itself: the soak needs kills it can place and repeat (a seeded plan gives
the same table twice), and a tiny checkpoint is written in about a millisecond, too short for a
watcher in another process to hit it. Before the signal, one line ``soak: <SIGNAL> at ...`` goes to
stderr, so the soak knows that the kill happened and where.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = "SEGLAB_SOAK_KILL"


def announce(signum: signal.Signals, where: str) -> None:
    print(f"soak: {signum.name} at {where}", file=sys.stderr, flush=True)


def kill_at_step(signum: signal.Signals, step: int) -> None:
    from seglab.callbacks.interruption import Interruption

    decide = Interruption.on_train_batch_end

    def on_train_batch_end(callback, trainer, *args, **kwargs):
        if trainer.global_step == step:
            announce(signum, f"step {step}")
            os.kill(os.getpid(), signum)
        decide(callback, trainer, *args, **kwargs)

    Interruption.on_train_batch_end = on_train_batch_end


def kill_in_save(signum: signal.Signals, number: int) -> None:
    from seglab import checkpoint_io

    write_atomically = checkpoint_io.write_atomically
    saves = 0

    def planted(path: Path, write) -> None:
        nonlocal saves
        saves += 1
        if saves != number:
            return write_atomically(path, write)

        def write_then_kill(file) -> None:
            write(file)
            file.flush()
            if signum == signal.SIGKILL:  # half of it on disk, as a kill mid-write leaves it
                file.truncate(file.tell() // 2)
                file.flush()
            announce(signum, f"save {number} ({path.name}, temporary file written)")
            os.kill(os.getpid(), signum)

        return write_atomically(path, write_then_kill)

    checkpoint_io.write_atomically = planted


def plant(spec: str) -> None:
    """Plant the kill ``SIGNAL:step|save:N`` (see the module docstring)."""
    name, at, number = spec.split(":")
    signum = signal.Signals[name]
    {"step": kill_at_step, "save": kill_in_save}[at](signum, int(number))


def main() -> None:
    sys.argv[0] = str(ROOT / "train.py")  # what resume= and DDP children see
    if os.environ.get(ENV):
        plant(os.environ[ENV])
    from seglab.cli import train as train_main

    train_main()


if __name__ == "__main__":
    main()
