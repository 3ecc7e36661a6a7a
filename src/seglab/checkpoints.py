"""Checkpoints: the best one (:class:`ModelCheckpoint`) and ``last.ckpt`` written after every
training epoch (:class:`LastCheckpoint`), both resumable from a run folder that was moved or
copied; read safely (``torch.load(weights_only=True)``: no code from the file runs) and checked
against the network before Lightning loads them; failures are one-line :class:`CheckpointError`
messages that name the file and the fix."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import CompactHydraException
from lightning.pytorch import callbacks

RESUME_HINT = "e.g. logs/train/runs/<run>/checkpoints/last.ckpt"


class CheckpointError(CompactHydraException, ValueError):
    """A checkpoint cannot be used; the message names the file and the fix (Hydra prints the
    message alone, without a traceback)."""


def relocated(state: dict[str, Any], dirpath: str | None) -> dict[str, Any]:
    """A ModelCheckpoint's saved ``state`` with its paths moved into ``dirpath``, when the run
    folder was moved or copied (with its checkpoints) since the save.

    Lightning keeps such a state only when ``dirpath`` is unchanged: otherwise it drops the best
    score (so a worse epoch becomes "best"), keeps ``best_model_path`` in the old place (the test
    stage then loads a file that is gone, or the original run's) and writes ``last-v1.ckpt`` beside
    the copied ``last.ckpt``. A state whose files are not in ``dirpath`` (``ckpt_path`` of another
    run, resumed into a new folder) is returned as it is.
    """
    saved = state.get("dirpath")
    if not saved or not dirpath or Path(saved) == Path(dirpath):
        return state
    recorded = [state.get(key) for key in ("best_model_path", "last_model_path")]
    recorded = [path for path in recorded if path]
    if not recorded or not all((Path(dirpath) / Path(path).name).is_file() for path in recorded):
        return state

    def moved(path: str) -> str:
        if path and Path(path).parent == Path(saved):
            return str(Path(dirpath) / Path(path).name)
        return path

    state = {**state, "dirpath": dirpath}
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in state:
            state[key] = moved(state[key])
    if isinstance(state.get("best_k_models"), dict):
        best_k = state["best_k_models"].items()
        state["best_k_models"] = {moved(path): score for path, score in best_k}
    return state


class ModelCheckpoint(callbacks.ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (the best checkpoints by ``monitor``), which keeps its best
    score and paths when its run folder was moved or copied before resuming (:func:`relocated`)."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(relocated(state_dict, self.dirpath))


class LastCheckpoint(ModelCheckpoint):
    """``<dirpath>/last.ckpt``: the latest completed training epoch, rewritten at the end of every
    ``every_n_epochs``-th one, whatever the metrics do.

    Lightning 2.6's ``save_last=True`` beside ``save_top_k`` writes ``last.ckpt`` only when a top-k
    checkpoint is saved at the same step, i.e. when the monitored metric improves. A plain
    ``ModelCheckpoint(monitor=None, filename="last")`` would call ``last.ckpt`` its best model
    (W&B's logger would then move the ``best`` alias to it); this one has no best model.
    """

    def __init__(self, dirpath: str | Path, every_n_epochs: int = 1):
        if every_n_epochs < 1:
            raise ValueError(
                f"callbacks.last_checkpoint.every_n_epochs={every_n_epochs} must be at least 1: "
                "set callbacks.last_checkpoint=null to write no last.ckpt"
            )
        super().__init__(
            dirpath=dirpath,
            monitor=None,
            save_top_k=0,
            save_last=True,
            every_n_epochs=every_n_epochs,
            save_on_train_epoch_end=True,
            enable_version_counter=False,  # always last.ckpt, never last-v1.ckpt beside it
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        due = (trainer.current_epoch + 1) % self._every_n_epochs == 0
        if due and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's content, loaded with ``weights_only=True`` on the CPU (memory-mapped, so
    reading it to check costs little). A truncated file, a file that is not a checkpoint, or one
    holding objects that safe loading refuses raises :class:`CheckpointError`."""
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a truncated one is not
        raise not_readable(path, "the file is truncated, or is not a torch checkpoint")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = refused.group(1) if refused else "an object"
        raise not_readable(path, f"it holds {what}, which safe loading refuses") from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        reason = str(error).split(".")[0] or type(error).__name__
        raise not_readable(path, f"the file is damaged: {reason}") from None
    if not isinstance(content, dict) or not isinstance(content.get("state_dict"), dict):
        raise not_readable(path, "it holds no state_dict, so it is not a Lightning checkpoint")
    return content


def check_fits(ckpt_path: str | Path | None, net: torch.nn.Module, prefix: str = "net.") -> None:
    """Fail before any work when the checkpoint's network weights do not fit ``net``: another
    number of classes (named, with the fix) or another architecture."""
    if not ckpt_path:
        return
    saved = {
        key.removeprefix(prefix): value
        for key, value in read_checkpoint(ckpt_path)["state_dict"].items()
        if key.startswith(prefix)
    }
    check_weights(ckpt_path, saved, net, prefix)


def check_weights(
    ckpt_path: str | Path, saved: dict[str, Any], net: torch.nn.Module, prefix: str = "net."
) -> None:
    """:func:`check_fits` on weights already read (``saved``: without ``prefix``)."""
    expected = net.state_dict()
    differing = sorted(set(saved) ^ set(expected))
    if differing:
        raise CheckpointError(
            f"ckpt_path={ckpt_path} holds another network than the configured "
            f"{type(net).__name__} ({len(differing)} parameter names differ, e.g. "
            f"{prefix}{differing[0]}): use the model config of the run that wrote it (its "
            ".hydra/config.yaml), or leave ckpt_path unset to start fresh"
        )
    mismatched = [k for k, v in expected.items() if tuple(v.shape) != tuple(saved[k].shape)]
    if not mismatched:
        return
    key = mismatched[0]
    num_classes = getattr(net, "num_classes", None)
    saved_shape, shape = tuple(saved[key].shape), tuple(expected[key].shape)
    if num_classes is not None and shape[:1] == (num_classes,) and saved_shape[1:] == shape[1:]:
        raise CheckpointError(
            f"ckpt_path={ckpt_path} was trained for {saved_shape[0]} classes but the config has "
            f"{num_classes} (model num_classes, from the data's class names): use the data "
            f"config it was trained with ({saved_shape[0]} class names), or leave ckpt_path "
            "unset to train from scratch"
        )
    raise CheckpointError(
        f"ckpt_path={ckpt_path} does not fit the configured {type(net).__name__}: {prefix}{key} "
        f"is {saved_shape} in the checkpoint, {shape} in the model: use the model config of the "
        "run that wrote it (its .hydra/config.yaml), or leave ckpt_path unset to start fresh"
    )


def not_readable(path: str | Path, reason: str) -> CheckpointError:
    return CheckpointError(
        f"ckpt_path={path} is not a readable checkpoint ({reason}): point it at a .ckpt file "
        f"that seglab wrote ({RESUME_HINT}), or leave ckpt_path unset to start fresh"
    )
