"""Two CPU processes under DDP, started as users start them: ``python train.py trainer.devices=2``.

DDP re-executes the script for rank 1, so these tests run the real script in a subprocess.
"""

import pytest

from .conftest import TINY, run_train_script
from .helpers import wandb_records
from .helpers.runs import last_metrics

pytestmark = pytest.mark.slow


def test_two_process_training_and_evaluation_match_one_process(tmp_path):
    # Cross-entropy: its per-batch means average to the global mean whatever the batching (a Dice
    # loss is computed per batch, so its mean depends on how the processes split the batches).
    TINY_CE = [*TINY, "loss=ce"]
    # 1. train with two processes, exactly as the README says
    train_dir = tmp_path / "train"
    result = run_train_script(
        [*TINY_CE, "trainer.devices=2", "logger=wandb", f"hydra.run.dir={train_dir}"],
        cwd=tmp_path,
        check=True,
    )
    assert "distributed_backend=gloo" in result.stdout + result.stderr
    assert "Starting with 2 processes" in result.stdout + result.stderr
    # one run folder, one W&B run (rank zero only), a best and a last checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]
    wandb_records.run_file(train_dir)
    best = [p for p in (train_dir / "checkpoints").iterdir() if p.name.startswith("epoch_")]
    assert len(best) == 1 and (train_dir / "checkpoints" / "last.ckpt").is_file()
    trained = last_metrics(train_dir)
    assert {"val/dice", "test/dice", "val/dice_best"} <= set(trained)

    # 2. evaluate that checkpoint with 2 processes and with 1: the metrics must agree exactly
    evaluated = {}
    for devices in (2, 1):
        run_dir = tmp_path / f"eval{devices}"
        result = run_train_script(
            [
                *TINY_CE,
                f"trainer.devices={devices}",
                "logger=csv",
                "train=false",
                f"ckpt_path={best[0]}",
                f"hydra.run.dir={run_dir}",
            ],
            cwd=tmp_path,
            check=True,
        )
        evaluated[devices] = last_metrics(run_dir)
    keys = [k for k in evaluated[1] if k.startswith(("val/", "test/")) and k != "val/dice_best"]
    assert {"val/dice", "val/iou", "test/dice", "test/iou/disc"} <= set(keys)
    for key in keys:
        assert evaluated[2][key] == pytest.approx(evaluated[1][key], abs=1e-6), key
    # the test metrics of the 2-process training run are those of its best checkpoint
    for key in ("test/dice", "test/iou", "test/accuracy"):
        assert trained[key] == pytest.approx(evaluated[1][key], abs=1e-6), key
