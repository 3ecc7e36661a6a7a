"""Checkpoints written so that a crash or a full disk during a save keeps the previous one.

:class:`AtomicCheckpointIO` is the Trainer's ``CheckpointIO`` plugin (``trainer.plugins`` in
``conf/trainer/default.yaml``), so every checkpoint Lightning writes goes through it: the
``ModelCheckpoint`` best, ``last.ckpt`` and any checkpoint saved on an exception. A checkpoint is
written to a temporary file in its own folder, flushed to disk (``fsync``) and renamed over the
old one (``os.replace``, atomic on a POSIX file system); a failed save removes the temporary file
and stops the run with :class:`CheckpointSaveError`, naming the folder and its free space.

Why not Lightning's own ``_atomic_save`` (lightning 2.6, ``fabric/utilities/cloud_io.py``): it
writes the temporary file in the system temp folder (``tempfile.mkstemp()``, i.e. ``$TMPDIR``)
and moves it with ``shutil.move``. On one file system that is a rename, but when ``$TMPDIR`` is
another file system than the run folder (a tmpfs ``/tmp``, a cluster's NFS or Lustre home) the
move copies into the target in place: a failure half-way leaves a truncated ``last.ckpt``
(reproduced: ``TMPDIR=/dev/shm``, the copy failing with ENOSPC after 1000 bytes). It never
``fsync``\\ s, and a ``PermissionError`` (other than a cross-device one) is swallowed: the save
"succeeds" without a file. Remote paths (``s3://`` ...) still go through Lightning's fsspec path.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

import torch
from hydra.errors import CompactHydraException
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.plugins.io import TorchCheckpointIO

from seglab.utils.files import write_atomically


class CheckpointSaveError(CompactHydraException, OSError):
    """A checkpoint could not be written; the message names the folder, its free space and the
    fix (Hydra prints it alone, without a traceback)."""


def free_space(folder: Path) -> str:
    """``12.3 GB free of 250.0 GB`` for the file system holding ``folder``."""
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return "free space unknown"
    return f"{usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB"


def save_error(path: Path, error: OSError) -> CheckpointSaveError:
    folder = path.parent
    fix = (
        "free some space there (or set paths.log_dir=<a folder on a larger disk>)"
        if error.errno in (errno.ENOSPC, errno.EDQUOT)
        else "check that the folder is writable (or set paths.log_dir=<a writable folder>)"
    )
    kept = f"; the previous {path.name} is kept" if path.is_file() else ""
    return CheckpointSaveError(
        f"could not save checkpoint {path.name} in {folder} ({error.strerror or error}; "
        f"{free_space(folder)}){kept}: {fix}"
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with local checkpoints written by
    :func:`write_atomically` (see the module docstring)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, lambda file: torch.save(checkpoint, file))
        except OSError as error:
            if isinstance(error, CheckpointSaveError):
                raise
            raise save_error(path, error) from error
