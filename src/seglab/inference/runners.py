"""Exported networks as the :class:`~seglab.inference.Predictor` takes them.

- ``.onnx`` files run through onnxruntime (:class:`OnnxNet`: an ``nn.Module`` whose forward is an
  ``InferenceSession``; ``CPUExecutionProvider``, or ``CUDAExecutionProvider`` with
  onnxruntime-gpu for ``device="cuda"``). An ONNX file is a graph of operators: loading it runs
  no code from it. onnxruntime is the optional extra ``export`` (``pip install "seglab[export]"``).
- TorchScript files (a torch zip archive holding ``extra/seglab.json``, as seglab-export writes)
  load with ``torch.jit.load``. A TorchScript file is a program for TorchScript's interpreter (no
  Python runs, but its code does): load only files you trust.

Both carry their :class:`~seglab.inference.card.ModelCard` (class names, normalisation,
in_channels, palette, size multiple, version), read back by :func:`load_exported`.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import CompactHydraException
from torch import nn

from seglab.checkpoints import CheckpointError
from seglab.inference.card import ModelCard

INSTALL_HINT = 'pip install "seglab[export]"'
CARD_KEY = "seglab"  # ONNX metadata_props key of the card (JSON)
EXPORT_KEY = "seglab_export"  # format, exporter, source checkpoint, torch version (JSON)
TORCHSCRIPT_CARD_FILE = "seglab.json"  # TorchScript extra file of the card


class MissingExtra(CompactHydraException, ImportError):
    """An optional dependency is not installed; the message names the extra to install (Hydra
    tasks print it without a traceback)."""


def require(module: str, what: str) -> Any:
    """Import ``module`` or raise :class:`MissingExtra` naming ``what`` needs it and the fix."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtra(
            f"{what} needs {module}, which could not be imported ({error}). Install seglab's "
            f"export extra: {INSTALL_HINT}"
        ) from error


def exported_format(path: str | Path) -> str | None:
    """``"onnx"`` for a ``.onnx`` file, ``"torchscript"`` for a torch archive holding
    ``extra/seglab.json``, None for anything else (a checkpoint, a run folder)."""
    path = Path(path)
    if not path.is_file():
        return None
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            suffix = f"/extra/{TORCHSCRIPT_CARD_FILE}"
            if any(name.endswith(suffix) for name in archive.namelist()):
                return "torchscript"
    return None


def card_of(text: str | bytes | None, path: Path) -> ModelCard:
    if not text:
        raise CheckpointError(
            f"{path} carries no seglab model card in its metadata: export the checkpoint with "
            "seglab-export (python export.py ckpt_path=...), which stores it"
        )
    try:
        return ModelCard.from_dict(json.loads(text))
    except (ValueError, TypeError) as error:
        raise CheckpointError(
            f"{path}: its seglab model card cannot be read ({error}): export it again"
        ) from None


def onnx_providers(ort, device: str) -> list[str]:
    if str(device) in ("auto", "cpu"):
        return ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        raise ValueError(
            f"device={device} for an ONNX file needs onnxruntime's CUDAExecutionProvider, which "
            f"this onnxruntime lacks ({ort.get_available_providers()}): pip install "
            "onnxruntime-gpu, or use device=cpu"
        )
    raise ValueError(f"device={device} is not available for ONNX files: use cpu or cuda")


class OnnxNet(nn.Module):
    """An ONNX file seglab exported, run by onnxruntime, with the network attributes the
    Predictor needs (``in_channels``, ``num_classes``, ``size_multiple``) from its card.

    ``threads``: onnxruntime's intra-op threads; None: ``torch.get_num_threads()``, so that
    ``torch.set_num_threads`` governs both runtimes alike.
    """

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        super().__init__()
        ort = require("onnxruntime", f"Running the ONNX file {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=onnx_providers(ort, device)
            )
        except Exception as error:  # onnxruntime raises its own Fail / InvalidProtobuf types
            if isinstance(error, ValueError):
                raise
            raise CheckpointError(
                f"{path} is not an ONNX model onnxruntime can load "
                f"({str(error).splitlines()[0]}): export it again with seglab-export"
            ) from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.card = card_of(metadata.get(CARD_KEY), Path(path))
        self.input_name = self.session.get_inputs()[0].name
        self.in_channels = self.card.in_channels
        self.num_classes = self.card.num_classes
        self.size_multiple = self.card.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        (logits,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(logits).to(x.device)


def load_torchscript(path: Path, device: str = "cpu") -> tuple[nn.Module, ModelCard]:
    extra = {TORCHSCRIPT_CARD_FILE: ""}
    location = "cpu" if str(device) == "auto" else device
    try:
        module = torch.jit.load(str(path), map_location=location, _extra_files=extra)
    except RuntimeError as error:
        raise CheckpointError(
            f"{path} is not a TorchScript file torch can load ({str(error).splitlines()[0]}): "
            "export it again with seglab-export format=torchscript"
        ) from None
    return module.eval(), card_of(extra[TORCHSCRIPT_CARD_FILE], path)


def load_exported(path: str | Path, device: str = "cpu") -> tuple[nn.Module, ModelCard]:
    """``(network, card)`` of an exported ONNX or TorchScript file (see module docstring)."""
    path = Path(path)
    kind = exported_format(path)
    if kind == "onnx":
        net = OnnxNet(path, device)
        return net, net.card
    if kind == "torchscript":
        return load_torchscript(path, device)
    raise CheckpointError(
        f"{path} is neither an .onnx file nor a TorchScript file seglab exported: pass one of "
        "those, or a .ckpt file / run folder"
    )
