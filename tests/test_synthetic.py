import numpy as np
import pytest

from seglab.data import SyntheticShapes


def test_samples_are_deterministic_per_index_and_seed():
    a = SyntheticShapes(num_samples=4, image_size=48, seed=3)
    b = SyntheticShapes(num_samples=4, image_size=48, seed=3)
    for i in range(4):
        assert np.array_equal(a[i]["image"], b[i]["image"])
        assert np.array_equal(a[i]["mask"], b[i]["mask"])
    c = SyntheticShapes(num_samples=4, image_size=48, seed=4)
    assert not np.array_equal(a[0]["image"], c[0]["image"])
    assert not np.array_equal(a[0]["image"], a[1]["image"])


def test_shapes_types_and_mask_values():
    ds = SyntheticShapes(num_samples=20, image_size=(40, 56), channels=3)
    values = set()
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (40, 56, 3) and sample["image"].dtype == np.uint8
        assert sample["mask"].shape == (40, 56) and sample["mask"].dtype == np.uint8
        values |= set(np.unique(sample["mask"]).tolist())
    assert values == {0, 1, 2, 3}


def test_number_of_classes_follows_class_names():
    ds = SyntheticShapes(num_samples=30, class_names=["bg", "ring", "cross"], image_size=32)
    values = set().union(*(np.unique(ds[i]["mask"]).tolist() for i in range(len(ds))))
    assert values == {0, 1, 2}


def test_classes_are_not_separable_by_intensity():
    """A per-pixel intensity classifier (the Bayes rule on a 32-bin histogram) cannot tell the shape
    classes apart much better than always guessing the most frequent class."""
    ds = SyntheticShapes(num_samples=200, image_size=48, seed=0)
    images = np.stack([ds[i]["image"][..., 0] for i in range(len(ds))]).ravel()
    masks = np.stack([ds[i]["mask"] for i in range(len(ds))]).ravel()
    foreground = masks > 0
    bins = images[foreground] // 8
    labels = masks[foreground]
    counts = np.zeros((32, 4), dtype=np.int64)
    np.add.at(counts, (bins, labels), 1)
    bayes_accuracy = counts.max(axis=1).sum() / counts.sum()
    majority = np.bincount(labels).max() / labels.size
    assert bayes_accuracy < majority + 0.1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"class_names": ["background", "hexagon"]}, "hexagon"),
        ({"class_names": ["background"]}, "one or more"),
        ({"channels": 2}, "channels"),
        ({"image_size": 8}, "image_size"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticShapes(num_samples=1, **kwargs)


def test_index_out_of_range():
    with pytest.raises(IndexError):
        SyntheticShapes(num_samples=2)[2]
