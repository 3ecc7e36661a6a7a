"""SegmentationReport: per-class IoU / Dice / support and the confusion matrix after testing (and
after a validate-only run), as files in the run dir and as a W&B table and confusion chart."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.callbacks import SegmentationReport
from seglab.callbacks.segmentation_report import row_normalised
from seglab.train import run_task

from .conftest import TINY_MODEL, TINY_TRAINER
from .helpers import wandb_records
from .helpers.folders import folder_overrides, save

IGNORE = 255


def make_split_folder(root: Path) -> Path:
    """``root/{train,val,test}/{images,masks}`` of 24x24 gray images; class 1 where the image is
    brighter than 127, and the top two rows ignored (255)."""
    for split, count in (("train", 8), ("val", 4), ("test", 4)):
        for index in range(count):
            image = np.random.default_rng([index, len(split)]).integers(0, 256, (24, 24))
            mask = (image > 127).astype(np.uint8)
            mask[:2] = IGNORE
            save(root / split / "images" / f"{index:02d}.png", image.astype(np.uint8))
            save(root / split / "masks" / f"{index:02d}.png", mask)
    return root


def tiny_folder_overrides(root: Path) -> list[str]:
    return [*folder_overrides(root), *TINY_MODEL, *TINY_TRAINER, "trainer.max_epochs=1"]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as file:
        return list(csv.reader(file))


def check_report(folder: Path, metrics: dict, stage: str, masks_root: Path) -> np.ndarray:
    """The files agree with the logged metrics and the data; returns the confusion matrix."""
    rows = read_csv(folder / "per_class.csv")
    assert rows[0] == ["class", "iou", "dice", "support"]
    assert [r[0] for r in rows[1:]] == ["background", "foreground"]
    confusion_rows = read_csv(folder / "confusion_matrix.csv")
    assert confusion_rows[0] == ["true \\ predicted", "background", "foreground"]
    confusion = np.array([[int(v) for v in r[1:]] for r in confusion_rows[1:]])
    # every non-ignored pixel of the split, once
    masks = [np.asarray(Image.open(p)) for p in sorted((masks_root / "masks").glob("*.png"))]
    assert confusion.sum() == sum(int((m != IGNORE).sum()) for m in masks)
    truth = np.bincount(np.concatenate([m[m != IGNORE] for m in masks]), minlength=2)
    for c, (name, iou, dice, support) in enumerate(rows[1:]):
        assert float(iou) == pytest.approx(metrics[f"{stage}/iou/{name}"], abs=1e-7)
        assert float(dice) == pytest.approx(metrics[f"{stage}/dice/{name}"], abs=1e-7)
        assert int(support) == truth[c] == confusion[c].sum()
        # IoU from the counts, as the logged metric computes it
        tp, fp, fn = confusion[c, c], confusion[:, c].sum() - confusion[c, c], support
        assert float(iou) == pytest.approx(tp / (tp + fp + int(fn) - tp), abs=1e-6)
    markdown = (folder / "per_class.md").read_text()
    assert "| background |" in markdown and f"{float(rows[1][1]):.4f}" in markdown
    with Image.open(folder / "confusion_matrix.png") as image:
        assert image.width >= 300 and image.height >= 300
    return confusion


def test_report_files_match_the_logged_test_metrics_and_wandb(tmp_path):
    from .conftest import compose_train

    root = make_split_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    metrics = run_task(compose_train(run_dir, [*tiny_folder_overrides(root), "logger=wandb"]))
    assert not (run_dir / "report" / "val").exists()  # validation during fit makes no report
    confusion = check_report(run_dir / "report" / "test", metrics, "test", root / "test")

    run_file = wandb_records.run_file(run_dir)
    records = wandb_records.read_finished_file(run_file)
    (row,) = [r for r in wandb_records.history(records) if "test/per_class/_type" in r]
    assert row["test/per_class/_type"] == "table-file"
    table = json.loads((run_file.parent / "files" / row["test/per_class/path"]).read_text())
    assert table["columns"] == ["class", "iou", "dice", "support"]
    per_class = read_csv(run_dir / "report" / "test" / "per_class.csv")[1:]
    for logged, written in zip(table["data"], per_class, strict=True):
        assert logged[0] == written[0] and logged[3] == int(written[3])
        assert logged[1] == pytest.approx(float(written[1]))
    # W&B's confusion-matrix chart: a table of (Actual, Predicted, count) and its panel
    chart = json.loads(
        (run_file.parent / "files" / row["test/confusion_matrix_table/path"]).read_text()
    )
    assert chart["columns"] == ["Actual", "Predicted", "nPredictions"]
    names = ["background", "foreground"]
    assert chart["data"] == [
        [names[i], names[j], int(confusion[i, j])] for i in range(2) for j in range(2)
    ]
    panel = wandb_records.config(records)["_wandb/visualize/test/confusion_matrix"]
    assert panel["panel_config"]["panelDefId"] == "wandb/confusion_matrix/v1"

    # validate-only (train=false): a val report, then the test report
    last = run_dir / "checkpoints" / "last.ckpt"
    eval_dir = tmp_path / "eval"
    overrides = [*tiny_folder_overrides(root), "logger=csv", "train=false", f"ckpt_path={last}"]
    metrics = run_task(compose_train(eval_dir, overrides))
    check_report(eval_dir / "report" / "val", metrics, "val", root / "val")
    check_report(eval_dir / "report" / "test", metrics, "test", root / "test")


def test_row_normalised_confusion():
    counts = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    np.testing.assert_allclose(
        row_normalised(counts), [[0.75, 0.25, 0], [0, 0, 0], [0.25, 0.25, 0.5]]
    )


def test_nothing_on_other_ranks(tmp_path):
    callback = SegmentationReport(tmp_path / "report")
    module = SimpleNamespace(confusion_matrices={"test": torch.ones(2, 2)}, class_names=["a", "b"])
    trainer = SimpleNamespace(is_global_zero=False)
    callback.on_test_end(trainer, module)
    assert not (tmp_path / "report").exists()
    # rank zero writes
    trainer = SimpleNamespace(
        is_global_zero=True, callback_metrics={}, global_step=0, loggers=[], datamodule=None
    )
    callback.on_test_end(trainer, module)
    assert sorted(p.name for p in (tmp_path / "report" / "test").iterdir()) == [
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "per_class.csv",
        "per_class.md",
    ]


def test_a_module_without_confusion_matrices_is_reported(tmp_path):
    callback = SegmentationReport(tmp_path / "report")
    trainer = SimpleNamespace(is_global_zero=True)
    with pytest.warns(UserWarning, match=r"no confusion_matrices\['test'\]"):
        callback.on_test_end(trainer, SimpleNamespace())
    assert not (tmp_path / "report").exists()
