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


def test_the_update_counts_with_one_bincount_also_in_deterministic_mode(monkeypatch):
    """torchmetrics' deterministic fallback (a pixels x classes^2 tensor) is never used, the
    counts stay the same, and a mask value that is no class (nor ignore_index) is named."""
    import importlib

    import pytest

    # the module (the package's attribute of that name is the function)
    confusion_matrix = importlib.import_module(
        "torchmetrics.functional.classification.confusion_matrix"
    )

    def no_mesh(*args, **kwargs):
        raise AssertionError("torchmetrics' _bincount was used")

    monkeypatch.setattr(confusion_matrix, "_bincount", no_mesh)
    predicted = torch.tensor([[[0, 1, 2, 2, 1]]])
    target = torch.tensor([[[0, 1, 1, 255, 2]]])
    expected = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 1, 0]])
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        metrics = segmentation_metrics(num_classes=3, ignore_index=255)
        metrics.update(predicted, target)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    assert torch.equal(metrics.compute()["confusion"], expected)
    with pytest.raises(ValueError, match=r"class index >= 3 .* ignore_index=255: fix the masks"):
        metrics.update(predicted, torch.tensor([[[0, 1, 3, 0, 0]]]))
