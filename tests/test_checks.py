"""check_data: every split read once before training, all problems in one table and one error."""

import re
import time

import hydra
import numpy as np
import pytest
from PIL import Image

from seglab.data import (
    DataCheckError,
    FolderDataset,
    SegmentationDataModule,
    SyntheticShapes,
    check_data,
)
from seglab.train import run_task

from .conftest import ISBI_DIR, TINY_MODEL, TINY_TRAINER, compose_train
from .helpers.folders import folder_overrides, make_folder, save

THREE_CLASSES = ["background", "a", "b"]


def folder_datamodule(root, class_names=("background", "foreground"), in_channels=1, **options):
    """A DataModule over ``root/{train,val}`` (or one pool); ``options`` go to each dataset."""
    datasets = {
        split: FolderDataset(root, split, class_names=class_names, **options)
        for split in ("train", "val")
    }
    return SegmentationDataModule(
        datasets=datasets,
        class_names=class_names,
        in_channels=in_channels,
        mean=[0.5] * in_channels,
        std=[0.25] * in_channels,
    )


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def make_bad_folder(root):
    """Split folders; train holds one of each problem, val one truncated mask."""
    stems = [f"{i:02d}" for i in range(8)]
    train, val = make_folder(root / "train", stems), make_folder(root / "val", ["08", "09"])
    truncate(train / "images" / "01.png")
    save(train / "masks" / "02.png", np.zeros((8, 10), np.uint8))  # images are 16x20
    mask = np.array(Image.open(train / "masks" / "03.png"))
    mask[0, 0] = 7
    save(train / "masks" / "03.png", mask)
    save(train / "masks" / "04.png", np.array(Image.open(train / "masks" / "04.png")) * 255)
    save(train / "images" / "05.png", np.zeros((16, 20, 3), np.uint8))  # RGB among gray
    truncate(val / "masks" / "09.png")
    return root


def test_a_clean_folder_passes_and_the_table_lists_each_split(tmp_path, capsys):
    report = check_data(folder_datamodule(make_folder(tmp_path), val_fraction=0.3))
    assert report.ok and report.problems == []
    train, val = report.splits
    assert (train.name, train.samples, train.checked) == ("train", 7, 7)
    assert (val.name, val.samples) == ("val", 3)
    assert train.sizes == {(16, 20)} and train.channels == {1} and train.classes == {0, 1}
    printed = capsys.readouterr().out
    assert "Data check" in printed and "16x20" in printed and "foreground" in printed


def test_all_problems_come_in_one_error_with_their_files_and_fixes(tmp_path, capsys):
    dm = folder_datamodule(make_bad_folder(tmp_path), THREE_CLASSES)  # constructs: no early stop
    with pytest.raises(DataCheckError) as caught:
        check_data(dm)
    message = str(caught.value)
    assert "6 data problem(s)" in message
    expected = [
        r"train .*1 unreadable or truncated file\(s\): train/images/01\.png .*Fix: re-export",
        r"train .*1 image\(s\) whose mask has another size: train/images/02\.png "
        r"\(16x20 but train/masks/02\.png is 8x10\)",
        r"train .*1 image\(s\) whose channel count is not data\.in_channels=1: "
        r"train/images/05\.png \(3 channel\(s\)\).*set data\.in_channels",
        r"train .*mask\(s\) with values 7 .*masks/03\.png .*mask_mapping",
        r"train .*mask\(s\) holding only 0 and 255.*masks/04\.png.*"
        r"'data\.dataset\.mask_mapping=\{0:0,255:1\}' and give two data\.class_names",
        r"val .*1 unreadable or truncated file\(s\): val/masks/09\.png",
    ]
    for pattern in expected:
        assert len([line for line in message.splitlines() if re.search(pattern, line)]) == 1, (
            pattern
        )
    report = caught.value.report
    assert [len(s.problems) for s in report.splits] == [5, 1]
    assert report.splits[0].channels == {1, 3}
    assert "Data check" in capsys.readouterr().out  # the table is printed before the error


@pytest.mark.filterwarnings("ignore:mask .* holds only 0 and 255")
def test_a_binary_mask_for_two_classes_names_the_mapping_and_a_mapping_fixes_it(tmp_path):
    root = make_folder(tmp_path)
    for path in (root / "masks").iterdir():
        save(path, np.array(Image.open(path)) * 255)
    with pytest.raises(DataCheckError, match=r"mask_mapping=\{0:0,255:1\}'\n") as caught:
        check_data(folder_datamodule(root), show=False)
    assert "10 data problem" not in str(caught.value)  # one line per split, not per file
    assert len(caught.value.report.problems) == 2
    report = check_data(folder_datamodule(root, mask_mapping={0: 0, 255: 1}), show=False)
    assert report.splits[0].classes == {0, 1}


def test_max_samples_checks_an_evenly_spaced_subset():
    datasets = {"train": SyntheticShapes(100, image_size=32), "val": SyntheticShapes(5, seed=1)}
    dm = SegmentationDataModule(
        datasets=datasets, class_names=["background", "disc", "square", "triangle"], in_channels=1
    )
    report = check_data(dm, max_samples=10, show=False)
    assert [(s.samples, s.checked) for s in report.splits] == [(100, 10), (5, 5)]


def test_datasets_without_files_name_the_sample_index():
    class Broken(SyntheticShapes):
        def __getitem__(self, index):
            if index == 2:
                raise OSError("disk error")
            sample = super().__getitem__(index)
            return {**sample, "mask": sample["mask"] + 5 * (index == 3)}

    datasets = {"train": Broken(6, image_size=32), "val": SyntheticShapes(0, image_size=32)}
    dm = SegmentationDataModule(
        datasets=datasets, class_names=["background", "disc", "square", "triangle"], in_channels=1
    )
    with pytest.raises(DataCheckError) as caught:
        check_data(dm, show=False)
    message = str(caught.value)
    assert "sample 2 (OSError: disk error)" in message
    assert "sample 3 mask (values" in message
    assert "val: the split is empty" in message


def test_the_synthetic_default_passes(tmp_path):
    cfg = compose_train(tmp_path)
    dm = hydra.utils.instantiate(cfg.data)
    start = time.perf_counter()
    report = check_data(dm, max_samples=cfg.check_data_samples, show=False)
    seconds = time.perf_counter() - start
    assert report.ok and [s.checked for s in report.splits] == [200, 128, 128]
    assert report.splits[0].classes == {0, 1, 2, 3} and report.splits[0].sizes == {(64, 64)}
    print(f"synthetic default check: {seconds:.2f} s")  # informative; no wall-clock threshold


def test_train_stops_on_bad_data_before_fitting(tmp_path):
    root = make_folder(tmp_path / "data")
    truncate(root / "images" / "03.png")
    mask = np.array(Image.open(root / "masks" / "05.png"))
    mask[0, 0] = 7
    save(root / "masks" / "05.png", mask)
    overrides = [
        "data=folder",
        f"data.dataset.root={root}",
        "data.in_channels=1",
        "data.mean=[0.5]",
    ]
    overrides += ["data.std=[0.25]", "data.num_workers=0", "data.batch_size=2", "logger=csv"]
    cfg = compose_train(tmp_path / "run", [*overrides, *TINY_MODEL, *TINY_TRAINER])
    assert cfg.check_data is True
    with pytest.raises(DataCheckError, match=r"images/03\.png[\s\S]*masks/05\.png \(values 7\)"):
        run_task(cfg)
    assert not list((tmp_path / "run").rglob("*.ckpt"))
    assert not list((tmp_path / "run").rglob("metrics.csv"))


@pytest.mark.skipif(not ISBI_DIR.is_dir(), reason=f"ISBI 2012 data not found at {ISBI_DIR}")
def test_isbi2012_passes(tmp_path):
    cfg = compose_train(tmp_path, ["data=isbi2012", f"data.dataset.root='{ISBI_DIR}'"])
    report = check_data(hydra.utils.instantiate(cfg.data), show=False)
    assert [(s.name, s.samples) for s in report.splits] == [("train", 25), ("val", 5), ("test", 5)]
    assert all(s.sizes == {(512, 512)} and s.classes == {0, 1} for s in report.splits)


def test_pairing_problems_and_truncated_files_come_in_one_table(tmp_path):
    """Not a constructor error wrapped by Hydra: one data-check error lists both."""
    root = make_folder(tmp_path / "data", [f"{i:02d}" for i in range(12)])
    truncate(root / "images" / "01.png")
    save(root / "images" / "12.png", np.zeros((16, 20), np.uint8))  # no mask
    cfg = compose_train(tmp_path / "run", folder_overrides(root))
    with pytest.warns(UserWarning, match="1 image.* without a mask"):
        datamodule = hydra.utils.instantiate(cfg.data)
    with pytest.raises(DataCheckError) as caught:
        check_data(datamodule, max_samples=None, show=False)
    message = str(caught.value)
    assert "2 data problem(s)" in message
    assert re.search(r"1 image\(s\) without a mask: images/12\.png", message)
    assert re.search(r"1 unreadable or truncated file\(s\): images/01\.png", message)


def unquoted_overrides(message: str) -> list[str]:
    """``key=value`` suggestions outside single quotes that bash would split or expand."""
    outside = re.sub(r"'[^']*'", "", message)
    return re.findall(r"[\w.+/-]+=\S*[\[\]{}*?()]\S*", outside)


def test_every_suggested_override_pastes_into_a_shell(tmp_path):
    """Fix texts quote overrides with {} or [] (``'data.dataset.mask_mapping={0:0,255:1}'``):
    unquoted, bash expands ``{0:0,255:1}`` into two arguments."""
    import shlex

    from seglab.data import OxfordPet
    from seglab.inspection import inspect_data

    from .helpers.standard import make_oxford_pet

    messages = []
    with pytest.raises(DataCheckError) as caught:
        check_data(folder_datamodule(make_bad_folder(tmp_path / "bad"), THREE_CLASSES), show=False)
    messages.append(str(caught.value))
    with pytest.raises(ValueError) as caught:
        OxfordPet(make_oxford_pet(tmp_path / "pets", 2, 1), border="class", class_names=["a", "b"])
    messages.append(str(caught.value))
    root = make_folder(tmp_path / "colour", ["a"])
    save(
        root / "masks" / "a.png",
        np.dstack([np.ones((16, 20), np.uint8)] + [np.zeros((16, 20), np.uint8)] * 2),
    )
    with pytest.raises(ValueError) as caught:
        FolderDataset(root, val_fraction=0)[0]
    messages.append(str(caught.value))
    summary = inspect_data(
        folder_datamodule(make_folder(tmp_path / "ok")), tmp_path / "out", 0, show=False
    )
    messages.append(" ".join(summary["overrides"]))
    for message in messages:
        assert not unquoted_overrides(message), message
    quoted = re.findall(r"'([\w.]+=[^']*)'", "\n".join(messages))
    assert "data.dataset.mask_mapping={0:0,255:1}" in quoted
    assert "data.dataset.mask_mapping={value: class}" in quoted
    assert all(shlex.split(f"'{text}'") == [text] for text in quoted)


def test_the_size_range_shows_sizes_that_images_have(tmp_path):
    """48x64, 64x48 and 70x60 images: "48x64 .. 70x60", not "48x48 .. 70x64" (no image's)."""
    from seglab.inspection import inspect_data

    root = tmp_path / "data"
    for stem, size in {"a": (48, 64), "b": (64, 48), "c": (70, 60)}.items():
        save(root / "images" / f"{stem}.png", np.zeros(size, np.uint8))
        save(root / "masks" / f"{stem}.png", np.zeros(size, np.uint8))
    datamodule = folder_datamodule(root, val_fraction=0.4)
    train = check_data(datamodule, show=False).splits[0]
    assert train.sizes == {(48, 64), (64, 48)} and train.size_text() == "48x64 .. 64x48"
    summary = inspect_data(datamodule, tmp_path / "out", 0, show=False)
    assert (summary["splits"]["train"]["size_min"], summary["splits"]["train"]["size_max"]) == (
        [48, 64],
        [64, 48],
    )
    pool = FolderDataset(root, "train", class_names=["background", "foreground"], val_fraction=0)
    everything = folder_datamodule(root, val_fraction=0.4)
    everything.datasets["train"] = pool
    assert check_data(everything, show=False).splits[0].size_text() == "48x64 .. 70x60"
