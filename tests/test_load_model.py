"""Self-contained checkpoints, safe loading and ``seglab.load_model`` on a tiny real run."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import seglab
from seglab.checkpoints import CheckpointError
from seglab.inference import Predictor


def best_path(run) -> str:
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    (best,) = {s["best_model_path"] for s in last["callbacks"].values() if s.get("best_model_path")}
    return best


def val_sample(run, index: int = 0):
    """A raw val image and the same image through the training eval pipeline, with the net of
    the run's config (weights of the best checkpoint)."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    datamodule = hydra.utils.instantiate(cfg.data)
    sample = datamodule.datasets["val"][index]
    x = datamodule.pipelines["eval"](image=sample["image"], mask=sample["mask"])["image"][None]
    net = hydra.utils.instantiate(cfg.model)
    state = torch.load(best_path(run), weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    with torch.no_grad():
        expected = net.eval()(x.float()).argmax(1)[0].numpy()
    return sample["image"], expected


def test_every_checkpoint_carries_its_card(tiny_run_dir):
    files = sorted((tiny_run_dir / "checkpoints").glob("*.ckpt"))
    assert len(files) == 2  # the best epoch and last.ckpt
    for path in files:
        card = torch.load(path, weights_only=True)["seglab"]
        assert card["net"]["_target_"] == "seglab.models.unet.UNet"
        assert card["net"]["depth"] == 2 and card["net"]["base_width"] == 4
        assert card["class_names"] == ["background", "disc", "square", "triangle"]
        assert card["in_channels"] == 1 and card["ignore_index"] == 255
        assert card["mean"] == [0.5] and card["std"] == [0.25]
        assert card["max_value_16bit"] == 65535.0
        assert len(card["palette"]) == 4 and all(len(c) == 3 for c in card["palette"])
        assert card["size_multiple"] == 4 and "bottom/right" in card["padding_mode"]
        assert card["version"] == seglab.__version__


def test_load_checkpoint_and_run_folder(tiny_run_dir, caplog):
    image, expected = val_sample(tiny_run_dir)
    predictor = seglab.load_model(best_path(tiny_run_dir), device="cpu")
    assert isinstance(predictor, Predictor)
    assert predictor.class_names == ["background", "disc", "square", "triangle"]
    np.testing.assert_array_equal(predictor(image), expected)
    probabilities = predictor.probabilities(image)
    assert probabilities.shape == (4, *image.shape[:2])
    np.testing.assert_array_equal(probabilities.argmax(0), expected)

    with caplog.at_level(logging.INFO, logger="seglab.inference.loading"):
        from_folder = seglab.load_model(tiny_run_dir, device="cpu", tta="flips")
    assert str(from_folder.checkpoint_path) == best_path(tiny_run_dir)
    assert "the best checkpoint recorded in last.ckpt" in caplog.text
    assert from_folder.tta == "flips"


def test_run_folder_without_last_picks_the_epoch_checkpoint(tiny_run_dir, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(best_path(tiny_run_dir), tmp_path / "checkpoints")
    predictor = seglab.load_model(tmp_path, device="cpu")
    assert predictor.checkpoint_path.name.startswith("epoch_")


def test_old_checkpoint_loads_with_its_run_config(tiny_run_dir, tmp_path):
    image, expected = val_sample(tiny_run_dir)
    content = torch.load(best_path(tiny_run_dir), weights_only=True)
    del content["seglab"]
    old = tiny_run_dir / "checkpoints" / "old.ckpt"
    torch.save(content, old)
    try:
        predictor = seglab.load_model(old, device="cpu")
        np.testing.assert_array_equal(predictor(image), expected)
        assert predictor.card.net["depth"] == 2
        alone = tmp_path / "old.ckpt"
        shutil.copy(old, alone)
        with pytest.raises(CheckpointError, match=r"no seglab model card.*\.hydra/config\.yaml"):
            seglab.load_model(alone, device="cpu")
    finally:
        old.unlink()


@pytest.mark.parametrize(
    "target", ["os.system", "builtins.eval", "seglab.models.ResNetEncoder", "seglab.models.nope"]
)
def test_forged_target_is_refused(tiny_run_dir, tmp_path, target):
    content = torch.load(best_path(tiny_run_dir), weights_only=True)
    content["seglab"]["net"]["_target_"] = target
    forged = tmp_path / "forged.ckpt"
    torch.save(content, forged)
    with pytest.raises(CheckpointError, match=f"build '{target}', which seglab refuses"):
        seglab.load_model(forged, device="cpu")


def test_bad_files_and_wrong_expectations(tiny_run_dir, tmp_path):
    truncated = tmp_path / "truncated.ckpt"
    data = Path(best_path(tiny_run_dir)).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, or is not a torch checkpoint"):
        seglab.load_model(truncated)
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        seglab.load_model(text)
    with pytest.raises(CheckpointError, match=r"trained for 4 classes .* not the num_classes=3"):
        seglab.load_model(best_path(tiny_run_dir), num_classes=3)
    with pytest.raises(CheckpointError, match=r"holds a seglab.models.unet.UNet, not the arch"):
        seglab.load_model(best_path(tiny_run_dir), architecture="ResUNet")
    assert (
        seglab.load_model(best_path(tiny_run_dir), device="cpu", architecture="UNet").num_classes
        == 4
    )
    with pytest.raises(FileNotFoundError, match="does not exist"):
        seglab.load_model(tmp_path / "missing")


def test_weights_that_do_not_fit_the_card(tiny_run_dir, tmp_path):
    content = torch.load(best_path(tiny_run_dir), weights_only=True)
    content["seglab"]["net"]["base_width"] = 8
    changed = tmp_path / "changed.ckpt"
    torch.save(content, changed)
    with pytest.raises(CheckpointError, match="does not fit the configured UNet"):
        seglab.load_model(changed, device="cpu")


def test_card_palette_from_the_data_and_plain_round_trip(tmp_path):
    from seglab.inference.card import ModelCard, default_palette
    from seglab.models import UNet

    net = UNet(in_channels=3, num_classes=2, depth=2, base_width=4)
    data = {
        "class_names": ["background", "road"],
        "mean": [0.4, 0.5, 0.6],
        "std": 0.2,
        "dataset": {"palette": {"background": [0, 0, 0], 1: [255, 0, 0]}, "max_value_16bit": 4095},
    }
    card = ModelCard.from_training(net, data)
    assert card.palette == [[0, 0, 0], [255, 0, 0]]
    assert card.std == [0.2] and card.max_value_16bit == 4095.0 and card.in_channels == 3
    partial = {**data, "dataset": {"palette": {"road": [255, 0, 0]}}}
    assert ModelCard.from_training(net, partial).palette == default_palette(2)
    stored = {**card.to_dict(), "added_later": 1}  # a newer seglab's key is ignored
    assert ModelCard.from_dict(stored) == card
    torch.save({"seglab": card.to_dict()}, tmp_path / "card.pt")  # plain types only:
    assert torch.load(tmp_path / "card.pt", weights_only=True)["seglab"] == card.to_dict()
