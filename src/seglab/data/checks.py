"""Data checks before training: every split read once, every problem reported at once.

``check_data(datamodule)`` goes over the raw datasets of a DataModule (no augmentation), prints
one table (split, samples, image sizes, channels, classes present, problems) on rank zero and
raises one :class:`DataCheckError` listing every problem with its file and fix: unreadable or
truncated files, image/mask size mismatches, channel counts other than ``in_channels``, mask
values outside ``0..num_classes-1`` and ``ignore_index``, 0/255 masks without a mapping, empty
splits. FolderDataset files are each decoded once; other datasets are indexed (problems name
the index). ``max_samples`` bounds the samples checked per split (evenly spaced; None = all).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rich
import rich.table
from lightning.pytorch.utilities import rank_zero_only

from seglab.data.folder import FolderDataset
from seglab.data.io import invalid_mask_values, read_image, read_mask, shorten

SPLITS = ("train", "val", "test")
SHOWN_FILES = 5


class DataCheckError(ValueError):
    """The data has problems; the message lists each one with its files and its fix."""

    def __init__(self, report: DataReport):
        self.report = report
        lines = [f"{len(report.problems)} data problem(s) found before training:"]
        lines += [f"  - {problem}" for problem in report.problems]
        lines.append("Fix them, or set check_data=false to skip this check.")
        super().__init__("\n".join(lines))


@dataclass
class SplitReport:
    """What one split holds (over the checked samples) and what is wrong with it."""

    name: str
    samples: int
    checked: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)  # (height, width)
    channels: set[int] = field(default_factory=set)
    classes: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def size_text(self) -> str:
        if not self.sizes:
            return "-"
        heights, widths = [h for h, _ in self.sizes], [w for _, w in self.sizes]
        low, high = f"{min(heights)}x{min(widths)}", f"{max(heights)}x{max(widths)}"
        return low if low == high and len(self.sizes) == 1 else f"{low} .. {high}"


@dataclass
class DataReport:
    """The result of :func:`check_data`: one :class:`SplitReport` per split."""

    splits: list[SplitReport]
    class_names: list[str]
    in_channels: int

    @property
    def problems(self) -> list[str]:
        return [problem for split in self.splits for problem in split.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def table(self) -> rich.table.Table:
        table = rich.table.Table(title="Data check", title_justify="left")
        for column in ("split", "samples", "image sizes (HxW)", "channels", "classes present"):
            table.add_column(column)
        table.add_column("problems")
        for split in self.splits:
            samples = str(split.samples)
            if split.checked != split.samples:
                samples += f" ({split.checked} checked)"
            classes = [self.class_names[c] for c in sorted(split.classes)]
            channels = ", ".join(str(c) for c in sorted(split.channels)) or "-"
            if split.channels and split.channels != {self.in_channels}:
                channels += f" (in_channels={self.in_channels})"
            problems = (
                f"[red]{len(split.problems)}[/red]" if split.problems else "[green]ok[/green]"
            )
            table.add_row(
                split.name, samples, split.size_text(), channels, shorten(classes, 6), problems
            )
        return table


def check_data(datamodule, max_samples: int | None = None, show: bool = True) -> DataReport:
    """Check every split of ``datamodule`` once; raise :class:`DataCheckError` on problems.

    Args:
        datamodule: a SegmentationDataModule (``datasets``, ``class_names``, ``in_channels``,
            ``ignore_index``).
        max_samples: check at most this many samples per split, evenly spaced (None = all).
        show: print the summary table (rank zero only).
    """
    splits = [
        check_split(name, datamodule.datasets[name], datamodule, max_samples)
        for name in SPLITS
        if datamodule.datasets.get(name) is not None
    ]
    report = DataReport(splits, list(datamodule.class_names), datamodule.in_channels)
    if show:
        print_report(report)
    if not report.ok:
        raise DataCheckError(report)
    return report


@rank_zero_only
def print_report(report: DataReport) -> None:
    rich.print(report.table())


def spaced_indices(length: int, max_samples: int | None) -> list[int]:
    """All indices, or at most ``max_samples`` evenly spaced ones."""
    if length == 0:
        return []
    count = length if max_samples is None else max(1, min(max_samples, length))
    return np.unique(np.linspace(0, length - 1, count).round().astype(int)).tolist()


def check_split(name: str, dataset, datamodule, max_samples: int | None) -> SplitReport:
    split = SplitReport(name, len(dataset))
    if split.samples == 0:
        split.problems.append(f"{name}: the split is empty. Give it samples or fix its config")
        return split
    indices = spaced_indices(split.samples, max_samples)
    split.checked = len(indices)
    load = folder_loader(dataset) if isinstance(dataset, FolderDataset) else index_loader(dataset)
    # problem kind -> [(file or sample name, detail)]
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    bad_values: set[int] = set()
    num_classes, ignore_index = datamodule.num_classes, datamodule.ignore_index
    for index in indices:
        image, mask, image_name, mask_name = load(index, found)
        if image is not None:
            split.sizes.add(tuple(image.shape[:2]))
            channels = 1 if image.ndim == 2 else image.shape[-1]
            split.channels.add(channels)
            if channels != datamodule.in_channels:
                found["channels"].append((image_name, f"{channels} channel(s)"))
        if mask is None:
            continue
        if image is not None and image.shape[:2] != mask.shape[:2]:
            found["size"].append(
                (image_name, f"{size_text(image.shape)} but {mask_name} is {size_text(mask.shape)}")
            )
        unique = np.unique(mask)
        values = unique.tolist()
        split.classes.update(v for v in values if 0 <= v < num_classes)
        bad = invalid_mask_values(unique, num_classes, ignore_index)
        binary = set(values) == {0, 255} and not has_mapping(dataset)
        if binary and (bad or ignore_index == 255):
            found["binary"].append((mask_name, "values 0 and 255"))
        elif bad:
            bad_values.update(bad)
            found["values"].append((mask_name, f"values {shorten(bad, 5)}"))
    split.problems = describe(name, found, bad_values, datamodule, dataset)
    return split


Loader = Callable[[int, dict], tuple]


def folder_loader(dataset: FolderDataset) -> Loader:
    """Reads a sample's image and mask files separately, so each file's problem is found."""

    def load(index: int, found: dict) -> tuple:
        _, image_path, mask_path = dataset.samples[index]
        image_name, mask_name = (
            relative(image_path, dataset.root),
            relative(mask_path, dataset.root),
        )
        image = mask = None
        try:
            image = read_image(image_path, dataset.channels, dataset.max_value_16bit)
        except (OSError, ValueError) as error:
            record(found, image_name, error)
        try:
            mask = read_mask(mask_path, dataset.mapping, dataset.palette)
        except (OSError, ValueError) as error:
            record(found, mask_name, error)
        return image, mask, image_name, mask_name

    return load


def index_loader(dataset) -> Loader:
    """Any dataset of ``{"image", "mask"}`` samples; problems name the sample index."""

    def load(index: int, found: dict) -> tuple:
        name = f"sample {index}"
        try:
            sample = dataset[index]
        except Exception as error:  # noqa: BLE001 - reported with the sample's index
            found["unreadable"].append((name, f"{type(error).__name__}: {error}"))
            return None, None, name, name
        return np.asarray(sample["image"]), np.asarray(sample["mask"]), name, f"{name} mask"

    return load


def describe(name, found, bad_values, datamodule, dataset) -> list[str]:
    """One line per kind of problem in split ``name``: how many, which files, the fix."""
    where = f"{name} ({dataset.root})" if isinstance(dataset, FolderDataset) else name
    classes = datamodule.class_names
    fixes = {
        "unreadable": (
            "unreadable or truncated file(s)",
            "re-export or remove them",
        ),
        "rejected": (
            "file(s) the reader rejects",
            "see each file's message",
        ),
        "size": (
            "image(s) whose mask has another size",
            "give each mask the size of its image",
        ),
        "channels": (
            f"image(s) whose channel count is not data.in_channels={datamodule.in_channels}",
            "set data.in_channels (and data.mean / data.std) to the images' channels, or convert "
            "the images (FolderDataset: channels=1 or 3 converts gray <-> RGB)",
        ),
        "values": (
            f"mask(s) with values {shorten(sorted(bad_values))} that are neither class indices "
            f"0..{len(classes) - 1} {classes} nor ignore_index {datamodule.ignore_index}",
            "set data.class_names (or data.ignore_index) to cover them, or map the values with "
            "data.datasets.train.mask_mapping={value: class} (or palette)",
        ),
        "binary": (
            "mask(s) holding only 0 and 255 (0/255 binary masks)",
            "map them with data.datasets.train.mask_mapping={0:0,255:1}"
            + (
                f" and give two data.class_names (now {len(classes)}: {classes})"
                if len(classes) > 2
                else ""
            ),
        ),
    }
    problems = []
    for kind, (what, fix) in fixes.items():
        items = found.get(kind)
        if items:
            shown = [f"{file} ({detail})" for file, detail in items[:SHOWN_FILES]]
            more = f" ... ({len(items) - SHOWN_FILES} more)" if len(items) > SHOWN_FILES else ""
            problems.append(f"{where}: {len(items)} {what}: {', '.join(shown)}{more}. Fix: {fix}")
    return problems


def has_mapping(dataset) -> bool:
    return any(getattr(dataset, name, None) is not None for name in ("mapping", "palette"))


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def record(found: dict, name: str, error: Exception) -> None:
    """A file that cannot be decoded (``io.open_image`` chains the cause), or one the reader
    rejects (an unmapped mask value or colour: the message names the file and the fix)."""
    if error.__cause__ is not None:
        found["unreadable"].append((name, f"{type(error.__cause__).__name__}: {error.__cause__}"))
    else:
        found["rejected"].append((name, str(error)))


def size_text(shape) -> str:
    return f"{shape[0]}x{shape[1]}"
