"""seglab-inspect: class frequencies, median-frequency weights, mean/std, samples.png, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import hydra
import numpy as np
import pytest
from PIL import Image

from seglab.inspection import inspect_data, median_frequency_weights

from .conftest import REPO_ROOT, TINY_DATA, compose_train
from .helpers.folders import folder_overrides, make_folder


@pytest.fixture
def synthetic(tmp_path):
    cfg = compose_train(tmp_path / "run", TINY_DATA)
    return hydra.utils.instantiate(cfg.data)


def direct_counts(dataset, num_classes, ignore_index):
    counts = np.zeros(num_classes, dtype=np.int64)
    for index in range(len(dataset)):
        mask = dataset[index]["mask"]
        counts += np.bincount(mask[mask != ignore_index].ravel(), minlength=num_classes)
    return counts


def test_frequencies_match_a_direct_count(synthetic, tmp_path):
    summary = inspect_data(synthetic, tmp_path / "out", num_samples=4, show=False)
    assert set(summary["splits"]) == {"train", "val", "test"}
    for name, split in summary["splits"].items():
        counts = direct_counts(synthetic.datasets[name], synthetic.num_classes, 255)
        assert split["samples"] == split["inspected"] == len(synthetic.datasets[name])
        assert split["class_pixels"] == counts.tolist()
        assert sum(split["class_frequency"]) == pytest.approx(1.0)
        np.testing.assert_allclose(split["class_frequency"], counts / counts.sum())
        assert split["size_min"] == split["size_max"] == [32, 32]


def test_weights_are_median_frequency_balancing(synthetic, tmp_path):
    summary = inspect_data(synthetic, tmp_path / "out", num_samples=0, show=False)
    freq = np.asarray(summary["splits"]["train"]["class_frequency"])
    assert (freq > 0).all()
    np.testing.assert_allclose(summary["class_weights"], np.median(freq) / freq)
    weights = np.asarray(summary["class_weights"])
    assert weights[np.argmax(freq)] == weights.min() < 1 < weights.max()
    assert any(o.startswith("'loss.class_weights=[") for o in summary["overrides"])
    # absent classes have no pixels to weight
    assert median_frequency_weights([0.5, 0.0, 0.25, 0.25]) == [0.5, 0.0, 1.0, 1.0]


def test_mean_std_match_numpy_on_raw_train_images(synthetic, tmp_path):
    summary = inspect_data(synthetic, tmp_path / "out", num_samples=0, show=False)
    train = synthetic.datasets["train"]
    pixels = np.stack([train[i]["image"] for i in range(len(train))]).astype(np.float64) / 255
    np.testing.assert_allclose(summary["mean"], [pixels.mean()], rtol=1e-9)
    np.testing.assert_allclose(summary["std"], [pixels.std()], rtol=1e-6)
    assert f"'data.mean=[{round(pixels.mean(), 4):g}]'" in summary["overrides"]


def test_rgb_mean_std_per_channel(tmp_path):
    cfg = compose_train(
        tmp_path / "run",
        [*TINY_DATA, "data.in_channels=3", "data.mean=[.5,.5,.5]", "data.std=[.2,.2,.2]"],
    )
    datamodule = hydra.utils.instantiate(cfg.data)
    summary = inspect_data(datamodule, tmp_path / "out", num_samples=2, show=False)
    train = datamodule.datasets["train"]
    pixels = np.stack([train[i]["image"] for i in range(len(train))]).astype(np.float64) / 255
    np.testing.assert_allclose(summary["mean"], pixels.mean(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(summary["std"], pixels.std(axis=(0, 1, 2)), rtol=1e-6)


def test_writes_samples_png_and_summary_json(synthetic, tmp_path, capsys):
    out = tmp_path / "out"
    summary = inspect_data(synthetic, out, num_samples=8)
    with Image.open(out / "samples.png") as image:
        assert image.width >= 800 and image.height >= 300
        colours = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) > 100  # images and overlays, not a blank figure
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    printed = capsys.readouterr().out
    assert "Data inspection" in printed and "loss.class_weights=" in printed


def test_max_samples_reads_evenly_spaced_samples(synthetic, tmp_path):
    summary = inspect_data(synthetic, tmp_path / "out", num_samples=0, max_samples=4, show=False)
    assert summary["splits"]["train"]["inspected"] == 4
    assert summary["splits"]["train"]["samples"] == 16
    assert summary["samples_png"] is None


def test_folder_data(tmp_path):
    root = make_folder(tmp_path / "data")
    cfg = compose_train(tmp_path / "run", folder_overrides(root))
    datamodule = hydra.utils.instantiate(cfg.data)
    summary = inspect_data(datamodule, tmp_path / "out", num_samples=3, show=False)
    assert [s["samples"] for s in summary["splits"].values()] == [7, 2, 1]
    for split in summary["splits"].values():
        assert split["size_min"] == split["size_max"] == [16, 20]
        assert sum(split["class_frequency"]) == pytest.approx(1.0)
    # make_folder: class 1 where the (uniform random) image is > 127: about half the pixels
    assert summary["splits"]["train"]["class_frequency"][1] == pytest.approx(0.5, abs=0.05)
    assert summary["mean"][0] == pytest.approx(0.5, abs=0.05)
    with Image.open(tmp_path / "out" / "samples.png") as image:
        assert image.width > 200


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    """``python -m seglab.inspection`` writes into logs/inspect/runs/<date>_<time>/."""
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "PROJECT_ROOT": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "seglab.inspection", *TINY_DATA, "inspect.num_samples=4"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loss.class_weights=" in result.stdout
    (run_dir,) = (tmp_path / "logs" / "inspect" / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["splits"]["train"]["samples"] == 16
    assert (run_dir / "samples.png").stat().st_size > 10_000
    assert "task_name: inspect" in (run_dir / ".hydra" / "config.yaml").read_text()
