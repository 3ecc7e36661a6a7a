import torch

from seglab.metrics import segmentation_metrics


def test_iou_and_dice_accumulate_globally_and_skip_ignored_pixels():
    metrics = segmentation_metrics(num_classes=2, ignore_index=255)
    # image 1: 4 pixels, class 1 predicted on 2, true on 3 (TP 2, FN 1); one ignored pixel
    metrics.update(torch.tensor([[[1, 1, 0, 0, 1]]]), torch.tensor([[[1, 1, 1, 0, 255]]]))
    # image 2: class 1 predicted on 1 pixel where it is background (FP 1)
    metrics.update(torch.tensor([[[1, 0]]]), torch.tensor([[[0, 0]]]))
    values = metrics.compute()
    # class 1: TP 2, FP 1, FN 1 -> IoU 2/4, Dice 4/6; class 0: TP 2, FP 1, FN 1 -> same
    assert torch.allclose(values["iou_per_class"], torch.tensor([0.5, 0.5]))
    assert torch.allclose(values["dice_per_class"], torch.tensor([2 / 3, 2 / 3]))
    assert torch.isclose(values["iou"], torch.tensor(0.5))
    assert torch.isclose(values["dice"], torch.tensor(2 / 3))
    assert torch.isclose(values["accuracy"], torch.tensor(4 / 6))


def test_classes_absent_from_target_and_prediction_are_left_out_of_the_mean():
    metrics = segmentation_metrics(num_classes=3, ignore_index=255)
    metrics.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0, 1]]]))
    values = metrics.compute()
    assert torch.isclose(values["iou"], torch.tensor(1.0))
    assert torch.isclose(values["dice"], torch.tensor(1.0))
