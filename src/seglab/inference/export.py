"""Export a trained network to ONNX or TorchScript, with its model card, and check the file.

- **ONNX** through ``torch.onnx.export``: by default the dynamo-based exporter
  (``dynamo=True``: ``torch.export`` + onnxscript, torch's default since 2.9), or the
  TorchScript-based one (``exporter="legacy"``, deprecated by torch, ~10x quicker to export).
  Batch, height and width are dynamic (named ``batch``, ``height``, ``width`` in the graph): the
  network's pad to its size multiple and crop back are in the graph
  (:func:`seglab.models.base.pad_to_multiple`), so one file takes every image size. The model
  card is stored in the model's ``metadata_props`` (key ``seglab``, JSON), with the export's own
  facts under ``seglab_export``.
- **TorchScript** through ``torch.jit.script`` (control flow kept, so any size works), the card
  stored as the extra file ``seglab.json`` (``torch.jit.load(path, _extra_files=...)``).

:func:`check_export` runs the file as it will be used (:func:`seglab.inference.runners.
load_exported`, onnxruntime for ONNX) beside the PyTorch network on the same inputs and fails
with :class:`ExportError` when the logits differ by more than the tolerance.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import CompactHydraException

from seglab.inference.card import ModelCard
from seglab.inference.runners import (
    CARD_KEY,
    EXPORT_KEY,
    TORCHSCRIPT_CARD_FILE,
    load_exported,
    require,
)

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
ONNX_EXPORTERS = ("dynamo", "legacy")
INPUT_NAME, OUTPUT_NAME = "image", "logits"
DOC = (
    "seglab segmentation network. Input 'image': (batch, in_channels, height, width) float32, "
    "normalised as the training data ((pixel / 255 or / max_value_16bit - mean) / std, see the "
    "'seglab' metadata). Output 'logits': (batch, num_classes, height, width) float32; argmax "
    "over the classes gives the mask."
)


class ExportError(CompactHydraException, ValueError):
    """An export that cannot be made or that does not match PyTorch; the message names the fix."""


def check_exportable(net, source: Path) -> None:
    """Only networks that predict every pixel of any size are exported (as the Predictor takes)."""
    if not getattr(net, "pads_input", True):
        raise ExportError(
            f"{source} holds a {type(net).__name__} whose output is smaller than its input "
            "(e.g. UNet padding='valid'), which takes only some sizes: seglab-export writes "
            "networks that take any size (UNet padding='same', ResUNet, smp models)"
        )


def example_input(net) -> torch.Tensor:
    """(2, C, 2m + 1, 3m + 1) for size multiple m: distinct, odd, padded sides for the tracer."""
    m = int(net.size_multiple)
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, net.in_channels, 2 * m + 1, 3 * m + 1, generator=generator)


def export_metadata(card: ModelCard, source: Path, fmt: str, exporter: str | None) -> dict:
    facts = {"format": fmt, "source": str(source), "torch": torch.__version__}
    if exporter:
        facts["exporter"] = exporter
    return {CARD_KEY: json.dumps(card.to_dict()), EXPORT_KEY: json.dumps(facts)}


def export_onnx(net, path: Path, metadata: dict[str, str], exporter: str = "dynamo", opset=None):
    """Write ``net`` to ``path`` as ONNX (dynamic batch, height, width) with ``metadata``."""
    require("onnx", "format=onnx")
    if exporter == "dynamo":
        require("onnxscript", "onnx_exporter=dynamo")
    x = example_input(net)
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": opset}
    for name in ("onnxscript", "onnx_ir"):  # their INFO lines narrate every optimiser pass
        logging.getLogger(name).setLevel(logging.WARNING)
    if exporter == "dynamo":
        dim = torch.export.Dim
        dims = {0: dim("batch"), 2: dim("height"), 3: dim("width")}
        torch.onnx.export(
            net,
            (x,),
            path,
            dynamo=True,
            dynamic_shapes={"x": dims},
            external_data=False,
            verbose=False,
            **names,
        )
    else:
        axes = {0: "batch", 2: "height", 3: "width"}
        names["opset_version"] = opset or 17
        # tracing turns the input checks and the pad's condition into constants (the pad is
        # always traced, see pad_to_multiple): its warnings about that are expected
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                net,
                (x,),
                path,
                dynamo=False,
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                **names,
            )
    write_onnx_metadata(path, metadata)


def write_onnx_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Add ``metadata`` to the model's ``metadata_props``, a ``doc_string``, and name the output
    dimensions as the input's (the dynamo exporter writes the crop's expression there)."""
    import onnx

    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = DOC
    shape = model.graph.output[0].type.tensor_type.shape
    for dim, name in zip(shape.dim, ("batch", None, "height", "width"), strict=True):
        if name:
            dim.dim_param = name
    onnx.save(model, str(path))


def export_torchscript(net, path: Path, metadata: dict[str, str]) -> None:
    """Write ``torch.jit.script(net)`` to ``path``; the card as the extra file seglab.json."""
    scripted = torch.jit.script(net)
    extra = {TORCHSCRIPT_CARD_FILE: metadata[CARD_KEY], f"{EXPORT_KEY}.json": metadata[EXPORT_KEY]}
    torch.jit.save(scripted, str(path), _extra_files=extra)


def check_inputs(
    in_channels: int, sizes: Sequence[Sequence[int]], batch: int, images: Sequence[Any] = ()
) -> list[tuple[str, torch.Tensor]]:
    """``(label, (N, C, H, W) tensor)``: seeded standard-normal inputs (the scale of normalised
    images) of each ``(height, width)`` in ``sizes``, the first one ``batch`` at once, then each
    of ``images`` (preprocessed tensors) as it is."""
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for index, size in enumerate(sizes):
        height, width = (int(v) for v in size)
        n = int(batch) if index == 0 else 1
        x = torch.randn(n, in_channels, height, width, generator=generator)
        inputs.append((f"random {n}x{in_channels}x{height}x{width}", x))
    for label, x in images:
        inputs.append((f"{label} {'x'.join(str(v) for v in x.shape)}", x))
    return inputs


def compare(reference, exported, inputs: list[tuple[str, torch.Tensor]]) -> list[dict[str, Any]]:
    """Per input: the max abs difference of the logits and the share of equal argmax pixels."""
    rows = []
    with torch.inference_mode():
        for label, x in inputs:
            expected, got = reference(x).float(), exported(x).float()
            if got.shape != expected.shape:
                diff, agree = float("inf"), 0.0
            else:
                diff = float((got - expected).abs().max())
                agree = float((got.argmax(1) == expected.argmax(1)).float().mean())
            rows.append({"input": label, "max_abs_diff": diff, "mask_agreement": agree})
    return rows


def check_export(
    path: Path,
    net,
    inputs: list[tuple[str, torch.Tensor]],
    tolerance: float,
) -> list[dict[str, Any]]:
    """Rows of :func:`compare` of the file at ``path`` (run as predict runs it, on the CPU)
    against ``net``; an :class:`ExportError` naming the worst input when one differs by more
    than ``tolerance``. The file's card must read back too."""
    exported, _ = load_exported(path, device="cpu")
    rows = compare(net, exported, inputs)
    worst = max(rows, key=lambda row: row["max_abs_diff"])
    if not np.isfinite(worst["max_abs_diff"]) or worst["max_abs_diff"] > tolerance:
        path.unlink(missing_ok=True)
        raise ExportError(
            f"the exported {path.name} differs from the PyTorch network by "
            f"{worst['max_abs_diff']:.3g} (max abs logit difference, tolerance {tolerance:g}) on "
            f"the input {worst['input']}; the file was removed. Try the other ONNX exporter "
            "(onnx_exporter=legacy or dynamo) or format=torchscript, or accept the difference "
            f"with tolerance={worst['max_abs_diff']:.1g}"
        )
    return rows
