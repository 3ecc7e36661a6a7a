"""``last.ckpt`` holds the latest completed epoch, the best checkpoint stays the best, and
resuming from ``last.ckpt`` continues after the final epoch (issue 10, item 2)."""

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch

from seglab.checkpoint_io import CheckpointSaveError
from seglab.checkpoints import LastCheckpoint, read_checkpoint, relocated
from seglab.tracking.mode import WandbMode
from seglab.train import run_task
from seglab.utils.files import write_atomically

from .helpers.runs import metric_rows

# The checkpoint's monitor made to get worse after the first epoch, deterministically: "best" is
# the lowest global step, so epoch 0 stays the best and every later epoch is worse. (With
# save_top_k=1 and save_last=true, Lightning 2.6 then wrote last.ckpt only at epoch 0.)
WORSENING = ["callbacks.model_checkpoint.monitor=step", "callbacks.model_checkpoint.mode=min"]
STEPS_PER_EPOCH = 4  # 16 samples / batch 4


def read(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_last_checkpoint_is_the_final_epoch_when_the_metric_gets_worse(tiny_cfg, tmp_path):
    run_task(tiny_cfg("trainer.max_epochs=3", "test=false", *WORSENING))
    folder = tmp_path / "checkpoints"
    last = read(folder / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 3 * STEPS_PER_EPOCH)

    # the best checkpoint is still epoch 0's, and last.ckpt knows it
    best_files = [p for p in folder.iterdir() if p.name.startswith("epoch_")]
    assert [p.name[:9] for p in best_files] == ["epoch_000"]
    assert read(best_files[0])["global_step"] == STEPS_PER_EPOCH
    best_states = [s for k, s in last["callbacks"].items() if "'step'" in k]
    assert Path(best_states[0]["best_model_path"]) == best_files[0]

    # resuming from last.ckpt continues after the final epoch (not after the best one)
    resume = [f"ckpt_path={folder / 'last.ckpt'}", "test=false", *WORSENING]
    run_task(tiny_cfg("trainer.max_epochs=4", *resume))
    last = read(folder / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (3, 4 * STEPS_PER_EPOCH)
    epochs = [int(r["epoch"]) for r in metric_rows(tmp_path) if r.get("val/dice")]
    assert epochs[-1] == 3 and epochs.count(3) == 1


def test_wandb_aliases_best_the_best_checkpoint_and_latest_the_last(tiny_cfg, monkeypatch):
    # As in test_tracking: seglab decides "online" while wandb runs offline; the calls are
    # recorded where they reach wandb. W&B moves an alias to the artifact logged with it last.
    import wandb

    logged = []
    log_artifact = wandb.sdk.wandb_run.Run.log_artifact

    def record(run, artifact, *args, aliases=None, **kwargs):
        logged.append((artifact.metadata["original_filename"], tuple(aliases or ())))
        return log_artifact(run, artifact, *args, aliases=aliases, **kwargs)

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log_artifact", record)
    monkeypatch.setattr(
        "seglab.tracking.run.ensure_wandb_mode", lambda: WandbMode("online", "credentials found")
    )
    run_task(tiny_cfg("logger=wandb", "test=false", *WORSENING))
    holder = {alias: name for name, aliases in logged for alias in aliases}
    assert holder["best"].startswith("epoch_000") and holder["latest"] == "last.ckpt", logged


def test_last_checkpoint_every_zero_epochs_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"every_n_epochs=0 must be at least 1: .*=null"):
        LastCheckpoint(tmp_path, every_n_epochs=0)


def test_a_save_that_fails_half_way_keeps_the_previous_last_checkpoint(
    tiny_cfg, tmp_path, monkeypatch
):
    save = torch.save
    folder = tmp_path / "checkpoints"

    def disk_full_after_epoch_0(checkpoint, file, *args, **kwargs):
        if checkpoint["epoch"] == 0 or ".last.ckpt" not in str(getattr(file, "name", "")):
            return save(checkpoint, file, *args, **kwargs)
        file.write(b"PK\x03\x04" + bytes(1000))  # some bytes, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full_after_epoch_0)
    message = (
        rf"could not save checkpoint last.ckpt in {folder} \(No space left on device; "
        r"[\d.]+ GB free of [\d.]+ GB\); the previous last.ckpt is kept: free some space"
    )
    with pytest.raises(CheckpointSaveError, match=message):
        run_task(tiny_cfg("test=false"))
    assert read_checkpoint(folder / "last.ckpt")["epoch"] == 0  # loadable, epoch 0's
    assert not [p.name for p in folder.iterdir() if not p.name.endswith(".ckpt")]


def test_last_checkpoint_knows_the_best_after_its_epochs_validation_and_resume_keeps_it(
    tiny_cfg, tmp_path
):
    """last.ckpt is written after the epoch's validation: its best is that epoch's when it
    improves; a resumed fit carries on the best validation Dice (val/dice_best) it holds."""
    improving = ["callbacks.model_checkpoint.monitor=step", "callbacks.model_checkpoint.mode=max"]
    run_task(tiny_cfg("trainer.max_epochs=2", "test=false", *improving))
    folder = tmp_path / "checkpoints"
    last = read(folder / "last.ckpt")
    (best_state,) = [s for k, s in last["callbacks"].items() if "'step'" in k]
    assert Path(best_state["best_model_path"]).name.startswith("epoch_001")
    assert int(best_state["best_model_score"]) == 2 * STEPS_PER_EPOCH
    best = [float(r["val/dice_best"]) for r in metric_rows(tmp_path) if r.get("val/dice_best")]
    assert float(last["val_dice_best"]) == pytest.approx(best[-1])
    # a best score the next epoch cannot reach (the tiny net's Dice stays far below 0.99)
    last["val_dice_best"] = torch.tensor(0.99)
    torch.save(last, folder / "last.ckpt")
    resume = [f"ckpt_path={folder / 'last.ckpt'}", "test=false", *improving]
    metrics = run_task(tiny_cfg("trainer.max_epochs=3", *resume))
    assert metrics["val/dice_best"] == pytest.approx(0.99) and metrics["val/dice"] < 0.99


def test_a_background_save_holds_the_state_of_its_moment_and_a_removal_waits_for_it(
    tmp_path, monkeypatch
):
    """Checkpoints are written off the training thread (single process): the file has the
    weights as they were when saved, although training changes them at once; removing a file
    whose write is still queued leaves no file behind."""
    import threading
    import time

    from seglab.checkpoint_io import AtomicCheckpointIO

    save, writers = torch.save, []

    def slow_save(checkpoint, file, *args, **kwargs):
        writers.append(threading.current_thread().name)
        time.sleep(0.2)  # the training thread goes on meanwhile
        return save(checkpoint, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", slow_save)
    io, weight = AtomicCheckpointIO(background=True), torch.zeros(3)
    io.save_checkpoint({"state_dict": {"w": weight}, "epoch": 0}, tmp_path / "kept.ckpt")
    weight.add_(1)  # the next optimiser step, while the file is being written
    io.save_checkpoint({"state_dict": {"w": weight}}, tmp_path / "replaced.ckpt")
    io.remove_checkpoint(tmp_path / "replaced.ckpt")
    io.teardown()
    assert torch.equal(read(tmp_path / "kept.ckpt")["state_dict"]["w"], torch.zeros(3))
    assert not (tmp_path / "replaced.ckpt").exists()
    assert len(writers) == 2 and all(name.startswith("checkpoint_io") for name in writers)

    synchronous = AtomicCheckpointIO()  # the default: in the training thread
    synchronous.save_checkpoint({"state_dict": {"w": weight}}, tmp_path / "now.ckpt")
    assert writers[-1] == threading.current_thread().name and (tmp_path / "now.ckpt").is_file()
    # the copy keeps what torch.save keeps: the module versions of the state dict
    net = torch.nn.BatchNorm2d(2)
    io = AtomicCheckpointIO(background=True)
    io.save_checkpoint({"state_dict": net.state_dict()}, tmp_path / "net.ckpt")
    io.teardown()
    assert read(tmp_path / "net.ckpt")["state_dict"]._metadata == net.state_dict()._metadata


def test_a_save_removes_the_temporary_file_a_killed_process_left(tmp_path):
    target = tmp_path / "last.ckpt"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".last.ckpt.{dead.pid}.tmp"
    running = tmp_path / f".last.ckpt.{os.getppid()}.tmp"  # a live process's write in progress
    other = tmp_path / f".best.ckpt.{dead.pid}.tmp"  # another file's: not this save's business
    for path in (stale, running, other):
        path.write_bytes(b"half a checkpoint")
    write_atomically(target, lambda file: file.write(b"new"))
    assert target.read_bytes() == b"new"
    assert not stale.exists()
    assert running.exists() and other.exists()


def test_a_checkpoint_state_is_relocated_only_into_a_folder_holding_its_files(tmp_path):
    old, new, other = tmp_path / "old", tmp_path / "new", tmp_path / "other"
    for folder in (old, new, other):
        folder.mkdir()
    for name in ("epoch_001.ckpt", "last.ckpt"):
        (new / name).write_bytes(b"")
    state = {
        "dirpath": str(old),
        "best_model_path": str(old / "epoch_001.ckpt"),
        "kth_best_model_path": str(old / "epoch_001.ckpt"),
        "best_model_score": torch.tensor(0.5),
        "best_k_models": {str(old / "epoch_001.ckpt"): torch.tensor(0.5)},
        "last_model_path": str(old / "last.ckpt"),
    }
    moved = relocated(state, str(new))
    assert moved["dirpath"] == str(new) and moved["best_model_score"] == 0.5
    assert moved["best_model_path"] == moved["kth_best_model_path"] == str(new / "epoch_001.ckpt")
    assert list(moved["best_k_models"]) == [str(new / "epoch_001.ckpt")]
    assert moved["last_model_path"] == str(new / "last.ckpt")
    # ckpt_path of another run, resumed into a new folder without its files: left to Lightning
    assert relocated(state, str(other)) is state
    assert relocated(state, str(old)) is state
