"""The evaluation task: ``python eval.py ckpt_path=<file or run folder> data=<data config>
[split=test|val|train] [tta=none|flips|d4] [tile_size=512]`` or ``seglab-eval ...`` (see
``conf/eval.yaml``).

Tests a checkpoint on any dataset or split with training's own evaluation: the network and its
preprocessing (normalisation, 16-bit scale) come from the checkpoint's model card
(:func:`seglab.inference.loading.load_network`: safe loading, no training config needed), the data
config gives the dataset, and :class:`seglab.module.SegmentationModule`'s test step (validation
step for ``split=val``) measures it with the metrics of training; the callbacks write the
per-class report and confusion matrix (:class:`seglab.callbacks.SegmentationReport`) and the
per-image Dice / IoU, worst first (:class:`seglab.callbacks.PerImageMetrics`), into this eval's
run folder (``logs/eval/runs/<date>_<time>/report/<stage>/``). With ``tta`` or ``tile_size`` the
network runs behind a :class:`seglab.inference.Predictor` (:class:`PredictorNet`), as predict does.
W&B: a ``job_type=eval`` run in the training run's group (:mod:`seglab.tracking.jobs`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf, open_dict

from seglab import tracking
from seglab.inference.card import ModelCard
from seglab.preflight import ConfigError, check_accelerator, missing_keys
from seglab.tracking.jobs import complete_job_config
from seglab.utils.config_tree import print_config_tree
from seglab.utils.instantiate import instantiate_named

log = logging.getLogger(__name__)

SPLITS = ("test", "val", "train")
PREDICTOR_KEYS = ("tile_size", "tile_overlap", "tile_batch_size", "blend", "tta")
WORST_SHOWN = 5


def check_settings(cfg: DictConfig) -> None:
    """The eval's own keys, before any work; one line naming the key and the fix each."""
    from seglab.inference.tta import TRANSFORMS

    missing = missing_keys(OmegaConf.to_container(cfg, resolve=False))
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} must be set (mandatory, ??? in the config): python eval.py "
            + " ".join(f"{key}=..." for key in missing)
        )
    if not cfg.ckpt_path:
        raise ConfigError("ckpt_path is not set: add ckpt_path=<.ckpt file or run folder>")
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split} is not known: use one of {', '.join(SPLITS)}")
    if cfg.tta not in TRANSFORMS:
        raise ConfigError(f"tta={cfg.tta} is not known: use one of {', '.join(TRANSFORMS)}")
    devices = cfg.trainer.get("devices")
    one = devices in (1, "1") or (OmegaConf.is_list(devices) and len(devices) == 1)
    if not one:
        raise ConfigError(
            f"trainer.devices={devices}: seglab-eval runs on one device (per-image rows are "
            "collected in one process): set trainer.devices=1"
        )
    check_accelerator(cfg.trainer)


def load(cfg: DictConfig):
    """``(net, card, checkpoint file)``; a missing path becomes one line."""
    from seglab.inference.loading import load_network

    try:
        return load_network(cfg.ckpt_path)
    except FileNotFoundError as error:
        raise ConfigError(f"ckpt_path={cfg.ckpt_path}: {error}") from None


def fit_data_to_card(cfg: DictConfig, card: ModelCard, ckpt_file: Path) -> None:
    """Check the data config against the checkpoint (classes, channels) and give it the
    checkpoint's normalisation and 16-bit scale (the network was trained with those)."""
    data = cfg.data
    names = list(data.class_names)
    if len(names) != card.num_classes:
        raise ConfigError(
            f"data.class_names has {len(names)} classes {names} but {ckpt_file} was trained for "
            f"{card.num_classes} {card.class_names}: evaluate on data with its classes (map the "
            "masks with 'data.dataset.mask_mapping={...}' or set data.class_names)"
        )
    if int(data.in_channels) != card.in_channels:
        raise ConfigError(
            f"data.in_channels={data.in_channels} but {ckpt_file} takes {card.in_channels}-"
            f"channel images: add data.in_channels={card.in_channels} (images are converted: "
            "gray repeated to RGB, RGB to luma)"
        )
    if names != card.class_names:
        log.warning(
            "data.class_names %s are reported as the checkpoint's %s", names, card.class_names
        )
    with open_dict(cfg):
        if list(data.mean) != card.mean or list(data.std) != card.std:
            log.info("Normalising with the checkpoint's mean %s / std %s", card.mean, card.std)
        data.mean, data.std = card.mean, card.std
        if "max_value_16bit" in (data.get("dataset") or {}):
            data.dataset.max_value_16bit = card.max_value_16bit
        cfg.model = card.net  # the evaluated network, in the run's config and W&B
        if cfg.split != "test" and "test" in (data.get("splits") or {}):
            data.splits.test = None  # not built: an empty test split would fail the data module


def instantiate_data(data: DictConfig, split: str):
    """The data module with the split to evaluate; its errors (a missing folder, an empty split,
    no such split) as one line."""
    try:
        datamodule = hydra.utils.instantiate(data)
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise ConfigError(f"data: {str(cause).splitlines()[0]}") from None
    if split not in datamodule.datasets:
        raise ConfigError(
            f"split={split}: the data config has no {split} split (data.splits.{split} is null): "
            f"use one of {', '.join(s for s in SPLITS if s in datamodule.datasets)}"
        )
    return datamodule


def build_module(cfg: DictConfig, net, card: ModelCard):
    """The SegmentationModule training tests with; behind a Predictor for TTA / tiling."""
    from seglab.module import SegmentationModule

    if cfg.tta != "none" or cfg.get("tile_size"):
        from seglab.inference import Predictor, Preprocessing
        from seglab.inference.network import PredictorNet

        options = {key: cfg[key] for key in PREDICTOR_KEYS if key in cfg}
        preprocessing = Preprocessing(card.in_channels, card.mean, card.std, card.max_value_16bit)
        predictor = Predictor(net, preprocessing, card.class_names, device="cpu", **options)
        net = PredictorNet(predictor)
    return SegmentationModule(
        net=net,
        loss=hydra.utils.instantiate(cfg.loss),
        optimizer=None,  # never trained
        class_names=card.class_names,
        ignore_index=int(cfg.data.ignore_index),
    )


def run_split(trainer: L.Trainer, module, datamodule, split: str) -> tuple[str, float]:
    """Validate (``split=val``) or test (``test``, ``train``: the test loop) the split, through
    the eval pipeline in order; returns the stage its metrics are logged under and seconds."""
    loader = datamodule.eval_dataloader(split)
    start = time.perf_counter()
    if split == "val":
        trainer.validate(module, dataloaders=loader)
    else:
        trainer.test(module, dataloaders=loader)
    return ("val" if split == "val" else "test"), time.perf_counter() - start


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation task; returns its metrics (floats) and where its files are."""
    check_settings(cfg)
    net, card, ckpt_file = load(cfg)
    fit_data_to_card(cfg, card, ckpt_file)
    training = complete_job_config(cfg, "eval", ckpt_file)
    wandb_mode = tracking.ensure_wandb_mode()
    output = Path(cfg.paths.output_dir)
    print_config_tree(cfg, save_to=output / "config_tree.log")
    datamodule = instantiate_data(cfg.data, cfg.split)
    module = build_module(cfg, net, card)
    callbacks = instantiate_named(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_named(cfg.get("logger"), "logger")
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    with open_dict(cfg):
        cfg.training = training
    tracking.log_hyperparameters(trainer, cfg, net, datamodule, wandb_mode)
    stage, seconds = run_split(trainer, module, datamodule, cfg.split)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    per_image = next((c.rows for c in callbacks if hasattr(c, "rows")), [])
    report(cfg, stage, metrics, per_image, seconds, output)
    return {"metrics": metrics, "stage": stage, "seconds": seconds, "output_dir": str(output)}


def data_choice() -> str:
    """The data config's name (``isbi2012``, ``folder``, ...) as chosen on the command line."""
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get("data", "?"))
    return "?"


def report(cfg, stage: str, metrics: dict, per_image: list[dict], seconds: float, output: Path):
    """Print and save (``summary.md``) the metrics table and the worst images."""
    from seglab.utils.tables import markdown_table

    shown = [
        {"metric": name, "value": f"{value:.4f}"}
        for name, value in metrics.items()
        if name.startswith(f"{stage}/") and not name.endswith("_best")
    ]
    title = (
        f"Evaluation of {cfg.ckpt_path} on data={data_choice()} split={cfg.split} "
        f"(logged as {stage}/*), tta={cfg.tta}, tile_size={cfg.get('tile_size')}: "
        f"{len(per_image)} images in {seconds:.1f} s"
    )
    text = f"{title}\n\n{markdown_table(shown, ['value'])}" if shown else title + "\n"
    if per_image:
        worst = [
            {"image": r["image"], "dice": f"{r['dice']:.4f}", "iou": f"{r['iou']:.4f}"}
            for r in per_image[:WORST_SHOWN]
        ]
        text += f"\nWorst images (all in report/{stage}/per_image.csv):\n\n"
        text += markdown_table(worst, ["dice", "iou"])
    (output / "summary.md").write_text(text)
    log.info("%s", text)


# evaluate() as a task: the W&B run always finished with the exit code
run_task = tracking.task_wrapper(evaluate)


def task(cfg: DictConfig) -> None:
    """The job ``seglab.cli.evaluate`` runs (Hydra's task function)."""
    run_task(cfg)


if __name__ == "__main__":
    from seglab import cli

    cli.evaluate()
