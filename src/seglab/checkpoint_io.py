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

With ``background=True``, in a single-process run the file is written in a background thread while
training goes on (what Lightning's experimental ``AsyncCheckpointIO`` does; it is not used because
its removal of a replaced checkpoint does not wait for that file's queued write, and it re-raises a
failed save at every later teardown): the checkpoint's tensors are copied to the CPU in the
training thread first, so the file holds the state of the moment it was saved; one write at a time
(a save waits for the previous one). A removal or load of a checkpoint waits for the queued write,
and the fit ends only once every file is on disk (``teardown``). A failed write stops the run at
the next save, removal or load, or at the end of the fit, with the same
:class:`CheckpointSaveError`. Under DDP (several processes) saves stay synchronous: the other ranks
may read a file right after Lightning's barrier that follows each save.
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
from lightning_utilities.core.apply_func import apply_to_collection

from seglab.utils.background import Background
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


def write_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    """``torch.save`` into ``path`` by :func:`write_atomically`; OSErrors become
    :class:`CheckpointSaveError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda file: torch.save(checkpoint, file))
    except OSError as error:
        if isinstance(error, CheckpointSaveError):
            raise
        raise save_error(path, error) from error


def snapshot(tensor: torch.Tensor) -> torch.Tensor:
    """A copy on the CPU, which later optimiser steps do not change (the file's bytes)."""
    return tensor.detach().to("cpu", copy=True)


def distributed() -> bool:
    """Whether this process is one of several (DDP)."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with local checkpoints written by
    :func:`write_atomically` (see the module docstring).

    Args:
        background: write local checkpoints in a background thread in a single-process run
            (``trainer.plugins.0.background=true``; default: in the training thread, as
            Lightning does).
    """

    def __init__(self, background: bool = False) -> None:
        super().__init__()
        self.background = background
        self._writer = Background("checkpoint_io")

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            self._writer.wait()
            return super().save_checkpoint(checkpoint, path, storage_options)
        if self.background and not distributed():
            copied = apply_to_collection(checkpoint, torch.Tensor, snapshot)
            weights = checkpoint.get("state_dict")
            if hasattr(weights, "_metadata"):  # module versions, which torch.save keeps
                copied["state_dict"]._metadata = weights._metadata
            self._writer.submit(write_checkpoint, copied, Path(path))
        else:
            self._writer.wait()
            write_checkpoint(checkpoint, Path(path))

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._writer.wait()
        return super().load_checkpoint(*args, **kwargs)

    def remove_checkpoint(self, path) -> None:
        self._writer.wait()  # a queued write of this file must not land after its removal
        super().remove_checkpoint(path)

    def teardown(self) -> None:
        self._writer.close()  # every checkpoint on disk; a failed write is raised here
