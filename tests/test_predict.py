"""``predict.py`` through the real script: masks, overlays, probabilities, summary, bad files."""

from __future__ import annotations

import csv
import subprocess

import numpy as np
import pytest
from PIL import Image

import seglab
from seglab.data.io import read_image
from seglab.inference import read_probabilities
from tests.conftest import run_script
from tests.helpers import wandb_records


@pytest.fixture
def images(tmp_path):
    """An RGB 36x48 image, a gray 16-bit 31x17 one, a text file and a truncated PNG."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)).save(folder / "rgb.png")
    gray = rng.integers(0, 65536, (31, 17), dtype=np.uint16)
    Image.fromarray(gray).save(folder / "gray16.png")
    assert Image.open(folder / "gray16.png").mode.startswith("I;16")
    (folder / "notes.txt").write_text("not an image\n")
    whole = (folder / "rgb.png").read_bytes()
    (folder / "broken.png").write_bytes(whole[: len(whole) // 3])
    return folder


def run_predict(args: list[str], cwd) -> subprocess.CompletedProcess:
    return run_script("predict.py", args, cwd)


def test_predict_a_folder(tiny_run_dir, images, tmp_path):
    out = tmp_path / "out"
    result = run_predict(
        [f"ckpt_path={tiny_run_dir}", f"input={images}", f"output={out}", "save_probabilities=npy"],
        cwd=tmp_path,
    )
    logs = result.stdout + result.stderr
    assert result.returncode == 0, logs[-4000:]
    predictor = seglab.load_model(tiny_run_dir, device="cpu")
    for stem, shape in (("rgb", (36, 48)), ("gray16", (31, 17))):
        mask = np.asarray(Image.open(out / f"{stem}.png"))
        assert mask.shape == shape and mask.dtype == np.uint8 and mask.max() < 4
        image = read_image(images / f"{stem}.png", None, 65535.0)
        np.testing.assert_array_equal(mask, predictor(image))
        overlay = Image.open(out / f"{stem}_overlay.png")
        assert overlay.mode == "RGB" and overlay.size == shape[::-1]
        probabilities = np.load(out / f"{stem}_probabilities.npy")
        assert probabilities.shape == (4, *shape)
        np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-5)
        np.testing.assert_array_equal(probabilities.argmax(0), mask)
    assert not (out / "notes.png").exists() and not (out / "broken.png").exists()
    assert "Skipped" in logs and "notes.txt: not an image" in logs
    assert "broken.png" in logs and "cannot read" in logs
    assert "2 image(s) predicted, 2 file(s) skipped" in logs
    with open(out / "summary.csv") as file:
        rows = {row["image"]: row for row in csv.DictReader(file)}
    assert set(rows) == {"rgb.png", "gray16.png"}
    assert rows["rgb.png"]["size"] == "36x48" and rows["gray16.png"]["size"] == "31x17"
    fractions = [float(rows["rgb.png"][name]) for name in predictor.class_names]
    assert sum(fractions) == pytest.approx(1.0, abs=1e-3)
    assert float(rows["rgb.png"]["seconds"]) >= 0
    assert "| image |" in logs  # the table is printed


def test_predict_one_file_tiled_with_tta(tiny_run_dir, images, tmp_path):
    out = tmp_path / "out"
    ckpt = next((tiny_run_dir / "checkpoints").glob("epoch_*.ckpt"))
    args = [f"ckpt_path={ckpt}", f"input={images}/gray*.png", f"output={out}", "tta=d4"]
    args += ["logger=wandb"]  # and the W&B predict job, checked below
    result = run_predict([*args, "tile_size=8", "save_probabilities=tiff"], cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    predictor = seglab.load_model(ckpt, device="cpu", tta="d4", tile_size=8)
    image = read_image(images / "gray16.png", None, 65535.0)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "gray16.png")), predictor(image))
    assert read_probabilities(out / "gray16_probabilities.tif").shape == (4, 31, 17)
    assert not (out / "rgb.png").exists()
    # W&B: a predict job in the training run's group (a single run: named after its folder)
    # with a table of the predicted image (input with its mask, overlay)
    (run,) = (tmp_path / "logs" / "predict" / "runs").iterdir()
    records = wandb_records.read_finished(run)
    info = wandb_records.run_info(records)
    assert (info.job_type, info.run_group) == ("predict", tiny_run_dir.name)
    assert wandb_records.exit_code(records) == 0
    (row,) = [r for r in wandb_records.history(records) if "predictions/_type" in r]
    assert row["predictions/_type"] == "table-file" and row["predictions/nrows"] == 1
    (files,) = wandb_records.artifact_files(records).values()
    assert "predictions.table.json" in files
    assert len([f for f in files if f.startswith("media/images/") and f.endswith(".png")]) == 3
    assert len([f for f in files if f.startswith("media/images/mask/")]) == 1  # the mask
    assert wandb_records.config(records)["training.checkpoint"] == str(ckpt)


def test_unwritable_output_stops_before_any_work(tiny_run_dir, images, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_predict(
        [f"ckpt_path={tiny_run_dir}", f"input={images}", f"output={blocker}/out"], cwd=tmp_path
    )
    assert result.returncode == 1
    assert f"output={blocker}/out cannot be written" in result.stderr
    assert "choose a folder you can write to" in result.stderr
    assert "Loading" not in result.stdout + result.stderr  # no checkpoint was read


def test_bad_settings_name_the_key(tiny_run_dir, tmp_path):
    result = run_predict(
        [f"ckpt_path={tiny_run_dir}", f"input={tmp_path}/none*.png", f"output={tmp_path}/o"],
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "names no files" in result.stderr
    result = run_predict(
        [f"ckpt_path={tiny_run_dir}", f"input={tmp_path}", "output=o", "save_probabilities=csv"],
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "save_probabilities=csv is not known" in result.stderr
