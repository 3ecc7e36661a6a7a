"""Loading a trained model safely: ``seglab.load_model(path)`` -> :class:`Predictor`.

- The file is read with ``torch.load(weights_only=True)``
  (:func:`seglab.checkpoints.read_checkpoint`): no code in it runs.
- The network is rebuilt from the checkpoint's :class:`ModelCard` (``checkpoint["seglab"]``) or,
  for checkpoints written before seglab stored one, from the run's ``.hydra/config.yaml``
  (``<run>/checkpoints/x.ckpt`` -> ``<run>/.hydra/config.yaml``). Its ``_target_`` may only name
  a :class:`seglab.models.SegmentationNet` in ``seglab.models`` (seglab's networks and
  ``seglab.models.smp.SMPModel``, smp's models); the class is called with the stored arguments
  (nothing nested is instantiated), with pretrained-weight downloads switched off (the
  checkpoint holds the weights).
- A path to a run folder picks its best checkpoint (:func:`find_checkpoint`).
- An ``.onnx`` / TorchScript file seglab exported runs through the same Predictor
  (:mod:`seglab.inference.runners`).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from seglab.checkpoints import CheckpointError, check_weights, read_checkpoint
from seglab.inference.card import CARD_KEY, ModelCard
from seglab.inference.predictor import Predictor
from seglab.inference.preprocessing import Preprocessing
from seglab.inference.runners import OnnxNet, exported_format, load_exported

log = logging.getLogger(__name__)

ALLOWED_MODULE = "seglab.models"
# constructor arguments that would fetch pretrained weights: the checkpoint has the weights
NO_DOWNLOAD = {"pretrained": None, "weights_path": None, "encoder_weights": None}


def network_class(target: Any, source: str | Path):
    """The SegmentationNet class ``target`` names, or a CheckpointError naming it."""
    module_name, _, name = str(target).rpartition(".")
    refused = CheckpointError(
        f"{source} asks to build {target!r}, which seglab refuses to instantiate: only seglab's "
        f"networks ({ALLOWED_MODULE}.*, e.g. seglab.models.UNet, or "
        "seglab.models.smp.SMPModel for segmentation_models_pytorch) are built from a "
        "checkpoint; load only checkpoints that seglab wrote"
    )
    if not (module_name == ALLOWED_MODULE or module_name.startswith(ALLOWED_MODULE + ".")):
        raise refused
    from seglab.models.base import SegmentationNet

    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise refused from None
    if not (isinstance(cls, type) and issubclass(cls, SegmentationNet)):
        raise refused
    return cls


def build_net(config: dict[str, Any], source: str | Path):
    """The network of a stored ``{"_target_": ..., **arguments}`` config (see module docstring)."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{source} holds no network config (got {type(config).__name__})")
    arguments = {key: value for key, value in config.items() if not key.startswith("_")}
    cls = network_class(config.get("_target_"), source)
    arguments.update({key: value for key, value in NO_DOWNLOAD.items() if key in arguments})
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"{source}: its network {config.get('_target_')} cannot be rebuilt from the stored "
            f"arguments ({error}): load it with the seglab version that wrote it"
        ) from None


def card_from_run_config(ckpt_path: Path) -> ModelCard:
    """The card of a checkpoint without one, from ``<run>/.hydra/config.yaml`` beside it."""
    config_path = ckpt_path.resolve().parent.parent / ".hydra" / "config.yaml"
    if not config_path.is_file():
        raise CheckpointError(
            f"{ckpt_path} carries no seglab model card (it was written before seglab stored "
            f"one) and there is no run config at {config_path}: keep the checkpoint in its run "
            "folder (<run>/checkpoints/), next to <run>/.hydra/config.yaml"
        )
    cfg = OmegaConf.load(config_path)

    def value(key: str, default: Any = None) -> Any:
        node = OmegaConf.select(cfg, key, default=default)
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node

    data = {
        key: value(f"data.{key}")
        for key in ("class_names", "ignore_index", "mean", "std")
        if value(f"data.{key}") is not None
    }
    data["dataset"] = {key: value(f"data.dataset.{key}") for key in ("max_value_16bit", "palette")}
    data["dataset"] = {k: v for k, v in data["dataset"].items() if v is not None}
    net = build_net(value("model"), config_path)
    log.info("%s has no model card: rebuilt it from %s", ckpt_path, config_path)
    return ModelCard.from_training(net, data)


def load_network(path: str | Path, num_classes: int | None = None, architecture: str | None = None):
    """``(net, card, checkpoint file)`` of a checkpoint or run folder, weights loaded, checked
    against ``num_classes`` and ``architecture`` (class name or ``_target_``) when given."""
    ckpt_path = find_checkpoint(path)
    content = read_checkpoint(ckpt_path)
    stored = content.get(CARD_KEY)
    if isinstance(stored, dict):
        card = ModelCard.from_dict(stored)
    else:
        card = card_from_run_config(ckpt_path)
    check_expected(ckpt_path, card, num_classes, architecture)
    net = build_net(card.net, ckpt_path)
    weights = {
        key.removeprefix("net."): value
        for key, value in content["state_dict"].items()
        if key.startswith("net.")
    }
    check_weights(ckpt_path, weights, net)
    net.load_state_dict(weights)
    return net.eval(), card, ckpt_path


def check_expected(
    ckpt_path: Path, card: ModelCard, num_classes: int | None, architecture: str | None
) -> None:
    if num_classes is not None and int(num_classes) != card.num_classes:
        raise CheckpointError(
            f"{ckpt_path} was trained for {card.num_classes} classes {card.class_names}, not the "
            f"num_classes={num_classes} asked for: load another checkpoint, or leave num_classes "
            "unset"
        )
    if architecture and architecture not in (card.target, card.target.rpartition(".")[2]):
        raise CheckpointError(
            f"{ckpt_path} holds a {card.target}, not the architecture={architecture!r} asked "
            "for: load another checkpoint, or leave architecture unset"
        )


def find_checkpoint(path: str | Path) -> Path:
    """``path`` itself when it is a file; for a run folder its best checkpoint: the path that
    the ModelCheckpoint recorded in ``last.ckpt``'s callback state, else the single
    ``epoch_*.ckpt``, else ``last.ckpt``. Logs which one it picked."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} does not exist: pass a .ckpt file or a run folder (logs/train/runs/<run>)"
        )
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    last = folder / "last.ckpt"
    epochs = sorted(folder.glob("epoch_*.ckpt"))
    picked, why = None, ""
    if last.is_file():
        picked = recorded_best(last, folder)
        why = "the best checkpoint recorded in last.ckpt"
    if picked is None and len(epochs) == 1:
        picked, why = epochs[0], "the only epoch_*.ckpt"
    if picked is None and last.is_file():
        picked, why = last, "last.ckpt (no best checkpoint recorded)"
    if picked is None:
        found = ", ".join(p.name for p in epochs) or "no .ckpt files"
        raise FileNotFoundError(
            f"{path} holds no checkpoint to pick ({found} in {folder}): pass a .ckpt file"
        )
    log.info("Loading %s: %s", picked, why)
    return picked


def recorded_best(last: Path, folder: Path) -> Path | None:
    """The best model path a ModelCheckpoint stored in ``last.ckpt``, if it still exists: looked up
    by name in ``folder`` first (the run folder may have been moved or copied), then as stored."""
    for state in read_checkpoint(last).get("callbacks", {}).values():
        best = state.get("best_model_path") if isinstance(state, dict) else None
        if best:
            for candidate in (folder / Path(best).name, Path(best)):
                if candidate.is_file():
                    return candidate
    return None


def load_model(
    path: str | Path,
    device: str = "auto",
    *,
    num_classes: int | None = None,
    architecture: str | None = None,
    **predictor_options: Any,
) -> Predictor:
    """A :class:`Predictor` of the checkpoint (or run folder) at ``path``, with its stored
    preprocessing, class names, palette and ignore_index; ``predictor_options`` are
    :class:`Predictor`'s (``tile_size``, ``tile_overlap``, ``tta``, ...). ``num_classes`` /
    ``architecture``: fail unless the checkpoint has these. ``predictor.card`` is its
    :class:`ModelCard`, ``predictor.checkpoint_path`` the file read.

    ``path`` may also be an ``.onnx`` or TorchScript file that seglab-export wrote
    (:mod:`seglab.inference.runners`): the same Predictor then runs it through onnxruntime (on
    the CPU, or with onnxruntime-gpu for ``device="cuda"``) or ``torch.jit.load``."""
    if exported_format(path):
        net, card = load_exported(path, device)
        check_expected(Path(path), card, num_classes, architecture)
        ckpt_path = Path(path)
        if isinstance(net, OnnxNet):
            device = "cpu"  # onnxruntime takes and gives CPU arrays, whatever its provider
    else:
        net, card, ckpt_path = load_network(path, num_classes, architecture)
    preprocessing = Preprocessing(card.in_channels, card.mean, card.std, card.max_value_16bit)
    predictor = Predictor(
        net,
        preprocessing,
        card.class_names,
        palette=card.palette,
        ignore_index=card.ignore_index,
        device=device,
        **predictor_options,
    )
    predictor.card, predictor.checkpoint_path = card, ckpt_path
    return predictor
