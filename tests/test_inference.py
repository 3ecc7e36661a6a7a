"""seglab.inference: preprocessing = training, any size, tiled = whole, TTA, writers, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from seglab.data.io import read_image, read_mask
from seglab.data.transforms import build_pipeline
from seglab.inference import (
    Predictor,
    Preprocessing,
    mask_dtype,
    read_probabilities,
    write_mask,
    write_overlay,
    write_probabilities,
)
from seglab.inference import writers as writers_module
from seglab.inference.tta import TRANSFORMS, augment
from seglab.models import UNet
from seglab.utils.overlay import class_colours


class ConvNet(nn.Module):
    """A fixed two-layer conv net: receptive field ``2 * (kernel // 2)`` pixels each side.

    ``symmetric`` averages every kernel over the 8 symmetries of the square, which makes the net
    equivariant to flips and 90-degree rotations (zero padding is symmetric too).
    """

    def __init__(self, in_channels=1, num_classes=3, kernel=3, symmetric=False, seed=0):
        super().__init__()
        self.in_channels, self.num_classes, self.size_multiple = in_channels, num_classes, 1
        torch.manual_seed(seed)
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, 8, kernel, padding=kernel // 2),
            nn.Tanh(),
            nn.Conv2d(8, num_classes, kernel, padding=kernel // 2),
        )
        with torch.no_grad():
            for conv in (self.layers[0], self.layers[2]):
                conv.weight.mul_(3.0)  # sharper logits: differences are easy to see
                if symmetric:
                    weight = conv.weight.clone()
                    conv.weight.copy_(sum(augment(weight, k, f) for k, f in TRANSFORMS["d4"]) / 8)

    def forward(self, x):
        return self.layers(x)


def tiny_unet(in_channels=1, num_classes=2):
    torch.manual_seed(0)
    return UNet(in_channels, num_classes, depth=2, base_width=4)


def predictor(net, **kwargs):
    preprocessing = kwargs.pop("preprocessing", Preprocessing(net.in_channels, [0.4], [0.2]))
    names = [f"class{c}" for c in range(net.num_classes)]
    return Predictor(net, preprocessing, names, device="cpu", **kwargs)


def random_image(height, width, channels=None, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels is None else (height, width, channels)
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == np.uint16:
        return rng.integers(0, 65536, shape, dtype=np.uint16)
    return rng.random(shape).astype(dtype)


# --- preprocessing = the training pipeline ------------------------------------------------------

PIPELINE_CASES = [  # (file channels, file bits, network in_channels)
    (1, 8, 1),
    (3, 8, 3),
    (3, 8, 1),  # RGB file, gray network: Pillow's luma in training, the same luma here
    (1, 8, 3),
    (1, 16, 1),
    (1, 16, 3),
]


@pytest.mark.parametrize(("file_channels", "bits", "in_channels"), PIPELINE_CASES)
def test_preprocessing_equals_training_pipeline(tmp_path, file_channels, bits, in_channels):
    dtype = np.uint16 if bits == 16 else np.uint8
    array = random_image(23, 37, None if file_channels == 1 else 3, dtype, seed=bits)
    path = tmp_path / "image.png"
    Image.fromarray(array).save(path)
    mean, std = [0.3, 0.5, 0.45][:in_channels], [0.2, 0.1, 0.3][:in_channels]
    max_value = 4095.0 if bits == 16 else 65535.0
    training = read_image(path, channels=in_channels, max_value_16bit=max_value)
    expected = build_pipeline([], mean, std)(image=training)["image"]
    raw = np.asarray(Image.open(path))  # what a user holds: uint8 or uint16, H x W (x 3)
    assert raw.dtype == dtype
    got = Preprocessing(in_channels, mean, std, max_value).to_tensor(raw)
    assert got.shape == (1, in_channels, 23, 37) and got.dtype == torch.float32
    torch.testing.assert_close(got[0], expected, atol=1e-5, rtol=0)


def test_float_images_are_taken_on_the_0_1_scale():
    image = random_image(9, 11, 3)
    preprocessing = Preprocessing(3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    as_float = preprocessing.to_tensor(image.astype(np.float64) / 255)
    torch.testing.assert_close(as_float, preprocessing.to_tensor(image), atol=1e-5, rtol=0)


def test_gray_to_rgb_network_equals_the_repeated_gray_image():
    gray = random_image(20, 24)
    p = predictor(tiny_unet(3, 2))
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    np.testing.assert_array_equal(p.probabilities(gray), p.probabilities(rgb))


# --- any size, any dtype -------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(1, 1), (31, 17), (517, 389)])
def test_any_size_gives_a_mask_of_the_image_size(height, width):
    p = predictor(tiny_unet(), tile_size=96, tile_batch_size=3)
    image = random_image(height, width)
    mask = p(image)
    probabilities = p.probabilities(image)
    assert mask.shape == (height, width) and mask.dtype == np.uint8
    assert probabilities.shape == (2, height, width) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(mask, probabilities.argmax(0))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize(
    ("channels", "in_channels"), [(None, 1), (1, 1), (3, 1), (None, 3), (3, 3)]
)
def test_gray_rgb_and_bit_depths(dtype, channels, in_channels):
    image = random_image(19, 26, channels, dtype)
    mask = predictor(tiny_unet(in_channels, 3))(image)
    assert mask.shape == (19, 26) and mask.dtype == np.uint8 and mask.max() < 3


def test_mask_dtype_follows_the_number_of_classes():
    assert mask_dtype(2) == np.uint8 and mask_dtype(256) == np.uint8
    assert mask_dtype(257) == np.uint16 and mask_dtype(65536) == np.uint16
    assert mask_dtype(70000) == np.int32
    mask = predictor(ConvNet(num_classes=300, kernel=1))(random_image(8, 9))
    assert mask.dtype == np.uint16 and mask.shape == (8, 9)


def test_network_runs_in_eval_mode_under_inference_mode():
    net = UNet(1, 2, depth=2, base_width=4, dropout=0.5)
    p = predictor(net)
    image = random_image(16, 16)
    first = p.probabilities(image)
    net.train()  # the caller trains it meanwhile: predictions stay deterministic
    np.testing.assert_array_equal(p.probabilities(image), first)
    assert not net.training
    seen = []
    net.register_forward_hook(lambda *_: seen.append(torch.is_inference_mode_enabled()))
    p(image)
    assert seen == [True]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_equals_cpu():
    image = random_image(300, 280)
    cpu = predictor(tiny_unet(), tile_size=128).probabilities(image)
    gpu = Predictor(
        tiny_unet(), Preprocessing(1, [0.4], [0.2]), ["a", "b"], tile_size=128, device="cuda"
    )
    np.testing.assert_allclose(gpu.probabilities(image), cpu, atol=1e-4)


# --- tiled = whole -------------------------------------------------------------------------------


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """MONAI's grid along one axis: steps of int(tile * (1 - overlap)), the last tile flush."""
    if size <= tile:
        return [0]
    step = int(tile * (1 - overlap))
    return [min(i * step, size - tile) for i in range(math.ceil((size - tile) / step) + 1)]


def exact_pixels(size: int, tile: int, overlap: float, radius: int) -> np.ndarray:
    """Pixels whose every covering tile holds their whole receptive field (or the image edge)."""
    exact = np.ones(size, dtype=bool)
    for start in tile_starts(size, tile, overlap):
        for p in range(start, start + tile):
            left_ok = p - radius >= start or start == 0
            right_ok = p + radius < start + tile or start + tile == size
            exact[p] &= left_ok and right_ok
    return exact


def test_tiled_equals_whole_for_a_pointwise_net_with_gaussian_blending():
    net = ConvNet(kernel=1)
    image = random_image(61, 47)
    whole = predictor(net, tile_size=None).probabilities(image)
    tiled = predictor(net, tile_size=16, tile_overlap=0.25, blend="gaussian")
    np.testing.assert_allclose(tiled.probabilities(image), whole, atol=1e-5)


@pytest.mark.parametrize("tta", ["none", "d4"])
def test_tiled_equals_whole_on_the_valid_interior(tta):
    net, tile, overlap = ConvNet(kernel=3), 16, 0.5  # receptive field: 2 pixels each side
    image = random_image(56, 44)
    whole = predictor(net, tile_size=None, tta=tta).probabilities(image)
    tiled = predictor(net, tile_size=tile, tile_overlap=overlap, blend="constant", tta=tta)
    got = tiled.probabilities(image)
    rows, cols = exact_pixels(56, tile, overlap, 2), exact_pixels(44, tile, overlap, 2)
    interior = rows[:, None] & cols[None, :]
    assert 0.2 < interior.mean() < 0.8  # both kinds of pixels are there
    difference = np.abs(got - whole).max(axis=0)
    assert difference[interior].max() < 1e-5
    assert difference[~interior].max() > 1e-3  # the image really was tiled


def test_tile_size_is_rounded_to_the_size_multiple(monkeypatch):
    from seglab.inference import predictor as predictor_module

    seen = []
    real = predictor_module.sliding_window
    monkeypatch.setattr(
        predictor_module,
        "sliding_window",
        lambda f, x, roi, **kw: seen.append(roi) or real(f, x, roi, **kw),
    )
    p = predictor(tiny_unet(), tile_size=30)  # size multiple 4 -> 32
    assert p(random_image(40, 20)).shape == (40, 20)
    assert seen == [(32, 20)]  # never larger than the image: MONAI would pad it
    assert p(random_image(32, 32)).shape == (32, 32) and len(seen) == 1  # fits: not tiled


# --- test-time augmentation ----------------------------------------------------------------------


@pytest.mark.parametrize("tta", ["flips", "d4"])
@pytest.mark.parametrize("tile_size", [None, 12])
def test_tta_of_an_equivariant_net_changes_nothing(tta, tile_size):
    net = ConvNet(kernel=3, symmetric=True)
    image = random_image(31, 17)
    plain = predictor(net, tile_size=tile_size).probabilities(image)
    augmented = predictor(net, tile_size=tile_size, tta=tta).probabilities(image)
    np.testing.assert_allclose(augmented, plain, atol=1e-5)


def test_tta_averages_the_restored_predictions_of_a_non_equivariant_net():
    net = ConvNet(kernel=3)
    image = random_image(31, 17)
    plain = predictor(net)
    expected = []
    for turns in range(4):
        for flip in (False, True):
            view = np.rot90(image[:, ::-1] if flip else image, turns)
            back = np.rot90(plain.probabilities(np.ascontiguousarray(view)), -turns, axes=(1, 2))
            expected.append(back[:, :, ::-1] if flip else back)
    d4 = predictor(net, tta="d4").probabilities(image)
    np.testing.assert_allclose(d4, np.mean(expected, axis=0), atol=1e-5)
    flips = predictor(net, tta="flips").probabilities(image)
    assert np.abs(flips - plain.probabilities(image)).max() > 1e-2
    np.testing.assert_array_equal(predictor(net, tta="d4")(image), d4.argmax(0))


# --- writers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("num_classes", "bits"), [(2, 8), (256, 8), (300, 16)])
def test_mask_png_round_trip(tmp_path, num_classes, bits):
    mask = (
        np.random.default_rng(0).integers(0, num_classes, (13, 21)).astype(mask_dtype(num_classes))
    )
    mask[0, 0] = num_classes - 1
    path = write_mask(tmp_path / "mask.png", mask, num_classes)
    assert Image.open(path).mode == ("L" if bits == 8 else "I;16")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), mask)
    np.testing.assert_array_equal(read_mask(path), mask)  # training reads it back as it is


def test_overlay_png_uses_the_class_colours(tmp_path):
    image = random_image(10, 12)
    mask = np.zeros((10, 12), np.uint8)
    mask[:5] = 1
    mask[9, 11] = 255
    path = write_overlay(tmp_path / "overlay.png", image, mask, 2, ignore_index=255)
    drawn = np.asarray(Image.open(path)).astype(np.float64) / 255
    assert drawn.shape == (10, 12, 3)
    colours = class_colours(2)
    gray = image.astype(np.float64)[..., None] / 255
    np.testing.assert_allclose(drawn[:5], 0.5 * gray[:5] + 0.5 * colours[1], atol=1 / 255)
    np.testing.assert_allclose(drawn[5:9], 0.5 * gray[5:9] + 0.5 * colours[0], atol=1 / 255)
    np.testing.assert_array_equal(drawn[9, 11], [1.0, 1.0, 1.0])
    palette = [[0, 0, 0], [255, 0, 0]]
    path = write_overlay(tmp_path / "palette.png", image, mask, 2, palette=palette)
    red = np.asarray(Image.open(path))[0, 0]
    assert red[0] == round((0.5 * image[0, 0] / 255 + 0.5) * 255) and red[1] == red[2]


@pytest.mark.parametrize("name", ["p.npy", "p.tif", "p.tiff"])
@pytest.mark.parametrize("opencv", [False, True])
def test_probability_map_round_trip(tmp_path, monkeypatch, name, opencv):
    if opencv:  # the writer's fallback when tifffile is not installed
        monkeypatch.setattr(writers_module, "_tiff_writer", lambda: None)
    probabilities = predictor(ConvNet()).probabilities(random_image(14, 9))
    path = write_probabilities(tmp_path / name, probabilities)
    back = read_probabilities(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, probabilities)


def test_writers_refuse_what_they_cannot_write(tmp_path):
    with pytest.raises(ValueError, match=r"\.npy or \.tif"):
        write_probabilities(tmp_path / "p.png", np.zeros((2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="16-bit PNG"):
        write_mask(tmp_path / "m.png", np.zeros((3, 3), np.int32), 70000)
    with pytest.raises(ValueError, match="one \\[r, g, b\\]"):
        write_overlay(tmp_path / "o.png", random_image(3, 3), np.zeros((3, 3)), 2, palette=[[1]])


# --- bad inputs ----------------------------------------------------------------------------------

BAD_IMAGES = [
    (np.zeros((8, 8, 2), np.uint8), r"\(8, 8, 2\) has 2 channels .* in_channels=1"),
    (np.zeros((3, 40, 40), np.uint8), r"channels-first: pass image.transpose\(1, 2, 0\)"),
    (np.zeros((2, 8, 8, 1), np.uint8), r"shape \(2, 8, 8, 1\): pass one H x W"),
    (np.zeros((5,), np.uint8), r"shape \(5,\)"),
    (np.zeros((0, 8), np.uint8), "is empty"),
    (np.zeros((8, 8), bool), "dtype bool is not supported"),
    (np.zeros((8, 8), np.complex64), "dtype complex64 is not supported"),
    (np.zeros((8, 8), np.int32), "dtype int32 is not supported"),
    (np.full((8, 8), 255.0), r"0\.\.1 scale, this one spans 255\.\.255"),
    (np.full((8, 8), np.nan, np.float32), "NaN"),
]


@pytest.mark.parametrize(("image", "message"), BAD_IMAGES)
def test_bad_images_name_the_problem(image, message):
    p = predictor(ConvNet())
    with pytest.raises(ValueError, match=message):
        p(image)
    with pytest.raises(ValueError, match=message):
        p.probabilities(image)


def test_rgb_network_refuses_other_channel_counts():
    with pytest.raises(ValueError, match=r"has 2 channels but the network takes in_channels=3"):
        predictor(ConvNet(in_channels=3))(np.zeros((8, 8, 2), np.uint8))


BAD_SETTINGS = [
    (dict(tta="rot"), "tta must be one of"),
    (dict(tile_overlap=1.0), r"tile_overlap must be in \[0, 1\)"),
    (dict(tile_size=0), "tile_size must be >= 1"),
    (dict(tile_batch_size=0), "tile_batch_size must be >= 1"),
    (dict(blend="linear"), "blend must be one of"),
    (dict(preprocessing=Preprocessing(3, [0.5], [0.2])), "in_channels=3 but the network"),
]


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS)
def test_bad_settings_name_the_argument(settings, message):
    with pytest.raises(ValueError, match=message):
        predictor(ConvNet(), **settings)


def test_bad_networks_and_class_names_are_refused():
    with pytest.raises(ValueError, match="2 class names .* num_classes=3"):
        Predictor(ConvNet(), Preprocessing(1), ["a", "b"], device="cpu")
    with pytest.raises(TypeError, match="has no in_channels, num_classes, size_multiple"):
        Predictor(nn.Sequential(nn.Conv2d(1, 2, 1)), Preprocessing(1), ["a", "b"], device="cpu")
    valid = predictor(UNet(1, 2, depth=2, base_width=4, padding="valid"))
    with pytest.raises(ValueError, match="padding='same', not 'valid'"):
        valid(random_image(44, 44))
    with pytest.raises(ValueError, match="std must be positive"):
        Preprocessing(1, [0.5], [0.0])
    with pytest.raises(ValueError, match="2 values for in_channels=3"):
        Preprocessing(3, [0.5, 0.5], [0.2])
