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
