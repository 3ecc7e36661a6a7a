"""Files written so that readers (and a crash) see the old or the new content, never a part."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(file)`` into ``<folder>/.<name>.<pid>.tmp``, fsync, then rename it to ``path``.
    On failure the temporary file is removed and ``path`` is untouched. Temporary files of
    ``path`` that a killed process left (its pid no longer runs) are removed first."""
    remove_stale_temporaries(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def remove_stale_temporaries(path: Path) -> None:
    """Remove the ``.<name>.<pid>.tmp`` files of ``path`` whose process is gone (a SIGKILL or a
    power cut during a save leaves one; the rename never came)."""
    prefix = f".{path.name}."
    for temporary in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = temporary.name[len(prefix) : -len(".tmp")]
        if pid.isdigit() and not process_runs(int(pid)):
            temporary.unlink(missing_ok=True)


def process_runs(pid: int) -> bool:
    """Whether a process of that id runs on this machine (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries, so that a rename in it survives a power cut (POSIX; a no-op
    where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
