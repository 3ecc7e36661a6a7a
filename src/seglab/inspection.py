"""Look at a dataset before training: ``seglab-inspect data=... [overrides]``.

Composes ``conf/inspect.yaml`` (``train.yaml`` with ``task_name: inspect``), so ``data=...`` and
every ``data.*`` override work as for training. Writes into ``logs/inspect/runs/<date>_<time>/``:

- ``samples.png``: train samples with the train augmentation applied, each as the image and the
  image with its mask overlaid (one colour per class, legend with the class names);
- ``summary.json``: samples, image sizes and class pixel frequencies per split, the suggested
  class weights (median frequency balancing) and the train images' per-channel mean and std.

It prints one table and the overrides to paste (``data.mean``, ``data.std``,
``loss.class_weights``). In Python: ``inspect_data(datamodule, output_dir)``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import rich
import rich.table
from omegaconf import DictConfig

from seglab.data.checks import check_data
from seglab.data.validation import shorten, size_range
from seglab.utils.overlay import (
    class_colours,
    display_image,
    legend_handles,
    new_figure,
    normalisation,
    overlay,
)
from seglab.utils.sampling import spaced_indices

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SAMPLES_PER_ROW = 4
MAX_CLASS_COLUMNS = 8


def unit_scale(image: np.ndarray) -> np.ndarray:
    """An image as float64 on the 0..1 scale the DataModule normalises on (``ToFloat``)."""
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float64) / 65535.0
    return image.astype(np.float64)


class SplitStats:
    """Sizes, class pixel counts and per-channel sums of the raw samples of one split, gathered
    one sample at a time (``add``), in ``check_data``'s single pass."""

    def __init__(self, samples: int, num_classes: int, ignore_index: int):
        self.samples, self.num_classes, self.ignore_index = samples, num_classes, ignore_index
        self.class_pixels = np.zeros(num_classes, dtype=np.int64)
        self.ignored = self.other = 0
        self.sizes: list[tuple[int, int]] = []
        self.channel_sum = self.channel_sq = None
        self.channel_count = 0

    def add(self, image: np.ndarray, mask: np.ndarray) -> None:
        self.sizes.append((int(image.shape[0]), int(image.shape[1])))
        values = mask.astype(np.int64).ravel()
        ignored = int((values == self.ignore_index).sum())
        valid = values[(values >= 0) & (values < self.num_classes)]
        self.class_pixels += np.bincount(valid, minlength=self.num_classes)[: self.num_classes]
        self.ignored += ignored
        self.other += int(values.size - valid.size) - ignored
        pixels = unit_scale(image).reshape(-1, 1 if image.ndim == 2 else image.shape[-1])
        if self.channel_sum is None:
            self.channel_sum = np.zeros(pixels.shape[1])
            self.channel_sq = np.zeros(pixels.shape[1])
        self.channel_sum += pixels.sum(axis=0)
        self.channel_sq += (pixels**2).sum(axis=0)
        self.channel_count += pixels.shape[0]

    def channel_sums(self) -> tuple:
        return self.channel_sum, self.channel_sq, self.channel_count

    def summary(self) -> dict:
        total = int(self.class_pixels.sum())
        frequency = (self.class_pixels / total).tolist() if total else [0.0] * self.num_classes
        low, high = size_range(self.sizes) if self.sizes else (None, None)
        return {
            "samples": self.samples,
            "inspected": len(self.sizes),
            "size_min": list(low) if low else None,  # the smallest and largest image sizes
            "size_max": list(high) if high else None,
            "class_pixels": self.class_pixels.tolist(),
            "class_frequency": frequency,
            "ignored_pixels": self.ignored,
            "other_pixels": self.other,  # neither a class nor ignore_index (check_data reports)
        }


def median_frequency_weights(frequency: list[float]) -> list[float]:
    """``median(freq) / freq_c`` over the classes present; absent classes get 0 (they have no
    pixels to weight)."""
    present = [f for f in frequency if f > 0]
    if not present:
        return [1.0] * len(frequency)
    median = float(np.median(present))
    return [median / f if f > 0 else 0.0 for f in frequency]


def channel_mean_std(sums) -> tuple[list[float], list[float]]:
    channel_sum, channel_sq, count = sums
    if not count:
        return [], []
    mean = channel_sum / count
    std = np.sqrt(np.maximum(channel_sq / count - mean**2, 0.0))
    return mean.tolist(), std.tolist()


def format_list(values: list[float], digits: int = 4) -> str:
    return "[" + ",".join(f"{round(v, digits):g}" for v in values) + "]"


def suggested_overrides(mean, std, weights) -> list[str]:
    """The overrides to paste (quoted where bash would split them)."""
    return [
        f"'data.mean={format_list(mean)}'",
        f"'data.std={format_list(std)}'",
        f"'loss.class_weights={format_list(weights)}'",
    ]


def save_samples(datamodule, path: Path, num_samples: int) -> Path | None:
    """``num_samples`` augmented train samples (evenly spaced), de-normalised for display."""
    dataset = datamodule.split("train")
    indices = spaced_indices(len(dataset), num_samples)
    if not indices or num_samples <= 0:
        return None
    stats = normalisation(datamodule.pipelines["train"])
    colours = class_colours(datamodule.num_classes)
    per_row = min(SAMPLES_PER_ROW, len(indices))
    rows = math.ceil(len(indices) / per_row)
    figure = new_figure(2.4 * 2 * per_row, 2.7 * rows + 0.6)
    axes = figure.subplots(rows, 2 * per_row, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    seen_ignore = False
    for slot, index in enumerate(indices):
        sample = dataset[index]
        image = display_image(sample["image"].numpy(), stats)
        mask = sample["mask"].numpy()
        seen_ignore |= bool((mask == datamodule.ignore_index).any())
        row, column = divmod(slot, per_row)
        axes[row, 2 * column].imshow(image, interpolation="nearest")
        axes[row, 2 * column].set_title(f"train {index}", fontsize=8)
        axes[row, 2 * column + 1].imshow(
            overlay(image, mask, colours, datamodule.ignore_index), interpolation="nearest"
        )
        axes[row, 2 * column + 1].set_title("mask", fontsize=8)
    handles = legend_handles(datamodule.class_names, colours, datamodule.ignore_index, seen_ignore)
    figure.legend(
        handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False
    )
    figure.suptitle("train samples with train augmentation", fontsize=10)
    figure.tight_layout(rect=(0, 0.08 if rows == 1 else 0.05, 1, 0.97), h_pad=1.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def size_text(split: dict) -> str:
    if split["size_min"] is None:
        return "-"
    low = "x".join(map(str, split["size_min"]))
    high = "x".join(map(str, split["size_max"]))
    return low if low == high else f"{low} .. {high}"


def summary_table(summary: dict) -> rich.table.Table:
    """Split, samples, sizes and class pixel % (one column per class up to MAX_CLASS_COLUMNS)."""
    names = summary["class_names"]
    per_class = len(names) <= MAX_CLASS_COLUMNS
    table = rich.table.Table(title="Data inspection (class pixels in %)", title_justify="left")
    for column in ("split", "samples", "sizes (HxW)"):
        table.add_column(column, no_wrap=True)
    for column in names if per_class else ["class pixels (%)"]:
        table.add_column(column, justify="right" if per_class else "left")
    table.add_column("ignored", justify="right")
    for name, split in summary["splits"].items():
        samples = str(split["samples"])
        if split["inspected"] != split["samples"]:
            samples += f" ({split['inspected']} read)"
        percent = [f"{100 * f:.1f}" for f in split["class_frequency"]]
        if not per_class:
            percent = [", ".join(f"{n} {p}" for n, p in zip(names, percent, strict=True))]
        pixels = sum(split["class_pixels"]) + split["ignored_pixels"] + split["other_pixels"]
        ignored = f"{100 * split['ignored_pixels'] / pixels:.1f}" if pixels else "-"
        table.add_row(name, samples, size_text(split), *percent, ignored)
    return table


def show_summary(summary: dict, json_path: Path) -> None:
    console = rich.get_console()
    console.print(summary_table(summary))
    names, weights = summary["class_names"], summary["class_weights"]
    absent = [name for name, weight in zip(names, weights, strict=True) if weight == 0]
    if absent:
        console.print(f"classes absent from train (weight 0): {shorten(absent)}", style="yellow")
    console.print("Train mean / std (0..1 scale) and median-frequency class weights:")
    console.print("  " + " ".join(summary["overrides"]), soft_wrap=True, markup=False)
    written = f" and {summary['samples_png']}" if summary["samples_png"] else ""
    console.print(f"Wrote {json_path}{written}", soft_wrap=True, markup=False)


def inspect_data(
    datamodule,
    output_dir: str | Path,
    num_samples: int = 8,
    max_samples: int | None = None,
    show: bool = True,
    check: bool = False,
) -> dict[str, Any]:
    """Statistics of every split of ``datamodule`` and a grid of augmented train samples.

    Args:
        datamodule: a SegmentationDataModule.
        output_dir: where ``samples.png`` and ``summary.json`` are written.
        num_samples: train samples drawn into ``samples.png`` (with the train augmentation).
        max_samples: samples read per split for the statistics, evenly spaced (None = all).
        show: print the table and the suggested overrides.
        check: raise :class:`~seglab.data.DataCheckError` on data problems. Either way the
            samples are checked and counted in one pass (``check_data`` with a ``visit``).

    Returns the content of ``summary.json``: per split ``samples``, ``inspected``,
    ``size_min`` / ``size_max`` (smallest / largest image, [H, W]), ``class_pixels``,
    ``class_frequency`` (over the class pixels: ``ignore_index`` excluded; sums to 1),
    ``ignored_pixels``; ``class_weights`` (median frequency balancing on train:
    ``median(freq) / freq_c``), ``mean`` / ``std`` (per channel of the raw train images on the
    0..1 scale) and ``overrides`` (the matching command-line overrides, quoted for a shell).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stats = {
        name: SplitStats(len(dataset), datamodule.num_classes, datamodule.ignore_index)
        for name, dataset in datamodule.datasets.items()
    }
    check_data(
        datamodule,
        max_samples,
        show=False,
        visit=lambda split, image, mask: stats[split].add(image, mask),
        strict=check,
    )
    splits = {name: stats[name].summary() for name in SPLITS if name in stats}
    mean, std = channel_mean_std(stats["train"].channel_sums())
    weights = median_frequency_weights(splits["train"]["class_frequency"])
    overrides = suggested_overrides(mean, std, weights)
    samples_png = save_samples(datamodule, output_dir / "samples.png", num_samples)
    summary = {
        "class_names": list(datamodule.class_names),
        "ignore_index": datamodule.ignore_index,
        "in_channels": datamodule.in_channels,
        "splits": splits,
        "class_weights": weights,
        "mean": mean,
        "std": std,
        "overrides": overrides,
        "samples_png": str(samples_png) if samples_png else None,
    }
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if show:
        show_summary(summary, output_dir / "summary.json")
    return summary


def task(cfg: DictConfig) -> None:
    """The job ``seglab.cli.inspect`` runs (Hydra's task function)."""
    if cfg.get("seed") is not None:
        import lightning as L

        L.seed_everything(cfg.seed)
    log.info("Instantiating data <%s>", cfg.data._target_)
    datamodule = hydra.utils.instantiate(cfg.data)
    options = cfg.get("inspect") or {}
    inspect_data(
        datamodule,
        cfg.paths.output_dir,
        num_samples=options.get("num_samples", 8),
        max_samples=options.get("max_samples"),
        check=cfg.get("check_data", True),
    )


if __name__ == "__main__":
    from seglab import cli

    cli.inspect()
