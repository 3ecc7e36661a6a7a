"""PredictionImages: the same validation samples predicted after every validation epoch, as PNG
grids in the run dir and as W&B images with prediction / ground-truth masks."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import hydra
import numpy as np
import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn
from PIL import Image

from seglab.callbacks import PredictionImages
from seglab.callbacks.prediction_images import (
    DPI,
    grid_inches,
    predict,
    save_grid,
    select_samples,
)
from seglab.models.base import center_crop
from seglab.train import run_task
from seglab.utils.overlay import IGNORE_COLOUR, class_colours, display_image, overlay

from .conftest import TINY, compose_train, run_train_script
from .helpers import wandb_records

CLASSES = ["background", "disc", "square", "triangle"]


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def expected_png_size(num_columns: int, num_legend_entries: int) -> tuple[int, int]:
    width, height, _ = grid_inches(num_columns, num_legend_entries)
    return round(width * DPI), round(height * DPI)


@pytest.fixture
def tiny_parts(tmp_path):
    """The tiny config's validation split and network, without a trainer."""

    def build(*overrides):
        cfg = compose_train(tmp_path / "cfg", [*TINY, *overrides])
        datamodule = hydra.utils.instantiate(cfg.data)
        torch.manual_seed(0)
        return datamodule, hydra.utils.instantiate(cfg.model)

    return build


def test_one_grid_per_validation_epoch_of_the_same_samples(tiny_cfg, tmp_path, monkeypatch):
    drawn = []
    draw = PredictionImages.draw

    def spy(self, trainer, pl_module):
        drawn.append((trainer.sanity_checking, trainer.global_step, list(self.samples.indices)))
        draw(self, trainer, pl_module)

    monkeypatch.setattr(PredictionImages, "draw", spy)
    run_task(tiny_cfg("callbacks.prediction_images.num_samples=3"))
    # no sanity-check drawing; one per epoch after its 4 steps; the same evenly spaced samples
    assert drawn == [(False, 4, [0, 4, 7]), (False, 8, [0, 4, 7])]
    pngs = sorted(p.name for p in (tmp_path / "predictions").iterdir())
    assert pngs == ["epoch_000.png", "epoch_001.png"]
    for name in pngs:
        # 3 columns; legend: the 4 classes (no ignored pixels in the synthetic masks)
        assert png_size(tmp_path / "predictions" / name) == expected_png_size(3, 4)
    assert expected_png_size(3, 4)[0] == round((0.35 + 3 * 1.6 + 0.05) * DPI)


def test_predictions_are_the_networks_argmax_and_change_with_it(tiny_parts):
    datamodule, net = tiny_parts()
    dataset = datamodule.split("val")
    samples = select_samples(dataset, 3)
    assert samples.indices == [0, 4, 7]
    with torch.no_grad():
        net.eval()
        expected = net(torch.stack(samples.images)).argmax(dim=1).numpy()
    net.train()
    batch_norm = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    batch_norm.eval()  # kept in eval on purpose (as a frozen encoder's batch norm)
    predictions = predict(net, samples)
    assert net.training and not batch_norm.training  # each module's mode is restored
    for prediction, label, index in zip(predictions, expected, samples.indices, strict=True):
        assert prediction.index == index
        np.testing.assert_array_equal(prediction.prediction, label)
        np.testing.assert_array_equal(prediction.mask, dataset[index]["mask"].numpy())
    # other weights, other predictions
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(torch.randn_like(parameter))
    changed = predict(net, samples)
    assert any(
        (a.prediction != b.prediction).any() for a, b in zip(predictions, changed, strict=True)
    )


def test_more_samples_asked_than_the_val_set_has(tiny_parts):
    datamodule, _ = tiny_parts()
    assert select_samples(datamodule.split("val"), 100).indices == list(range(8))


def test_valid_padding_crops_image_and_mask_like_the_module(tiny_parts, tmp_path):
    sizes = ["data.dataset.image_size=44"]
    datamodule, net = tiny_parts(*sizes, "model.padding=valid")
    dataset = datamodule.split("val")
    samples = select_samples(dataset, 2)
    predictions = predict(net, samples)
    output = net(samples.images[0][None]).shape[-2:]
    assert tuple(output) < (44, 44)
    for prediction, index in zip(predictions, samples.indices, strict=True):
        assert prediction.prediction.shape == prediction.mask.shape == tuple(output)
        assert prediction.image.shape == (*output, 3)
        np.testing.assert_array_equal(
            prediction.mask, center_crop(dataset[index]["mask"], output).numpy()
        )
    path = save_grid(predictions, tmp_path / "valid.png", CLASSES, 255, "valid padding")
    assert png_size(path) == expected_png_size(2, 4)


def test_images_are_shown_denormalised_in_one_or_three_channels(tiny_parts):
    for channels in (1, 3):
        datamodule, _ = tiny_parts(
            f"data.in_channels={channels}",
            f"data.mean=[{','.join(['0.5'] * channels)}]",
            f"data.std=[{','.join(['0.25'] * channels)}]",
        )
        samples = select_samples(datamodule.split("val"), 1)
        raw = np.asarray(datamodule.datasets["val"][0]["image"], dtype=np.float64) / 255
        shown = display_image(samples.images[0].numpy(), samples.stats)
        assert shown.shape == (32, 32, 3)
        expected = raw if channels == 3 else np.repeat(raw.reshape(32, 32, 1), 3, axis=-1)
        np.testing.assert_allclose(shown, expected, atol=1e-5)
    # without a normalisation: min-max scaled
    scaled = display_image(np.array([[[2.0, 4.0], [6.0, 10.0]]]))
    np.testing.assert_allclose(scaled[..., 0], [[0, 0.25], [0.5, 1]])


def test_ignored_pixels_are_drawn_apart_from_every_class():
    colours = class_colours(4)
    image = np.full((2, 2, 3), 0.5)
    mask = np.array([[0, 3], [255, 1]])
    shown = overlay(image, mask, colours, ignore_index=255)
    np.testing.assert_allclose(shown[1, 0], IGNORE_COLOUR)
    np.testing.assert_allclose(shown[0, 1], 0.25 + 0.5 * colours[3])
    assert not any(np.allclose(shown[1, 0], 0.25 + 0.5 * c) for c in colours)


def fake_trainer(**attributes) -> SimpleNamespace:
    defaults = {
        "sanity_checking": False,
        "is_global_zero": True,
        "state": SimpleNamespace(fn=TrainerFn.FITTING),
        "current_epoch": 0,
        "global_step": 4,
        "loggers": [],
    }
    return SimpleNamespace(**{**defaults, **attributes})


class Untouchable:
    """Fails on any attribute read: the callback must not look at the trainer's data."""

    def __getattr__(self, name):
        raise AssertionError(f"read {name}")


@pytest.mark.parametrize("skip", [{"is_global_zero": False}, {"sanity_checking": True}])
def test_nothing_on_other_ranks_or_in_the_sanity_check(tmp_path, skip):
    callback = PredictionImages(tmp_path / "predictions")
    trainer = fake_trainer(**skip, val_dataloaders=Untouchable())
    callback.on_validation_epoch_end(trainer, Untouchable())
    assert callback.samples is None and not (tmp_path / "predictions").exists()


def test_no_val_set_warns_once_and_draws_nothing(tmp_path):
    callback = PredictionImages(tmp_path / "predictions")
    trainer = fake_trainer(val_dataloaders=None)
    with pytest.warns(UserWarning, match="no indexable, non-empty dataset"):
        callback.on_validation_epoch_end(trainer, Untouchable())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        callback.on_validation_epoch_end(trainer, Untouchable())
    assert not (tmp_path / "predictions").exists()
    # a fit during which no validation ran at all
    with pytest.warns(UserWarning, match="no validation epoch ran"):
        PredictionImages(tmp_path).on_fit_end(fake_trainer(), Untouchable())


def test_every_n_epochs(tmp_path, monkeypatch):
    callback = PredictionImages(tmp_path, every_n_epochs=2)
    calls = []
    monkeypatch.setattr(callback, "draw", lambda trainer, module: calls.append(trainer))
    callback.samples = "chosen"
    for epoch in range(4):
        callback.on_validation_epoch_end(fake_trainer(current_epoch=epoch), None)
    assert [t.current_epoch for t in calls] == [1, 3]
    with pytest.raises(ValueError, match="num_samples and every_n_epochs must be >= 1"):
        PredictionImages(tmp_path, num_samples=0)


def test_offline_wandb_run_holds_prediction_and_ground_truth_masks(tiny_cfg, tmp_path):
    run_task(tiny_cfg("logger=wandb", "callbacks.prediction_images.num_samples=3"))
    run_file = wandb_records.run_file(tmp_path)
    files = run_file.parent / "files"
    records = wandb_records.read_finished(tmp_path)  # W&B may still be writing the file
    rows = [r for r in wandb_records.history(records) if "val/predictions/_type" in r]
    # one row per validation epoch, at the trainer's global step (W&B's step slider)
    assert [r["trainer/global_step"] for r in rows] == [4, 8]
    dataset = hydra.utils.instantiate(compose_train(tmp_path / "cfg", TINY).data).split("val")
    for row in rows:
        assert row["val/predictions/_type"] == "images/separated"
        assert row["val/predictions/count"] == 3
        assert row["val/predictions/captions"] == ["val sample 0", "val sample 4", "val sample 7"]
        for index, masks in zip((0, 4, 7), row["val/predictions/all_masks"], strict=True):
            assert set(masks) == {"prediction", "ground_truth"}
            truth = np.asarray(Image.open(files / masks["ground_truth"]["path"]))
            np.testing.assert_array_equal(truth, dataset[index]["mask"].numpy())
            prediction = np.asarray(Image.open(files / masks["prediction"]["path"]))
            assert prediction.shape == (32, 32) and set(np.unique(prediction)) <= {0, 1, 2, 3}
        for path in row["val/predictions/filenames"]:
            assert png_size(files / path) == (32, 32)
    labels = wandb_records.config(records)["_wandb"]["mask/class_labels"]
    for mask in ("prediction", "ground_truth"):
        entry = labels[f"val/predictions_wandb_delimeter_{mask}"]
        assert entry["value"] == {str(c): name for c, name in enumerate(CLASSES)}


@pytest.mark.slow
def test_two_processes_draw_once_into_one_wandb_run(tmp_path):
    """Under DDP rank zero alone reads, predicts, writes and logs; the ranks do not hang."""
    run_dir = tmp_path / "run"
    run_train_script(
        [
            *TINY,
            "trainer.devices=2",
            "trainer.max_epochs=1",
            "logger=wandb",
            "test=false",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        check=True,
    )
    assert sorted(p.name for p in (run_dir / "predictions").iterdir()) == ["epoch_000.png"]
    records = wandb_records.read_finished(run_dir)
    rows = [r for r in wandb_records.history(records) if "val/predictions/_type" in r]
    # 16 train samples over 2 processes, batch 4: 2 steps in the epoch
    assert [(r["val/predictions/count"], r["trainer/global_step"]) for r in rows] == [(8, 2)]
