"""Data checks before training: every split read once, every problem reported at once.

``check_data(datamodule)`` goes over the raw datasets of a DataModule (no augmentation), prints
one table (split, samples, image sizes, channels, classes present, problems) on rank zero and
raises one :class:`DataCheckError` listing every problem with its file and fix: unreadable or
truncated files, and every rule of ``seglab.data.validation`` (mask values, sizes, channels,
0/255 masks without a mapping), plus empty splits. Each sample is read once; problems name the
files ``dataset.source(index)`` gives (or the index). ``max_samples`` bounds the samples checked
per split (evenly spaced; None = all). ``visit(split, image, mask)`` sees every sample read, so
``seglab-inspect`` gathers its statistics in the same pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import rich
import rich.table
from hydra.errors import CompactHydraException
from lightning.pytorch.utilities import rank_zero_only

from seglab.data.io import FileError, UnreadableFile
from seglab.data.validation import (
    FIXES,
    Rules,
    Source,
    channel_count,
    fix,
    problems,
    shorten,
    size_range,
    size_text,
    source_of,
    what,
)
from seglab.utils.sampling import spaced_indices

SPLITS = ("train", "val", "test")
SHOWN_FILES = 5


class DataCheckError(CompactHydraException, ValueError):
    """The data has problems; the message lists each one with its files and its fix. A Hydra
    ``CompactHydraException``: a task prints the message alone, without a traceback."""

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
        low, high = (size_text(size) for size in size_range(self.sizes))
        return low if len(self.sizes) == 1 else f"{low} .. {high}"


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


def check_data(
    datamodule,
    max_samples: int | None = None,
    show: bool = True,
    visit: Visit | None = None,
    strict: bool = True,
) -> DataReport:
    """Check every split of ``datamodule`` once; raise :class:`DataCheckError` on problems.

    Args:
        datamodule: a SegmentationDataModule (``datasets``, ``class_names``, ``rules(dataset)``).
        max_samples: check at most this many samples per split, evenly spaced (None = all).
        show: print the summary table (rank zero only).
        visit: called as ``visit(split, image, mask)`` with every sample read.
        strict: raise on problems (False: only report them).
    """
    reported: set = set()  # stray files of a pool that every split shares, listed once
    splits = [
        check_split(name, datamodule.datasets[name], datamodule, max_samples, visit, reported)
        for name in SPLITS
        if datamodule.datasets.get(name) is not None
    ]
    report = DataReport(splits, list(datamodule.class_names), datamodule.in_channels)
    if show:
        print_report(report)
    if strict and not report.ok:
        raise DataCheckError(report)
    return report


Visit = Callable[[str, np.ndarray, np.ndarray], None]


@rank_zero_only
def print_report(report: DataReport) -> None:
    rich.print(report.table())


def check_split(
    name: str, dataset, datamodule, max_samples, visit=None, reported: set | None = None
) -> SplitReport:
    split = SplitReport(name, len(dataset))
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)  # kind -> [(file, detail)]
    add_strays(dataset, found, set() if reported is None else reported)
    if split.samples == 0:
        split.problems.append(f"{name}: the split is empty. Give it samples or fix its config")
        return split
    indices = spaced_indices(split.samples, max_samples)
    split.checked = len(indices)
    rules = datamodule.rules(dataset)
    bad_values: set[int] = set()
    for index in indices:
        source = source_of(dataset, index)
        sample = read_sample(dataset, index, source, found)
        if sample is None:
            continue
        image, mask = sample
        unique = np.unique(mask)
        split.sizes.add(tuple(image.shape[:2]))
        split.channels.add(channel_count(image))
        split.classes.update(v for v in unique.tolist() if 0 <= v < rules.num_classes)
        for problem in problems(image, mask, source, rules, unique):
            found[problem.kind].append((problem.file, problem.detail))
            if problem.kind == "values":
                bad_values.update(problem.values)
        if visit is not None:
            visit(name, image, mask)
    where = f"{name} ({dataset.root})" if getattr(dataset, "root", None) else name
    split.problems = problem_lines(where, found, bad_values, rules, datamodule.class_names)
    return split


def add_strays(dataset, found: dict, reported: set) -> None:
    """Files that pair with no other (``dataset.unpaired()``), each listed once over the splits."""
    unpaired = getattr(dataset, "unpaired", None)
    for kind, file, detail in unpaired() if callable(unpaired) else ():
        key = (str(getattr(dataset, "root", "")), file)
        if key not in reported:
            reported.add(key)
            found[kind].append((file, detail))


def read_sample(dataset, index: int, source: Source, found: dict):
    """``(image, mask)`` of sample ``index``, or None with the read error put into ``found``."""
    try:
        sample = dataset[index]
    except UnreadableFile as error:
        cause = error.__cause__ or error
        found["unreadable"].append((source.name(error.path), f"{type(cause).__name__}: {cause}"))
    except FileError as error:  # an unmapped mask value or colour: its message names the fix
        found["rejected"].append((source.name(error.path), str(error)))
    except Exception as error:  # noqa: BLE001 - reported with the sample's files or index
        found["unreadable"].append((source.image, f"{type(error).__name__}: {error}"))
    else:
        return np.asarray(sample["image"]), np.asarray(sample["mask"])
    return None


def problem_lines(where: str, found: dict, bad_values, rules: Rules, class_names) -> list[str]:
    """One line per kind of problem in split ``where``: how many, which files, the fix."""
    lines = []
    for kind in FIXES:
        items = found.get(kind)
        if not items:
            continue
        text = what(kind, rules, bad_values, class_names)
        shown = [f"{file} ({detail})" for file, detail in items[:SHOWN_FILES]]
        more = f" ... ({len(items) - SHOWN_FILES} more)" if len(items) > SHOWN_FILES else ""
        lines.append(
            f"{where}: {len(items)} {text}: {', '.join(shown)}{more}. "
            f"Fix: {fix(kind, rules, class_names)}"
        )
    return lines
