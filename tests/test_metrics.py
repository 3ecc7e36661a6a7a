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


def test_values_equal_torchmetrics_own_classes():
    """One confusion matrix gives what torchmetrics' IoU, F1 and accuracy classes compute."""
    from torchmetrics import MetricCollection
    from torchmetrics.classification import (
        MulticlassAccuracy,
        MulticlassF1Score,
        MulticlassJaccardIndex,
    )

    common = {"num_classes": 4, "ignore_index": 255}
    reference = MetricCollection(
        {
            "iou": MulticlassJaccardIndex(average="macro", **common),
            "dice": MulticlassF1Score(average="macro", **common),
            "accuracy": MulticlassAccuracy(average="micro", **common),
            "iou_per_class": MulticlassJaccardIndex(average="none", **common),
            "dice_per_class": MulticlassF1Score(average="none", **common),
        }
    )
    metrics = segmentation_metrics(**common)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):  # class 3 is never true nor predicted: left out of both means
        predicted = torch.randint(0, 3, (2, 16, 16), generator=generator)
        target = torch.randint(0, 3, (2, 16, 16), generator=generator)
        target[:, 0] = 255
        metrics.update(predicted, target)
        reference.update(predicted, target)
    values, expected = metrics.compute(), reference.compute()
    for name, value in expected.items():
        assert torch.allclose(values[name], value), name
