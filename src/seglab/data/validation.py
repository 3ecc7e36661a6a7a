"""The one set of data rules: what a raw sample must satisfy, and the fix for each problem.

``problems(image, mask, source, rules)`` checks one raw ``{"image", "mask"}`` sample (before
augmentation) and returns a :class:`Problem` per broken rule: mask values that are neither class
indices nor ``ignore_index`` (with the 0/255 hint), image and mask of different sizes, a channel
count other than ``in_channels``, NaN/inf in float images. Three users apply the same rules:
``check_data`` (the table before training), the loader path (``TransformedDataset``: the first
problem raises, naming the file) and ``seglab-inspect``'s single pass.

Datasets only read; they name the files behind an index with ``source(index)`` (a
:class:`Source`), so every problem names its file. Datasets without ``source`` are named by index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def shorten(items: Iterable, limit: int = 10) -> str:
    """``a, b, c ... (n more)``: lists in error messages stay readable."""
    items = [str(item) for item in items]
    more = f" ... ({len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@dataclass(frozen=True)
class Source:
    """The files behind one sample: names to show (``image``, ``mask``) and, when the sample
    comes from files, their paths (``files``: image first)."""

    image: str
    mask: str
    files: tuple[Path, ...] = ()

    @classmethod
    def index(cls, index: int) -> Source:
        """A sample without files (generated data): ``sample 12`` and ``sample 12 mask``."""
        return cls(f"sample {index}", f"sample {index} mask")

    def name(self, path: Path) -> str:
        """The shown name of ``path`` (one of ``files``), else the path itself."""
        for file, shown in zip(self.files, (self.image, self.mask), strict=False):
            if Path(path) == Path(file):
                return shown
        return str(path)


def source_of(dataset, index: int) -> Source:
    """``dataset.source(index)`` where the dataset names its files, else the sample index."""
    source = getattr(dataset, "source", None)
    return source(index) if callable(source) else Source.index(index)


@dataclass(frozen=True)
class Rules:
    """What every sample must satisfy (the DataModule's settings)."""

    num_classes: int
    ignore_index: int = 255
    in_channels: int | None = None
    # masks go through a mask_mapping / palette: 0/255 in the result is then meant
    has_mapping: bool = False

    @property
    def classes_text(self) -> str:
        return f"0..{self.num_classes - 1}"


@dataclass(frozen=True)
class Problem:
    """One broken rule of one sample: ``kind`` (a key of :data:`FIXES`), the file it is about,
    a short detail for tables, and the offending mask values (kinds ``values``/``binary``).
    ``warning``: allowed but probably unintended (0/255 masks whose 255 is ignore_index)."""

    kind: str
    file: str
    detail: str
    values: tuple[int, ...] = ()
    warning: bool = False

    def sentence(self, rules: Rules, where: str = "") -> str:
        """The problem as one message with its fix (what the loader raises)."""
        prefix = f"{where} {self.file}".strip()
        if self.kind in ("values", "binary") and self.values:
            text = (
                f"{prefix}: mask values {list(self.values)} are not class indices "
                f"{rules.classes_text} nor ignore_index {rules.ignore_index}"
            )
            if self.kind == "binary":
                text += ". It looks like a 0/255 binary mask"
        else:
            text = f"{prefix}: {self.detail}"
        return f"{text}. Fix: {fix(self.kind, rules)}"


def invalid_mask_values(values: np.ndarray, num_classes: int, ignore_index: int) -> list[int]:
    """The values among ``values`` (a mask, or its unique values) that are neither class indices
    ``0..num_classes-1`` nor ``ignore_index``: the one rule every mask check applies."""
    values = np.unique(values)
    return values[((values < 0) | (values >= num_classes)) & (values != ignore_index)].tolist()


def channel_count(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else int(image.shape[-1])


def size_text(shape) -> str:
    return f"{shape[0]}x{shape[1]}"


def size_range(sizes) -> tuple[tuple[int, int], tuple[int, int]]:
    """The smallest and the largest of the (height, width) ``sizes`` (by pixels, then height):
    whole sizes that images have, not a minimum height beside another image's minimum width."""
    ordered = sorted(sizes, key=lambda size: (size[0] * size[1], size[0], size[1]))
    return tuple(ordered[0]), tuple(ordered[-1])


def problems(
    image: np.ndarray, mask: np.ndarray, source: Source, rules: Rules, unique=None
) -> list[Problem]:
    """Every rule ``image`` and ``mask`` break (``unique``: the mask's unique values, if known)."""
    found = []
    channels = channel_count(image)
    if rules.in_channels is not None and channels != rules.in_channels:
        found.append(Problem("channels", source.image, f"{channels} channel(s)"))
    if image.shape[:2] != mask.shape[:2]:
        detail = f"{size_text(image.shape)} but {source.mask} is {size_text(mask.shape)}"
        found.append(Problem("size", source.image, detail))
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        found.append(Problem("nonfinite", source.image, "NaN or inf values"))
    unique = np.unique(mask) if unique is None else unique
    bad = tuple(invalid_mask_values(unique, rules.num_classes, rules.ignore_index))
    if set(unique.tolist()) == {0, 255} and not rules.has_mapping:
        if bad or rules.ignore_index == 255:
            found.append(Problem("binary", source.mask, "values 0 and 255", bad, not bad))
    elif bad:
        found.append(Problem("values", source.mask, f"values {shorten(bad, 5)}", bad))
    return found


# kind -> (what, for a table line: "<n> <what>"), fix
FIXES = {
    "unreadable": ("unreadable or truncated file(s)", "re-export or remove them"),
    "rejected": ("file(s) the reader rejects", "see each file's message"),
    "lonely_image": ("image(s) without a mask", None),
    "lonely_mask": ("mask(s) without an image", None),
    "size": ("image(s) whose mask has another size", "give each mask the size of its image"),
    "channels": (
        "image(s) whose channel count is not data.in_channels={in_channels}",
        "set data.in_channels (and data.mean / data.std) to the channel count of the images, or "
        "convert the images to that many channels",
    ),
    "nonfinite": ("image(s) with NaN or inf pixels", "re-export the images with finite values"),
    "values": (
        "mask(s) with values {values} that are neither class indices {classes} {class_names} nor "
        "ignore_index {ignore_index}",
        "set data.class_names (or data.ignore_index) to cover them, or map the values with "
        "'data.dataset.mask_mapping={value: class}' (or palette)",
    ),
    "binary": ("mask(s) holding only 0 and 255 (0/255 binary masks)", None),
}


def fix(kind: str, rules: Rules, class_names=None) -> str:
    """How to fix problems of ``kind`` (texts that paste into a shell as they are)."""
    if kind in ("lonely_image", "lonely_mask"):
        return (
            "masks pair with images by file stem plus data.dataset.mask_suffix (a.jpg <-> "
            "a<suffix>.png): add the missing files, move the strays away or fix mask_suffix"
        )
    if kind == "binary":
        text = "map them with 'data.dataset.mask_mapping={0:0,255:1}'"
        if rules.num_classes > 2:
            names = f": {list(class_names)}" if class_names is not None else ""
            text += f" and give two data.class_names (now {rules.num_classes}{names})"
        return text
    return FIXES[kind][1]


def what(kind: str, rules: Rules, values: Iterable[int] = (), class_names=None) -> str:
    """The table text of problems of ``kind``."""
    return FIXES[kind][0].format(
        in_channels=rules.in_channels,
        values=shorten(sorted(values)),
        classes=rules.classes_text,
        class_names=list(class_names) if class_names is not None else "",
        ignore_index=rules.ignore_index,
    )
