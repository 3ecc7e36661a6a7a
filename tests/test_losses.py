import pytest
import torch
import torch.nn.functional as F

from seglab.losses import CrossEntropyLoss, DiceCELoss, DiceLoss


@pytest.fixture
def batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    return logits, target


def test_cross_entropy_matches_torch_and_uses_class_weights(batch):
    logits, target = batch
    assert torch.allclose(CrossEntropyLoss()(logits, target), F.cross_entropy(logits, target))
    weighted = CrossEntropyLoss(class_weights=[1.0, 2.0, 3.0])(logits, target)
    expected = F.cross_entropy(logits, target, weight=torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(weighted, expected)


@pytest.mark.parametrize("loss", [CrossEntropyLoss(), DiceLoss(), DiceCELoss()])
def test_ignored_pixels_do_not_affect_the_loss(loss, batch):
    logits, target = batch
    ignored = target.clone()
    ignored[:, :4] = 255
    changed = logits.detach().clone()
    changed[:, :, :4] = torch.randn_like(changed[:, :, :4]) * 10
    assert torch.allclose(loss(logits, ignored), loss(changed, ignored), atol=1e-6)


def test_dice_is_zero_for_a_perfect_prediction_and_large_for_a_wrong_one(batch):
    _, target = batch
    perfect = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 100
    assert DiceLoss(include_background=True)(perfect, target) < 1e-4
    wrong = F.one_hot((target + 1) % 3, 3).permute(0, 3, 1, 2).float() * 100
    assert DiceLoss(include_background=True)(wrong, target) > 0.99


def test_dice_ce_is_the_weighted_sum(batch):
    logits, target = batch
    combined = DiceCELoss(ce_weight=0.3, dice_weight=2.0)(logits, target)
    expected = 0.3 * F.cross_entropy(logits, target) + 2.0 * DiceLoss()(logits, target)
    assert torch.allclose(combined, expected)


def test_losses_have_gradients(batch):
    logits, target = batch
    DiceCELoss()(logits, target).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def exact_border_map(target, objects_class, w0, sigma):
    """Eq. 2 of the U-Net paper by brute force: every object's distance map over the whole image."""
    import numpy as np
    from scipy import ndimage

    objects, count = ndimage.label(target == objects_class)
    distances = np.sort(
        np.stack([ndimage.distance_transform_edt(objects != k) for k in range(1, count + 1)]), 0
    )
    return 1 + w0 * np.exp(-((distances[0] + distances[1]) ** 2) / (2 * sigma**2))


def cells_and_membranes(seed=0, height=96, width=None):
    """An ISBI-like (height, width) mask (square unless width is given): cells (0) parted by
    membranes (1) of 1-4 px, with a void pixel block."""
    import numpy as np

    rng = np.random.default_rng(seed)
    width = width or height
    mask = np.zeros((height, width), np.int64)
    for _ in range(6):
        row, col = rng.integers(5, height - 5), rng.integers(5, width - 5)
        width_px = rng.integers(1, 5)
        mask[row : row + width_px, :] = 1
        mask[:, col : col + width_px] = 1
    mask[:3, :3] = 255
    return mask


def test_border_weight_map_is_the_papers_eq_2():
    import numpy as np

    from seglab.border_weights import border_weight_map

    for seed, (height, width) in enumerate([(96, 96), (72, 120), (121, 67)]):  # not square too
        mask = cells_and_membranes(seed, height, width)
        fast = border_weight_map(mask, objects_class=0, w0=10, sigma=5)
        exact = exact_border_map(mask, 0, 10, 5)
        # the box margin of 4 sigma leaves out terms below w0 * exp(-8)
        assert np.abs(fast - exact).max() <= 10 * np.exp(-8) + 1e-5
        assert fast.dtype == np.float32 and fast.shape == mask.shape
        # the pixels of the 1-4 px gaps weigh more than those of the cells, up to 1 + w0
        assert fast[mask == 1].mean() > fast[mask == 0].mean()
        assert fast.min() >= 1 and 8 < fast.max() <= 11


def test_border_weights_are_one_with_fewer_than_two_objects():
    import numpy as np

    from seglab.border_weights import border_weight_map, border_weights

    one_cell = np.zeros((20, 30), np.int64)
    one_cell[:, :3] = 1
    assert (border_weight_map(one_cell, 0) == 1).all()
    assert (border_weight_map(np.ones((20, 30), np.int64), 0) == 1).all()  # no object at all
    batch = torch.from_numpy(np.stack([one_cell, cells_and_membranes(height=30)[:20]]))
    weights = border_weights(batch, objects_class=0)
    assert weights.shape == (2, 20, 30) and (weights[0] == 1).all() and weights[1].max() > 2


def test_border_weighted_cross_entropy_weights_each_pixels_loss():
    import numpy as np

    from seglab.border_weights import border_weights

    mask = torch.from_numpy(np.stack([cells_and_membranes(1, 40), cells_and_membranes(2, 40)]))
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 40, 40, requires_grad=True)
    class_weights = [1.0, 3.0]
    loss = CrossEntropyLoss(class_weights, border_w0=10, border_sigma=5)(logits, mask)
    valid = mask != 255
    per_pixel = F.cross_entropy(logits, mask, reduction="none", ignore_index=255)
    w = border_weights(mask, 0, 10, 5) * torch.tensor(class_weights)[torch.where(valid, mask, 0)]
    expected = (per_pixel * w * valid).sum() / (w * valid).sum()
    assert torch.allclose(loss, expected)
    loss.backward()
    assert logits.grad is not None and logits.grad[:, :, :3, :3].abs().max() == 0  # void pixels
    # border_w0 = 0 is the plain cross-entropy; so is a map of ones (one cell, no border)
    assert torch.allclose(
        CrossEntropyLoss(border_w0=0)(logits, mask), F.cross_entropy(logits, mask, ignore_index=255)
    )
    one_cell = torch.zeros(1, 40, 40, dtype=torch.int64)
    one_cell[0, :, :5] = 1
    assert torch.allclose(
        CrossEntropyLoss(border_w0=10)(logits[:1], one_cell), F.cross_entropy(logits[:1], one_cell)
    )
    # DiceCE passes them on
    dice_ce = DiceCELoss(border_w0=10, border_sigma=5, class_weights=class_weights)
    assert torch.allclose(dice_ce(logits, mask), loss + DiceLoss()(logits, mask))


@pytest.mark.parametrize("bad", [{"border_w0": -1.0}, {"border_sigma": 0.0}])
def test_border_weight_settings_out_of_range_are_named(bad):
    with pytest.raises(ValueError, match="border_w0 >= 0 .* border_sigma > 0"):
        CrossEntropyLoss(**bad)


def test_border_objects_of_a_class_the_logits_lack_are_named():
    logits, mask = torch.zeros(1, 2, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="border_objects_class=2 is not one of the 2 classes"):
        CrossEntropyLoss(border_w0=10, border_objects_class=2)(logits, mask)


def test_a_run_trains_with_the_border_weighted_loss(tiny_cfg):
    from seglab.train import run_task

    metrics = run_task(
        tiny_cfg("loss.border_w0=10", "loss.border_objects_class=1", "trainer.max_epochs=1")
    )
    assert 0 <= metrics["val/dice"] <= 1
