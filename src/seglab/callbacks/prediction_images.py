"""Watch the model learn: the same validation samples predicted after every validation epoch.

:class:`PredictionImages` picks ``num_samples`` evenly spaced samples of the validation set once,
and after each validation epoch (not the sanity check) predicts them with the current weights:

- ``<dirpath>/epoch_<NNN>.png`` (for users without W&B too): one column per sample, rows input /
  ground truth / prediction, masks blended over the input in the class colours of
  :mod:`seglab.utils.overlay`, with a legend;
- ``val/predictions`` for every W&B logger: one ``wandb.Image`` per sample with ``prediction`` and
  ``ground_truth`` masks and class labels, at the trainer's global step, so W&B's step slider
  steps through the epochs on the same samples.

Only rank zero does any of it: it reads the samples from the dataset itself (not through the
distributed sampler) and runs the network directly, with no collective call, so the other ranks
neither wait nor take part. The samples are read once and kept (a few images).
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn

from seglab.models.base import SegmentationNet
from seglab.tracking import wandb_loggers
from seglab.utils.argmax import class_argmax
from seglab.utils.background import Background
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

ROWS = ("input", "ground truth", "prediction")
DPI = 100
CELL_INCHES = 1.6  # one image
LABEL_INCHES = 0.35  # the row names on the left
MARGIN_INCHES = 0.05  # on the right
TITLE_INCHES = 0.35
LEGEND_ROW_INCHES = 0.25
LEGEND_ENTRY_INCHES = 1.3
WANDB_KEY = "val/predictions"


@dataclass
class SampleSet:
    """The chosen validation samples as the network receives them (read once, kept)."""

    indices: list[int]
    images: list[torch.Tensor]  # (C, H, W), normalised
    masks: list[torch.Tensor]  # (H, W), int64 class indices
    stats: tuple[np.ndarray, np.ndarray] | None  # the normalisation, to show the images


@dataclass
class Prediction:
    """One sample ready to show, cropped to the network's output (``padding=valid``)."""

    index: int
    image: np.ndarray  # (h, w, 3) in 0..1
    mask: np.ndarray  # (h, w) ground truth
    prediction: np.ndarray  # (h, w) argmax of the logits


def class_names_of(trainer: L.Trainer, pl_module: L.LightningModule, num_classes: int) -> list:
    """The module's (else the datamodule's) class names; class indices where there are none."""
    names = getattr(pl_module, "class_names", None)
    names = list(names or getattr(trainer.datamodule, "class_names", None) or [])
    return names + [str(c) for c in range(len(names), num_classes)]


def val_dataset(trainer: L.Trainer):
    """The dataset of the (first) validation loader, or None when there is none or it has no
    length (an iterable dataset cannot be indexed by sample)."""
    loaders = trainer.val_dataloaders
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    if isinstance(loaders, list | tuple):
        loaders = loaders[0] if loaders else None
    dataset = getattr(loaders, "dataset", None)
    try:
        return dataset if dataset is not None and len(dataset) > 0 else None
    except TypeError:
        return None


def select_samples(dataset, num_samples: int) -> SampleSet:
    """``num_samples`` evenly spaced samples of ``dataset`` (all of them if it has fewer)."""
    indices = spaced_indices(len(dataset), num_samples)
    images, masks = [], []
    for index in indices:
        sample = dataset[index]
        if not isinstance(sample, dict) or not {"image", "mask"} <= set(sample):
            raise TypeError(
                f"PredictionImages: validation sample {index} of {type(dataset).__name__} is a "
                f"{type(sample).__name__}; seglab datasets yield {{'image', 'mask'}} dicts. "
                "Disable the callback with callbacks.prediction_images=null for other data."
            )
        images.append(torch.as_tensor(sample["image"]).float())
        masks.append(torch.as_tensor(sample["mask"]).long())
    stats = normalisation(getattr(dataset, "transform", None))
    return SampleSet(indices, images, masks, stats)


def predict(net: SegmentationNet, samples: SampleSet, precision=None) -> list[Prediction]:
    """The network's per-pixel argmax on ``samples`` (eval mode, no gradients), image and mask cut
    to the part the network predicts (``net.align_target``). Each submodule's train/eval mode is
    restored afterwards (not ``net.train()``, which would also switch on modules kept in eval on
    purpose, such as a frozen encoder's batch norm). ``precision`` is the trainer's precision
    plugin (input dtype and autocast as in training)."""
    modes = {submodule: submodule.training for submodule in net.modules()}
    device = next(net.parameters()).device
    context = precision.forward_context() if precision is not None else nullcontext()
    same_size = len({tuple(image.shape) for image in samples.images}) == 1
    batches = [torch.stack(samples.images)] if same_size else [i[None] for i in samples.images]
    labels = []
    net.eval()
    try:
        with torch.no_grad(), context:
            for batch in batches:
                batch = batch.to(device)
                if precision is not None:
                    batch = precision.convert_input(batch)
                labels.extend(class_argmax(net(batch)).cpu())
    finally:
        for submodule, training in modes.items():
            submodule.training = training
    predictions = []
    for index, image, mask, label in zip(
        samples.indices, samples.images, samples.masks, labels, strict=True
    ):
        image, mask = net.align_target(image, label), net.align_target(mask, label)
        shown = display_image(image.numpy(), samples.stats)
        predictions.append(Prediction(index, shown, mask.numpy(), label.numpy()))
    return predictions


def grid_inches(num_columns: int, num_legend_entries: int) -> tuple[float, float, int]:
    """Figure width and height in inches, and legend columns, for a grid of ``num_columns``."""
    width = LABEL_INCHES + num_columns * CELL_INCHES + MARGIN_INCHES
    legend_columns = max(1, min(num_legend_entries, int(width // LEGEND_ENTRY_INCHES)))
    legend_rows = math.ceil(num_legend_entries / legend_columns)
    height = TITLE_INCHES + len(ROWS) * CELL_INCHES + legend_rows * LEGEND_ROW_INCHES + 0.1
    return width, height, legend_columns


def mosaic(
    predictions: list[Prediction], colours: np.ndarray, ignore_index: int
) -> tuple[np.ndarray, list[float], list[float]]:
    """The grid as one RGB array (white gaps), and the centres of its columns and rows. One
    image in one axes costs a fraction of 3 x N axes (matplotlib spends most of its time creating
    axes), which matters every epoch. Samples of different sizes are centred in cells of the
    largest size."""
    height = max(p.image.shape[0] for p in predictions)
    width = max(p.image.shape[1] for p in predictions)
    gap = max(1, round(0.04 * max(height, width)))
    grid = np.ones((len(ROWS) * (height + gap) - gap, len(predictions) * (width + gap) - gap, 3))
    for column, sample in enumerate(predictions):
        shown = (
            sample.image,
            overlay(sample.image, sample.mask, colours, ignore_index),
            overlay(sample.image, sample.prediction, colours, ignore_index),
        )
        for row, picture in enumerate(shown):
            top = row * (height + gap) + (height - picture.shape[0]) // 2
            left = column * (width + gap) + (width - picture.shape[1]) // 2
            grid[top : top + picture.shape[0], left : left + picture.shape[1]] = picture
    columns = [c * (width + gap) + (width - 1) / 2 for c in range(len(predictions))]
    rows = [r * (height + gap) + (height - 1) / 2 for r in range(len(ROWS))]
    return grid, columns, rows


def save_grid(
    predictions: list[Prediction],
    path: Path,
    class_names: list[str],
    ignore_index: int,
    title: str,
) -> Path:
    """One column per sample; rows input, ground truth overlay, prediction overlay; a legend."""
    colours = class_colours(len(class_names))
    show_ignore = any((p.mask == ignore_index).any() for p in predictions)
    handles = legend_handles(class_names, colours, ignore_index, show_ignore)
    width, height, legend_columns = grid_inches(len(predictions), len(handles))
    figure = new_figure(width, height, DPI)
    grid_width, grid_height = len(predictions) * CELL_INCHES, len(ROWS) * CELL_INCHES
    bottom = (height - TITLE_INCHES - grid_height) / height  # the legend is below the grid
    ax = figure.add_axes((LABEL_INCHES / width, bottom, grid_width / width, grid_height / height))
    grid, columns, rows = mosaic(predictions, colours, ignore_index)
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks(columns, [f"sample {p.index}" for p in predictions], fontsize=8)
    ax.set_yticks(rows, ROWS, fontsize=8, rotation=90, va="center")
    ax.xaxis.tick_top()
    ax.tick_params(length=0, pad=2)
    for spine in ax.spines.values():
        spine.set_visible(False)
    figure.legend(
        handles=handles, loc="lower center", ncol=legend_columns, fontsize=7, frameon=False
    )
    figure.suptitle(title, fontsize=9, y=1 - 0.05 / height, va="top")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path


def wandb_masks(sample: Prediction, class_names: list[str], ignore_index: int) -> dict:
    """The ``prediction`` and ``ground_truth`` masks of a ``wandb.Image``: uint8 class indices
    (W&B stores masks as 8-bit PNGs) and labels; ``ignore_index`` pixels become 255 ("ignore")
    when the index itself does not fit."""
    masks = {}
    for key, mask in (("prediction", sample.prediction), ("ground_truth", sample.mask)):
        labels = dict(enumerate(class_names))
        ignored = mask == ignore_index
        if ignored.any():
            shown = ignore_index if ignore_index <= 255 else 255
            mask = np.where(ignored, shown, mask)
            labels[shown] = "ignore"
        masks[key] = {"mask_data": mask.astype(np.uint8), "class_labels": labels}
    return masks


class PredictionImages(L.Callback):
    """Predict a fixed set of validation samples after each validation epoch (rank zero).

    Args:
        dirpath: folder of the ``epoch_<NNN>.png`` grids (the run dir's ``predictions/``).
        num_samples: samples shown, evenly spaced over the validation set (fewer if it is smaller).
        every_n_epochs: draw after every n-th training epoch's validation (1 = each).
    """

    def __init__(self, dirpath: str | Path, num_samples: int = 8, every_n_epochs: int = 1):
        if num_samples < 1 or every_n_epochs < 1:
            raise ValueError(
                "callbacks.prediction_images: num_samples and every_n_epochs must be >= 1, got "
                f"num_samples={num_samples}, every_n_epochs={every_n_epochs} (set "
                "callbacks.prediction_images=null to turn the images off)"
            )
        self.dirpath = Path(dirpath)
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.samples: SampleSet | None = None
        self.validated = False
        self._warned = False
        self.writer = Background("prediction_images")  # grids are drawn while training goes on

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.validated = True
        fitting = trainer.state.fn == TrainerFn.FITTING
        if fitting and (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if self.samples is None:
            dataset = val_dataset(trainer)
            if dataset is None:
                self._warn("the validation loader has no indexable, non-empty dataset")
                return
            self.samples = select_samples(dataset, self.num_samples)
        self.draw(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and not self.validated:
            self._warn("no validation epoch ran (no val set, or limit_val_batches=0)")

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        predictions = predict(pl_module.net, self.samples, trainer.precision_plugin)
        predicted = 1 + max(int(p.prediction.max()) for p in predictions)
        class_names = class_names_of(trainer, pl_module, predicted)
        ignore_index = getattr(pl_module, "ignore_index", 255)
        epoch = trainer.current_epoch
        path = self.dirpath / f"epoch_{epoch:03d}.png"
        title = f"validation samples, epoch {epoch}, step {trainer.global_step}"
        self.writer.submit(save_grid, predictions, path, class_names, ignore_index, title)
        for logger in wandb_loggers(trainer):
            logger.log_image(
                WANDB_KEY,
                images=[np.round(p.image * 255).astype(np.uint8) for p in predictions],
                step=trainer.global_step,
                masks=[wandb_masks(p, class_names, ignore_index) for p in predictions],
                caption=[f"val sample {p.index}" for p in predictions],
            )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.writer.close()  # every grid written (an error in drawing one is raised here)

    def _warn(self, why: str) -> None:
        if not self._warned:
            rank_zero_warn(f"PredictionImages: {why}; no prediction images are written.")
            self._warned = True
