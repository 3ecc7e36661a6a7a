"""``eval.py``: a checkpoint tested on another dataset or split with training's metrics, report and
per-image Dice/IoU (worst first); W&B eval job; bad inputs in one line each."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from PIL import Image

import seglab
from seglab.config import UnknownKeyError, check_unknown_keys
from seglab.data import SyntheticShapes
from seglab.data.io import read_image
from seglab.eval import evaluate
from seglab.metrics import segmentation_metrics
from seglab.preflight import ConfigError
from tests.conftest import compose_task, run_script
from tests.helpers import wandb_records

CLASSES = ["background", "disc", "square", "triangle"]
TINY_TEST = [
    "data=synthetic",
    "data.splits.test.num_samples=6",
    "data.dataset.image_size=32",
    "data.batch_size=4",
    "data.num_workers=0",
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
]


def scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Training's metrics (seglab.metrics) of one image."""
    metrics = segmentation_metrics(len(CLASSES), 255)
    metrics.update(torch.as_tensor(pred[None]).long(), torch.as_tensor(target[None]).long())
    return {name: float(value) for name, value in metrics.compute().items() if value.ndim == 0}


def read_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_eval_script_round_trip_with_tta_and_tiles(tiny_run_dir, tmp_path):
    args = [f"ckpt_path={tiny_run_dir}", *TINY_TEST, "tta=flips", "tile_size=16"]
    result = run_script("eval.py", args, tmp_path, timeout=600)
    logs = result.stdout + result.stderr
    assert result.returncode == 0, logs[-4000:]
    (run,) = (tmp_path / "logs" / "eval" / "runs").iterdir()
    rows = read_rows(run / "report" / "test" / "per_image.csv")
    # one row per image, worst first, values in [0, 1]
    assert sorted(int(r["index"]) for r in rows) == list(range(6))
    dice = [float(r["dice"]) for r in rows]
    assert dice == sorted(dice) and all(0 <= d <= 1 for d in dice)
    assert all(0 <= float(r["iou"]) <= 1 for r in rows)
    # the same values as the predictor (same TTA and tiles) scored by training's metrics
    predictor = seglab.load_model(tiny_run_dir, device="cpu", tta="flips", tile_size=16)
    test = SyntheticShapes(num_samples=6, class_names=CLASSES, image_size=32, seed=2)
    for row in rows:
        sample = test[int(row["index"])]
        assert row["image"] == f"sample {row['index']}"
        expected = scores(predictor(sample["image"]), sample["mask"])
        assert float(row["dice"]) == pytest.approx(expected["dice"], abs=1e-4)
        assert float(row["iou"]) == pytest.approx(expected["iou"], abs=1e-4)
    # the report of training's callback and the summary table
    for name in ("per_class.csv", "confusion_matrix.csv", "confusion_matrix.png"):
        assert (run / "report" / "test" / name).is_file()
    assert "| metric | value |" in logs and "Worst images" in logs
    assert "test/dice" in (run / "summary.md").read_text()
    # W&B: an eval job in the training run's group (a single run: named after its folder)
    records = wandb_records.read_finished(run)
    info = wandb_records.run_info(records)
    assert (info.job_type, info.run_group) == ("eval", tiny_run_dir.name)
    assert wandb_records.exit_code(records) == 0
    logged = {key for row in wandb_records.history(records) for key in row}
    assert {"test/dice", "test/per_image/_type", "test/per_class/_type"} <= logged
    assert wandb_records.config(records)["training.run_dir"] == str(tiny_run_dir)


@pytest.fixture
def gray16_folder(tmp_path):
    """Six 16-bit gray images of odd, non-square sizes with class-index masks (0..3)."""
    rng = np.random.default_rng(3)
    for folder in ("images", "masks"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    for i, (h, w) in enumerate([(31, 17), (24, 40), (33, 33), (20, 45), (17, 31), (40, 24)]):
        image = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        Image.fromarray(image).save(tmp_path / "data" / "images" / f"im{i}.png")
        mask = rng.integers(0, 4, (h, w), dtype=np.uint8)
        Image.fromarray(mask).save(tmp_path / "data" / "masks" / f"im{i}.png")
    return tmp_path / "data"


def eval_cfg(tmp_path, *overrides):
    return compose_task(
        "eval",
        tmp_path / "out",
        ["trainer.accelerator=cpu", "callbacks.progress_bar=null", "logger=csv", *overrides],
    )


def test_eval_on_a_folder_of_16bit_odd_sizes_val_split(tiny_run_dir, gray16_folder, tmp_path):
    cfg = eval_cfg(
        tmp_path,
        f"ckpt_path={tiny_run_dir}",
        "data=folder",
        f"data.dataset.root={gray16_folder}",
        "data.dataset.val_fraction=0.5",
        "data.dataset.test_fraction=0",
        f"data.class_names=[{','.join(CLASSES)}]",
        "data.in_channels=1",
        "data.num_workers=0",
        "data.batch_size=2",
        "split=val",
    )
    result = evaluate(cfg)
    assert result["stage"] == "val"
    rows = read_rows(tmp_path / "out" / "report" / "val" / "per_image.csv")
    assert len(rows) == 3  # half of the six images
    predictor = seglab.load_model(tiny_run_dir, device="cpu")
    for row in rows:
        assert row["image"].startswith("images/im") and row["image"].endswith(".png")
        image = read_image(gray16_folder / row["image"], None, 65535.0)
        mask = np.asarray(Image.open(gray16_folder / "masks" / row["image"].split("/")[-1]))
        assert int(row["pixels"]) == mask.size  # the batch padding is not counted
        expected = scores(predictor(image), mask)
        assert float(row["dice"]) == pytest.approx(expected["dice"], abs=1e-4)
        per_class = [float(row[f"dice/{name}"]) for name in CLASSES]
        assert not any(math.isnan(v) for v in per_class)  # every class is in every mask
    assert (tmp_path / "out" / "report" / "val" / "per_class.md").is_file()
    assert 0 <= result["metrics"]["val/dice"] <= 1


def test_bad_inputs_give_one_line_each(tiny_run_dir, tmp_path):
    def error(*overrides) -> str:
        with pytest.raises(ConfigError) as caught:
            evaluate(eval_cfg(tmp_path, *TINY_TEST, *overrides))
        assert "\n" not in str(caught.value)
        return str(caught.value)

    assert "does not exist" in error(f"ckpt_path={tmp_path}/missing.ckpt")
    assert "ckpt_path must be set (mandatory" in error()
    message = error(f"ckpt_path={tiny_run_dir}", "data.class_names=[background,disc]")
    assert "2 classes" in message and "trained for 4" in message
    message = error(
        f"ckpt_path={tiny_run_dir}", "data.in_channels=3", "data.mean=[0,0,0]", "data.std=[1,1,1]"
    )
    assert "takes 1-channel images: add data.in_channels=1" in message
    assert "split=holdout is not known" in error(f"ckpt_path={tiny_run_dir}", "split=holdout")
    assert "trainer.devices=1" in error(f"ckpt_path={tiny_run_dir}", "trainer.devices=2")
    folder = [f"ckpt_path={tiny_run_dir}", "data=folder", "data.in_channels=1"]
    folder += [f"data.class_names=[{','.join(CLASSES)}]"]
    with pytest.raises(ConfigError, match="data.dataset.root must be set .* python eval.py"):
        evaluate(eval_cfg(tmp_path, *folder))
    with pytest.raises(ConfigError, match=f"data: .*{tmp_path}/nowhere"):
        evaluate(eval_cfg(tmp_path, *folder, f"data.dataset.root={tmp_path}/nowhere"))
    assert "no test split" in error(f"ckpt_path={tiny_run_dir}", "data.splits.test=null")
    with pytest.raises(UnknownKeyError, match="splt is not a key of conf/eval.yaml: did you mean"):
        check_unknown_keys("eval", ["data=synthetic", "splt=val"])
    with pytest.raises(UnknownKeyError, match="did you mean ckpt_path"):
        check_unknown_keys("predict", ["ckpt=best.ckpt"])
    check_unknown_keys("eval", ["+extra=1", "trainer.devices=1", "hydra.run.dir=x", "-m"])
