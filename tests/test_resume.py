"""Issue 13, items 1-2: a signal during fit saves ``interrupted.ckpt`` and exits 128 + signal
with the W&B run finished; ``python train.py resume=<run folder>`` (or ``resume=last``) continues
the run in its own folder. One interrupted run of the real script serves several tests."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

from seglab.callbacks.interruption import Interruption
from seglab.checkpoints import CheckpointError
from seglab.inference.loading import find_checkpoint
from seglab.resume import ResumeError, last_run, merge_overrides, resume_argv
from seglab.train import run_task

from .conftest import TINY, run_train_script
from .helpers import wandb_records
from .helpers.runs import metric_rows, start_train_script

STEPS_PER_EPOCH = 4  # 16 samples / batch 4


def processes_in(folder: Path) -> list[str]:
    """The processes whose working directory is under ``folder`` (DDP ranks, DataLoader workers
    and W&B's service of a run started there)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found.append(f"{proc.name}: {(proc / 'cmdline').read_bytes()[:200]!r}")
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A tiny run of train.py (W&B offline, one DataLoader worker) stopped by SIGTERM sent to its
    whole process group, as ``timeout`` and schedulers do, once its first epoch is done."""
    cwd = tmp_path_factory.mktemp("interrupted")
    log_path = cwd / "train.log"
    args = [*TINY, "trainer.max_epochs=1000", "logger=wandb", "data.num_workers=1"]
    process = start_train_script(args, cwd, log_path, start_new_session=True)
    try:
        while not list(cwd.glob("logs/train/runs/*/checkpoints/last.ckpt")):
            assert process.poll() is None, log_path.read_text()[-4000:]
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGTERM)
        returncode = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    (run_dir,) = (cwd / "logs" / "train" / "runs").iterdir()
    return cwd, run_dir, returncode, log_path.read_text()


def test_sigterm_saves_the_point_reached_and_exits_143_with_the_wandb_run_finished(interrupted):
    cwd, run_dir, returncode, output = interrupted
    assert returncode == 128 + signal.SIGTERM, output[-4000:]
    ckpt = run_dir / "checkpoints" / "interrupted.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)  # safe loading reads it
    step = saved["global_step"]
    assert step > STEPS_PER_EPOCH  # after the first epoch's last.ckpt
    assert saved["epoch"] == (step - 1) // STEPS_PER_EPOCH  # the epoch of the last batch run
    # loop progress, optimiser, scheduler, callbacks' state and the random states are in it
    assert saved["optimizer_states"] and saved["lr_schedulers"] and saved["loops"]["fit_loop"]
    assert saved["callbacks"]["Interruption"]["rng"]["torch"].dtype == torch.uint8
    # one line says what happened and how to continue
    (line,) = [line for line in output.splitlines() if "Interrupted by SIGTERM" in line]
    assert f"saved {ckpt} at epoch {saved['epoch']}, step {step}" in line
    assert line.endswith(f"Exit code 143. Resume with: python train.py resume={run_dir}")
    # the test did not run; W&B: finished (not failed), the summary says it was interrupted
    assert not any(row.get("test/dice") for row in metric_rows(run_dir))
    records = wandb_records.read_finished(run_dir)
    assert wandb_records.exit_code(records) == 0
    assert wandb_records.summary(records)["interrupted"] == "SIGTERM"
    # no DataLoader worker or other process of the run is left
    assert processes_in(cwd) == []


def test_resume_continues_the_run_in_its_folder_with_the_same_wandb_run(interrupted):
    cwd, run_dir, _, _ = interrupted
    run_id = wandb_records.run_info(wandb_records.read_finished(run_dir)).run_id
    stopped_at = torch.load(run_dir / "checkpoints" / "interrupted.ckpt", weights_only=True)
    epochs = stopped_at["epoch"] + 2  # finish the interrupted epoch and one more
    result = run_train_script(
        [f"resume={run_dir}", f"trainer.max_epochs={epochs}"], cwd=cwd, check=True
    )
    output = result.stdout + result.stderr
    ckpt = run_dir / "checkpoints" / "interrupted.ckpt"
    assert f"Resuming {run_dir} from {ckpt}; overrides on top of the run's: " in output
    assert f"trainer.max_epochs={epochs}" in output
    # the same folder: no new run folder, the interruption checkpoint superseded by last.ckpt
    assert list((cwd / "logs" / "train" / "runs").iterdir()) == [run_dir]
    assert not ckpt.exists()
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (epochs - 1, epochs * STEPS_PER_EPOCH)
    # the CSV log continues: every epoch validated once, then the test
    rows = metric_rows(run_dir)
    assert [int(r["epoch"]) for r in rows if r.get("val/dice")] == list(range(epochs))
    assert any(r.get("test/dice") for r in rows)
    assert (run_dir / "predictions" / f"epoch_{epochs - 1:03d}.png").is_file()
    # the same W&B run continues (a second offline file of the same id), finished with 0
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert [f.stem for f in files] == [f"run-{run_id}"] * 2
    records = wandb_records.read_finished_file(files[-1])
    assert wandb_records.exit_code(records) == 0
    assert any(row.get("epoch") == epochs - 1 for row in wandb_records.history(records))


def test_a_run_folder_moved_before_resuming_keeps_its_best_score_and_one_last_ckpt(
    tiny_run_dir, tmp_path
):
    moved = tmp_path / "elsewhere" / tiny_run_dir.name  # a copy: tiny_run_dir stays as it is
    shutil.copytree(tiny_run_dir, moved)
    # a run folder gives its own best checkpoint (eval/predict), not the original's
    assert find_checkpoint(moved).parent == moved / "checkpoints"
    run_train_script([f"resume={moved}", "trainer.max_epochs=4"], cwd=tmp_path, check=True)
    checkpoints = moved / "checkpoints"
    # last.ckpt rewritten in place (Lightning alone wrote last-v1.ckpt beside the copied one)
    assert sorted(p.name for p in checkpoints.glob("last*.ckpt")) == ["last.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert last["epoch"] == 3
    (best,) = [s for s in last["callbacks"].values() if s.get("monitor") == "val/dice"]
    # the best score and path carried over into the moved folder: the best of all four epochs,
    # the only epoch_*.ckpt (Lightning alone forgot the copied one and began a new best)
    scores = [float(r["val/dice"]) for r in metric_rows(moved) if r.get("val/dice")]
    assert len(scores) == 4 and float(best["best_model_score"]) == pytest.approx(max(scores))
    best_path = Path(best["best_model_path"])
    assert Path(best["dirpath"]) == best_path.parent == checkpoints.resolve()
    assert [p.name for p in checkpoints.glob("epoch_*.ckpt")] == [best_path.name]


def test_resume_last_is_the_newest_run_with_a_checkpoint(tmp_path):
    runs = tmp_path / "logs" / "train" / "runs"
    for name in ("a", "b", "c"):
        (runs / name / ".hydra").mkdir(parents=True)
        (runs / name / ".hydra" / "overrides.yaml").write_text("- model.depth=2\n")
    for name in ("a", "b"):
        (runs / name / "checkpoints").mkdir()
        (runs / name / "checkpoints" / "last.ckpt").write_bytes(b"")
    os.utime(runs / "a" / ".hydra" / "overrides.yaml", (1, 1))  # b is newer; c has no checkpoint
    assert last_run(runs) == runs / "b"
    # resume=last finds them under the configured logs folder, as the command line gives it
    argv = resume_argv(["train.py", "resume=last", f"paths.log_dir={tmp_path / 'logs'}"], "train")
    assert f"hydra.run.dir={runs / 'b'}" in argv and "model.depth=2" in argv
    with pytest.raises(ResumeError, match=r"resume=last: no run folder with a checkpoint under"):
        resume_argv(["train.py", "resume=last", f"paths.log_dir={tmp_path / 'none'}"], "train")


def test_resume_argv_is_the_runs_own_with_the_new_overrides_on_top(tiny_run_dir):
    argv = resume_argv(["train.py", f"resume={tiny_run_dir}", "trainer.max_epochs=5"], "train")
    assert argv[0] == "train.py"
    assert "trainer.max_epochs=5" in argv and "trainer.max_epochs=2" not in argv
    assert "model.base_width=4" in argv and "logger=csv" in argv  # the run's own
    ckpt = max((tiny_run_dir / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    assert argv[-4:] == [
        f"resume={tiny_run_dir}",
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={tiny_run_dir}",
        "hydra.mode=RUN",
    ]
    assert resume_argv(["train.py", "model.depth=3"], "train") == ["train.py", "model.depth=3"]
    saved = ["model=unet", "+trainer.gradient_clip_val=1", "ckpt_path=x", "resume=y"]
    assert merge_overrides(saved, ["model=resunet", "seed=1"]) == [
        "+trainer.gradient_clip_val=1",
        "model=resunet",
        "seed=1",
    ]


def test_resume_errors_name_the_folder_and_the_fix(tiny_run_dir, tiny_cfg, tmp_path):
    with pytest.raises(ResumeError, match=r"resume=.* is not a run folder .*resume=last"):
        resume_argv(["train.py", f"resume={tmp_path}"], "train")
    empty = tmp_path / "empty"
    (empty / ".hydra").mkdir(parents=True)
    (empty / ".hydra" / "overrides.yaml").write_text("- model.depth=3\n")
    with pytest.raises(ResumeError, match=r"holds no checkpoint .*python train.py model.depth=3"):
        resume_argv(["train.py", f"resume={empty}"], "train")
    with pytest.raises(ResumeError, match="leave out -m"):
        resume_argv(["train.py", "-m", f"resume={tiny_run_dir}"], "train")
    # a new override that changes the network does not fit the run's checkpoint
    ckpt = tiny_run_dir / "checkpoints" / "last.ckpt"
    cfg = tiny_cfg(f"resume={tiny_run_dir}", f"ckpt_path={ckpt}", "model.base_width=8")
    with pytest.raises(CheckpointError, match=r"resume=.*leave out the overrides given with"):
        run_task(cfg)


@pytest.mark.parametrize(
    ("signals", "code"),
    [((signal.SIGUSR1,), 128 + signal.SIGUSR1), ((signal.SIGINT, signal.SIGINT), 130)],
    ids=["sigusr1", "ctrl-c-twice"],
)
def test_a_signal_in_process_stops_after_the_batch(tiny_cfg, tmp_path, monkeypatch, signals, code):
    """SIGUSR1 (SLURM's warning) saves the point after the batch and exits 138; Ctrl-C twice
    stops at once without a checkpoint (130). The signal handlers are as before afterwards."""

    def signal_at_step_5(callback, trainer, *args, **kwargs):
        if trainer.global_step == 5:
            for signum in signals:
                os.kill(os.getpid(), signum)
        decide(callback, trainer, *args, **kwargs)

    decide = Interruption.on_train_batch_end
    monkeypatch.setattr(Interruption, "on_train_batch_end", signal_at_step_5)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        run_task(tiny_cfg("trainer.max_epochs=5"))
    assert stopped.value.code == code
    ckpt = tmp_path / "checkpoints" / "interrupted.ckpt"
    if len(signals) == 1:
        saved = torch.load(ckpt, weights_only=True)
        assert (saved["epoch"], saved["global_step"]) == (1, 5)  # mid-epoch, after the batch
    else:
        assert not ckpt.exists() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
