"""One background thread for work whose result the caller only needs later (e.g. writing a
figure while training goes on)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class Background:
    """Runs one call at a time in a worker thread; ``wait()`` blocks until the last one is done
    and re-raises its error; ``close()`` waits and stops the thread (a new call restarts it)."""

    def __init__(self, name: str):
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def submit(self, function: Callable, *args) -> None:
        self.wait()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        self._pending = self._executor.submit(function, *args)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:  # the thread stops also when the last call failed
            if self._executor is not None:
                self._executor.shutdown()
                self._executor = None
