"""The training task end to end, in-process (composed config) and as the user's script."""

import collections
import signal

import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from seglab.losses import DiceCELoss
from seglab.module import SegmentationModule
from seglab.tracking import exit_code
from seglab.train import metric_value, run_task

from .conftest import TINY, run_train_script
from .helpers import wandb_records
from .helpers.runs import metric_rows


def test_fast_dev_run(tiny_cfg):
    metrics = run_task(tiny_cfg("debug=fast_dev_run"))
    assert {"val/dice", "test/dice", "test/iou", "test/iou/disc"} <= set(metrics)


def test_training_writes_checkpoints_metrics_and_config_tree(tiny_cfg, tmp_path):
    cfg = tiny_cfg()
    metrics = run_task(cfg)
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(p.startswith("epoch_") for p in checkpoints)
    assert all("/" not in name and "=" not in name for name in checkpoints)
    assert (tmp_path / "config_tree.log").read_text().count("model") >= 1
    rows = metric_rows(tmp_path)
    val_rows = [r for r in rows if r.get("val/dice")]
    assert len(val_rows) == 2
    for key in ("val/iou", "val/accuracy", "val/iou/background", "val/dice/triangle", "train/loss"):
        assert any(r.get(key) for r in rows), key
    best = max(float(r["val/dice"]) for r in val_rows)
    assert metric_value(metrics, "val/dice_best") == pytest.approx(best, abs=1e-6)
    assert 0 <= metrics["test/dice"] <= 1


def test_resume_from_last_checkpoint_continues_the_epochs(tiny_cfg, tmp_path):
    run_task(tiny_cfg("trainer.max_epochs=1"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 4  # 16 samples / batch 4
    run_task(tiny_cfg("trainer.max_epochs=2", f"ckpt_path={last}", "test=false"))
    assert torch.load(last, weights_only=False)["global_step"] == 8
    epochs = {r["epoch"] for r in metric_rows(tmp_path) if r.get("val/dice")}
    assert epochs == {"1"}


def test_evaluate_only_a_checkpoint(tiny_cfg, tmp_path):
    run_task(tiny_cfg("trainer.max_epochs=1", "test=false"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    metrics = run_task(tiny_cfg("train=false", f"ckpt_path={last}"))
    assert {"val/dice", "test/dice"} <= set(metrics)


def test_missing_checkpoint_is_reported_before_anything_runs(tiny_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_path=.*nope.ckpt does not exist"):
        run_task(tiny_cfg(f"ckpt_path={tmp_path / 'nope.ckpt'}"))
    with pytest.raises(ValueError, match="train=false .* ckpt_path"):
        run_task(tiny_cfg("train=false"))


def test_unknown_optimized_metric_lists_the_logged_ones():
    with pytest.raises(KeyError, match="val/dise.*val/dice"):
        metric_value({"val/dice": 0.5}, "val/dise")


def test_model_data_mismatch_fails_before_training(tiny_cfg):
    with pytest.raises(ValueError, match="set model.in_channels=1"):
        run_task(tiny_cfg("model.in_channels=3"))
    with pytest.raises(ValueError, match="set model.num_classes=4"):
        run_task(tiny_cfg("model.num_classes=2"))


def test_offline_wandb_run_holds_metrics_and_config(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    import wandb

    run_task(tiny_cfg("logger=wandb"))
    assert wandb.run is None  # finished
    records = wandb_records.read_finished(tmp_path)
    logged = {key for row in wandb_records.history(records) for key in row}
    kinds = collections.Counter(r.WhichOneof("record_type") for r in records)
    expected = {"train/loss", "val/dice", "val/iou", "val/dice_best", "val/iou/square", "test/dice"}
    assert expected <= logged, f"record types in the run file: {dict(kinds)}"
    config = wandb_records.config(records)
    assert config["model._target_"] == "seglab.models.UNet"
    assert config["data.class_names"] == ["background", "disc", "square", "triangle"]
    assert config["model.params"] > 0
    assert wandb_records.exit_code(records) == 0
    # the CSV logger writes beside W&B
    assert (tmp_path / "csv" / "metrics.csv").is_file()


def test_wandb_run_is_finished_when_training_fails(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    import wandb

    def explode(self, batch, batch_idx):
        raise RuntimeError("boom")

    monkeypatch.setattr(SegmentationModule, "training_step", explode)
    with pytest.raises(RuntimeError, match="boom"):
        run_task(tiny_cfg("logger=wandb"))
    assert wandb.run is None
    # ...as failed: the dashboard shows exit code 1
    assert wandb_records.exit_code(wandb_records.read_finished(tmp_path)) == 1


@pytest.mark.slow
def test_train_script_creates_a_run_folder(tmp_path):
    result = run_train_script(
        [*TINY, "trainer.max_epochs=1", "logger=wandb"], cwd=tmp_path, check=True
    )
    runs = list((tmp_path / "logs" / "train" / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    for path in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "config_tree.log",
        "checkpoints/last.ckpt",
    ):
        assert (run / path).exists(), path
    assert "wandb sync" in result.stdout + result.stderr
    wandb_records.run_file(run)


def test_valid_padding_trains_on_the_centre_of_the_masks(tiny_cfg):
    """The output of a valid-padding U-Net is smaller than its input: the target is cropped."""
    sizes = ["data.dataset.image_size=44"]
    metrics = run_task(tiny_cfg(*sizes, "model.padding=valid", "trainer.max_epochs=1"))
    assert 0 <= metrics["val/dice"] <= 1 and 0 <= metrics["test/iou"] <= 1


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_its_checkpoints(
    tiny_cfg, tmp_path, monkeypatch
):
    forward = DiceCELoss.forward

    def diverge_after_epoch_0(self, logits, target):
        loss = forward(self, logits, target)
        return loss * float("nan") if self.training and self.epoch >= 1 else loss

    def note_epoch(module):
        module.loss.epoch = module.current_epoch

    monkeypatch.setattr(DiceCELoss, "forward", diverge_after_epoch_0)
    monkeypatch.setattr(SegmentationModule, "on_train_epoch_start", note_epoch)
    last = tmp_path / "checkpoints" / "last.ckpt"
    message = (
        rf"diverged .*Lower optimizer.lr.* last good checkpoint: {last.parent}/\S+\.ckpt "
        rf"\(continue from it with python train.py resume={tmp_path} ckpt_path="
    )
    with pytest.raises(FloatingPointError, match=message):
        run_task(tiny_cfg())
    assert last.is_file()  # epoch 0's checkpoint is kept


def test_exit_codes_of_errors_and_interruptions():
    assert exit_code(RuntimeError("boom")) == 1
    assert exit_code(SIGTERMException()) == 128 + signal.SIGTERM  # Lightning's carries no code
    assert exit_code(KeyboardInterrupt()) == 130
    try:  # Lightning answers Ctrl-C with sys.exit(1) while handling the KeyboardInterrupt
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemExit(1) from None
    except SystemExit as error:
        assert exit_code(error) == 130
    assert exit_code(SystemExit(0)) == 0 and exit_code(SystemExit("message")) == 1


@pytest.mark.slow
def test_a_failing_run_exits_1_and_wandb_records_it_failed(tmp_path):
    # an infinite learning rate: the loss diverges during fit, after the W&B run started
    result = run_train_script([*TINY, "logger=wandb", "optimizer.lr=inf"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-4000:]
    assert "training diverged" in result.stderr
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert wandb_records.exit_code(wandb_records.read_finished(run_dir)) == 1
