"""The prediction task: ``python predict.py ckpt_path=<file or run folder> input=<file | folder |
glob> output=<folder>`` or ``seglab-predict ...`` (see ``conf/predict.yaml``).

Loads the checkpoint with :func:`seglab.load_model` (safe loading, stored preprocessing), reads
each input as training reads images (:func:`seglab.data.io.read_image`: 8-bit as it is, 16-bit
divided by the checkpoint's ``max_value_16bit``) and writes, per image, ``<stem>.png`` (class
indices; 16-bit above 256 classes), ``<stem>_overlay.png`` and, with ``save_probabilities=npy``
or ``tiff``, ``<stem>_probabilities.npy`` / ``.tif``. Files that are not images, or that cannot
be read, are reported and skipped. A summary table (image, size, seconds, class pixel fractions)
is printed and written to ``<output>/summary.csv``. With ``logger=wandb`` a ``job_type=predict``
W&B run in the training run's group (:mod:`seglab.tracking.jobs`) gets a table of the inputs with
their predicted masks (``predictions``, the first ``wandb_images`` images) and the summary.
"""

from __future__ import annotations

import glob
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from seglab import tracking

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
PROBABILITY_FORMATS = {"npy": ".npy", "tiff": ".tif"}
PREDICTOR_KEYS = ("tile_size", "tile_overlap", "tile_batch_size", "blend", "tta")


class PredictError(CompactHydraException, ValueError):
    """A setting that cannot work; the message names the key and the fix."""


def list_inputs(pattern: str) -> list[Path]:
    """The files of ``input``: one file, a folder's files (not recursive) or a glob's matches."""
    path = Path(pattern)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        files = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        raise PredictError(
            f"input={pattern} names no files: give an image file, a folder of images or a glob "
            "such as 'input=images/*.png' (quoted)"
        )
    return files


def check_output(output: str | None) -> Path:
    """The output folder, created and writable, or an error before any work."""
    if not output:
        raise PredictError("output is not set: add output=<folder> for the masks and overlays")
    folder = Path(output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise PredictError(
            f"output={output} cannot be written ({error.strerror or error}): choose a folder you "
            "can write to"
        ) from None
    return folder


def check_settings(cfg: DictConfig) -> None:
    saved = cfg.get("save_probabilities")
    if saved and saved not in PROBABILITY_FORMATS:
        raise PredictError(
            f"save_probabilities={saved} is not known: use npy, tiff or null (none saved)"
        )
    if not cfg.get("ckpt_path"):
        raise PredictError("ckpt_path is not set: add ckpt_path=<file.ckpt or run folder>")
    if not cfg.get("input"):
        raise PredictError("input is not set: add input=<image file, folder or glob>")


def predict_one(predictor, image: np.ndarray, output: Path, stem: str, cfg: DictConfig):
    """Write the mask, overlay (and probabilities) of ``image``; returns the mask."""
    from seglab.inference import write_mask, write_overlay, write_probabilities
    from seglab.inference.predictor import mask_dtype

    saved = cfg.get("save_probabilities")
    num_classes = predictor.num_classes
    if saved:
        probabilities = predictor.probabilities(image)
        write_probabilities(
            output / f"{stem}_probabilities{PROBABILITY_FORMATS[saved]}", probabilities
        )
        mask = probabilities.argmax(0).astype(mask_dtype(num_classes))
    else:
        mask = predictor(image)
    write_mask(output / f"{stem}.png", mask, num_classes)
    if cfg.get("overlay", True):
        write_overlay(
            output / f"{stem}_overlay.png",
            image,
            mask,
            num_classes,
            palette=predictor.palette,
            ignore_index=predictor.ignore_index,
        )
    return mask


def summary_row(path: Path, mask: np.ndarray, seconds: float, class_names) -> dict[str, str]:
    counts = np.bincount(mask.ravel().astype(np.int64), minlength=len(class_names))
    fractions = counts[: len(class_names)] / max(mask.size, 1)
    row = {"image": path.name, "size": f"{mask.shape[0]}x{mask.shape[1]}"}
    row["seconds"] = f"{seconds:.3f}"
    row.update({name: f"{value:.4f}" for name, value in zip(class_names, fractions, strict=True)})
    return row


def run_inputs(predictor, files: list[Path], output: Path, cfg: DictConfig, table=None):
    """Predict every file; returns (summary rows, skipped ``(file, reason)`` pairs). ``table``
    (a :class:`seglab.tracking.jobs.PredictionTable`) gets each image and its mask."""
    from tqdm import tqdm

    from seglab.data.io import FileError, read_image

    rows, skipped = [], []
    max_value = predictor.preprocessing.max_value_16bit
    for path in tqdm(files, desc="predict", unit="image", disable=not cfg.get("progress_bar")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((path, f"not an image ({'/'.join(IMAGE_SUFFIXES)})"))
            continue
        try:
            image = read_image(path, None, max_value)
            start = time.perf_counter()
            mask = predict_one(predictor, image, output, path.stem, cfg)
        except (FileError, ValueError) as error:
            skipped.append((path, str(error)))
            continue
        rows.append(summary_row(path, mask, time.perf_counter() - start, predictor.class_names))
        if table is not None:
            table.add(path.name, image, mask)
    return rows, skipped


def report(rows: list[dict[str, str]], skipped, output: Path) -> None:
    from seglab.utils.tables import csv_text, markdown_table, write_atomic

    for path, reason in skipped:
        log.warning("Skipped %s: %s", path, reason)
    if rows:
        write_atomic(output / "summary.csv", csv_text(rows, list(rows[0])))
        numeric = [key for key in rows[0] if key not in ("image", "size")]
        log.info("Predictions in %s:\n%s", output, markdown_table(rows, numeric))
    log.info("%d image(s) predicted, %d file(s) skipped", len(rows), len(skipped))


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Run the prediction task; returns ``{"rows": [...], "skipped": [...]}``."""
    check_settings(cfg)
    output = check_output(cfg.get("output"))
    files = list_inputs(str(cfg.input))
    from seglab.inference.loading import load_model

    options = {key: cfg[key] for key in PREDICTOR_KEYS if key in cfg}
    predictor = load_model(cfg.ckpt_path, device=cfg.get("device", "auto"), **options)
    logger, table = wandb_job(cfg, predictor, len(files))
    rows, skipped = run_inputs(predictor, files, output, cfg, table)
    report(rows, skipped, output)
    if logger is not None:
        table.log(logger)
        logger.experiment.summary.update({"images": len(rows), "skipped": len(skipped)})
    if not rows:
        raise PredictError(
            f"none of the {len(files)} file(s) of input={cfg.input} could be predicted (see the "
            "warnings above): give image files"
        )
    return {"rows": rows, "skipped": [str(path) for path, _ in skipped]}


def wandb_job(cfg: DictConfig, predictor, num_files: int):
    """``(W&B logger, PredictionTable)`` with ``logger=wandb``, else ``(None, None)``."""
    from seglab.inference.writers import colours_of
    from seglab.tracking.jobs import PredictionTable, job_wandb_logger

    record = {key: cfg.get(key) for key in ("ckpt_path", "input", "output", *PREDICTOR_KEYS)}
    record.update(files=num_files, card=predictor.card.to_dict())
    logger = job_wandb_logger(cfg, "predict", predictor.checkpoint_path, record)
    if logger is None:
        return None, None
    colours = colours_of(predictor.palette, predictor.num_classes)
    table = PredictionTable(
        predictor.class_names,
        colours,
        predictor.ignore_index,
        predictor.preprocessing.max_value_16bit,
        max_rows=int(cfg.get("wandb_images", 16)),
    )
    return logger, table


# predict() as a task: the W&B run (logger=wandb) always finished with the exit code
run_task = tracking.task_wrapper(predict)


def task(cfg: DictConfig) -> None:
    """The job ``seglab.cli.predict`` runs (Hydra's task function)."""
    run_task(cfg)


if __name__ == "__main__":
    from seglab import cli

    cli.predict()
