"""What every DataLoader worker does first: leave the stop signals to the main process, then seed
itself as Lightning does.

Ctrl-C, ``timeout``, SLURM and other schedulers signal the whole process group (or job), workers
included. A worker that died of SIGINT or SIGTERM would make the main process fail with
"DataLoader worker is killed by signal" instead of saving a checkpoint and stopping cleanly
(:class:`seglab.callbacks.Interruption`). So workers ignore SIGINT and SIGUSR1, and SIGTERM while
the main process runs: once it exits (an ``atexit`` hook sets :func:`stop_event`, before
multiprocessing's own hook terminates the daemonic workers) or is gone, SIGTERM ends them as
before, so no worker outlives the run.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
from types import FrameType

from lightning.fabric.utilities.seed import pl_worker_init_function

_stopping = None  # multiprocessing.Event, set when the main process exits


def stop_event():
    """The event that tells this process's workers the main process is exiting."""
    global _stopping
    if _stopping is None:
        _stopping = multiprocessing.Event()
        atexit.register(_stopping.set)  # runs before multiprocessing's exit hook (LIFO)
    return _stopping


def worker_init(worker_id: int, rank: int = 0, stopping=None) -> None:
    """``DataLoader(worker_init_fn=partial(worker_init, rank=<global rank>,
    stopping=stop_event()))``. Seeds as Lightning's own worker init does after
    ``seed_everything(workers=True)`` (which it adds only to loaders without a worker_init_fn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    if stopping is not None:
        signal.signal(signal.SIGTERM, lambda signum, frame: _on_sigterm(stopping, frame))
    if os.environ.get("PL_SEED_WORKERS") == "1":
        pl_worker_init_function(worker_id, rank=rank)


def _on_sigterm(stopping, frame: FrameType | None) -> None:
    parent = multiprocessing.parent_process()
    if stopping.is_set() or (parent is not None and not parent.is_alive()):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # end as terminate() expects
