"""W&B runs of the jobs that use a trained model: ``seglab-eval`` (``job_type=eval``) and
``seglab-predict`` (``job_type=predict``), in the group of the run that trained the checkpoint.

The training run's group is the one :func:`seglab.tracking.run.complete_wandb_config` gave it: its
``logger.wandb.group`` when set, else its sweep folder's name for a multirun job. A single
training run has no group; its eval and predict jobs then share the group named after its run
folder (``logs/train/runs/<date>_<time>``), and every job records the training run's folder and
W&B id in its config (``training.run_dir``, ``training.wandb_id``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from seglab.tracking.mode import ensure_wandb_mode
from seglab.tracking.run_info import flatten, wandb_run_id

log = logging.getLogger(__name__)

JOB_TYPES = ("eval", "predict")
TABLE_SIDE = 1024  # images in W&B tables are shrunk (every n-th pixel) to this longest side


def training_run_dir(ckpt_file: str | Path) -> Path:
    """``<run>/checkpoints/<file>.ckpt`` -> ``<run>``; a checkpoint kept elsewhere: its folder."""
    folder = Path(ckpt_file).resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def training_group(run_dir: str | Path) -> str:
    """The W&B group of the training run in ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    config, hydra = run_dir / ".hydra" / "config.yaml", run_dir / ".hydra" / "hydra.yaml"
    if config.is_file():
        group = OmegaConf.select(OmegaConf.load(config), "logger.wandb.group", default=None)
        if group:
            return str(group)
    if hydra.is_file():
        mode = OmegaConf.select(OmegaConf.load(hydra), "hydra.mode", default=None)
        if str(mode) == "MULTIRUN":  # <sweep dir>/<job number>: the sweep's group
            return run_dir.parent.name
    return run_dir.name


def complete_job_config(cfg: DictConfig, job_type: str, ckpt_file: str | Path) -> dict[str, Any]:
    """Fill the W&B logger config of an eval / predict job (name, group, job type; a new run, no
    model upload) and return what it records about the training run."""
    if job_type not in JOB_TYPES:
        raise ValueError(f"job_type must be one of {JOB_TYPES}, got {job_type!r}")
    run_dir = training_run_dir(ckpt_file)
    training = {
        "run_dir": str(run_dir),
        "checkpoint": str(ckpt_file),
        "wandb_id": wandb_run_id(run_dir),
        "group": training_group(run_dir),
    }
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg:
        with open_dict(cfg):
            wandb_cfg.job_type = job_type
            wandb_cfg.group = wandb_cfg.get("group") or training["group"]
            wandb_cfg.name = wandb_cfg.get("name") or f"{job_type}-{run_dir.name}"
            wandb_cfg.id = None  # a run of its own, never the training run resumed
            wandb_cfg.log_model = False
    return training


def job_wandb_logger(cfg: DictConfig, job_type: str, ckpt_file: str | Path, record: dict):
    """The W&B logger of a job without a Lightning trainer (predict), its run started and the
    job's config (``record``, plus the training run's) logged; None without ``logger=wandb``."""
    if not (cfg.get("logger") or {}).get("wandb"):
        return None
    import hydra

    training = complete_job_config(cfg, job_type, ckpt_file)
    mode = ensure_wandb_mode()
    logger = hydra.utils.instantiate(cfg.logger.wandb)
    logger.log_hyperparams(flatten({**record, "training": training}))
    name = logger.experiment.name
    log.info("W&B %s: %s run %s in group %s", mode.mode, job_type, name, training["group"])
    return logger


class PredictionTable:
    """A ``wandb.Table`` of predictions: image name, size, the input with the predicted mask as a
    W&B mask overlay (classes toggled in the UI) and seglab's overlay picture
    (:func:`seglab.utils.overlay.overlay`); at most ``max_rows`` images, each shrunk (every n-th
    pixel) to a longest side of :data:`TABLE_SIDE` before anything is drawn."""

    COLUMNS = ("image", "size", "prediction", "overlay")

    def __init__(
        self,
        class_names: Sequence[str],
        colours: np.ndarray,
        ignore_index: int = 255,
        max_value_16bit: float = 65535.0,
        max_rows: int = 16,
    ):
        self.labels = {index: str(name) for index, name in enumerate(class_names)}
        self.colours, self.ignore_index = colours, ignore_index
        self.max_value_16bit, self.max_rows = max_value_16bit, max_rows
        self.rows: list[list] = []

    def add(self, name: str, image: np.ndarray, mask: np.ndarray) -> None:
        """``image``: the user's array (as the predictor took it); ``mask``: its prediction."""
        if len(self.rows) >= self.max_rows:
            return
        import wandb

        from seglab.inference.preprocessing import display_rgb
        from seglab.utils.overlay import overlay

        step = max(1, -(-max(mask.shape) // TABLE_SIDE))  # ceil: the longest side <= TABLE_SIDE
        small = mask[::step, ::step]
        rgb = display_rgb(np.asarray(image)[::step, ::step], self.max_value_16bit)
        drawn = overlay(rgb, small, self.colours, self.ignore_index)

        def picture(array: np.ndarray) -> np.ndarray:
            return np.round(array * 255).astype(np.uint8)

        masks = {"prediction": {"mask_data": small, "class_labels": self.labels}}
        size = f"{mask.shape[0]}x{mask.shape[1]}"
        self.rows.append(
            [name, size, wandb.Image(picture(rgb), masks=masks), wandb.Image(picture(drawn))]
        )

    def log(self, logger, key: str = "predictions") -> None:
        if logger is None or not self.rows:
            return
        import wandb

        logger.experiment.log({key: wandb.Table(columns=list(self.COLUMNS), data=self.rows)})
