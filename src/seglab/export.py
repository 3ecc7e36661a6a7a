"""The export task: ``python export.py ckpt_path=<file or run folder> format=onnx|torchscript
[output=<file or folder>]`` or ``seglab-export ...`` (see ``conf/export.yaml``).

Loads the checkpoint safely (:func:`seglab.inference.loading.load_network`), writes it as ONNX or
TorchScript with dynamic batch, height and width and its model card as metadata
(:mod:`seglab.inference.export`), then runs the written file (onnxruntime for ONNX) and PyTorch
on the same inputs (random ones of ``check_sizes``, and the images of ``check_input``) and prints
the max abs difference of the logits per input; above ``tolerance`` the file is removed and the
task fails. Without ``output`` the file is written beside the checkpoint
(``<run>/checkpoints/<stem>.onnx`` or ``.pt``).
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from seglab.inference.export import FORMATS, ONNX_EXPORTERS, ExportError

log = logging.getLogger(__name__)

MAX_CHECK_IMAGES = 4  # images of check_input compared (the first ones)


def one_of(key: str, value: Any, valid: tuple[str, ...]) -> ExportError:
    close = difflib.get_close_matches(str(value), valid, n=1, cutoff=0.5)
    hint = f" (did you mean {key}={close[0]}?)" if close else ""
    return ExportError(f"{key}={value} is not known{hint}: use one of {', '.join(valid)}")


def check_settings(cfg: DictConfig) -> None:
    if not cfg.get("ckpt_path"):
        raise ExportError("ckpt_path is not set: add ckpt_path=<file.ckpt or run folder>")
    if cfg.get("format") not in FORMATS:
        raise one_of("format", cfg.get("format"), tuple(FORMATS))
    if cfg.get("onnx_exporter") not in ONNX_EXPORTERS:
        raise one_of("onnx_exporter", cfg.get("onnx_exporter"), ONNX_EXPORTERS)
    if not float(cfg.get("tolerance")) > 0:
        raise ExportError(f"tolerance={cfg.get('tolerance')} must be positive, e.g. 1e-4")
    if not cfg.get("check_sizes") and not cfg.get("check_input"):
        raise ExportError("check_sizes is empty and check_input unset: give inputs to compare on")


def output_path(cfg: DictConfig, ckpt_path: Path) -> Path:
    """The file to write: ``output`` (a file, or a folder to write ``<stem><suffix>`` into), by
    default beside the checkpoint; ONNX files must end in .onnx (predict recognises them so)."""
    suffix = FORMATS[cfg.format]
    output = cfg.get("output")
    if not output:
        return ckpt_path.with_suffix(suffix)
    path = Path(output)
    if path.is_dir() or str(output).endswith("/"):
        return path / f"{ckpt_path.stem}{suffix}"
    if cfg.format == "onnx" and path.suffix.lower() != ".onnx":
        raise ExportError(f"output={output}: an ONNX file's name must end in .onnx")
    if cfg.format == "torchscript" and path.suffix.lower() in (".onnx", ".ckpt"):
        raise ExportError(
            f"output={output}: name the TorchScript file <name>.pt, not {path.suffix}"
        )
    return path


def check_writable(path: Path) -> None:
    """Create ``path``'s folder and write a temporary file into it, or stop before any work."""
    from seglab.predict import PredictError, check_output

    try:
        check_output(str(path.parent))
    except PredictError as error:
        raise ExportError(f"output={path}: {error}") from None


def real_inputs(pattern: str | None, card) -> list:
    """``(file name, (1, C, H, W) tensor)`` of the first images of ``check_input``, read and
    preprocessed as predict does."""
    if not pattern:
        return []
    from seglab.data.io import read_image
    from seglab.inference import Preprocessing
    from seglab.predict import IMAGE_SUFFIXES, PredictError, list_inputs

    pre = Preprocessing(card.in_channels, card.mean, card.std, card.max_value_16bit)
    try:
        files = [p for p in list_inputs(pattern) if p.suffix.lower() in IMAGE_SUFFIXES]
    except PredictError as error:
        raise ExportError(f"check_{error}") from None
    if not files:
        raise ExportError(f"check_input={pattern} holds no images ({'/'.join(IMAGE_SUFFIXES)})")
    return [
        (path.name, pre.to_tensor(read_image(path, None, card.max_value_16bit)))
        for path in files[:MAX_CHECK_IMAGES]
    ]


def write(cfg: DictConfig, net, card, ckpt_path: Path, path: Path) -> None:
    from seglab.inference.export import export_metadata, export_onnx, export_torchscript

    exporter = cfg.onnx_exporter if cfg.format == "onnx" else None
    metadata = export_metadata(card, ckpt_path, cfg.format, exporter)
    how = f"onnx, {exporter} exporter" if exporter else "torchscript, torch.jit.script"
    log.info("Exporting %s to %s (%s)", ckpt_path, path, how)
    try:
        if cfg.format == "onnx":
            export_onnx(net, path, metadata, exporter, cfg.get("opset"))
        else:
            export_torchscript(net, path, metadata)
    except ImportError:
        raise
    except Exception as error:
        path.unlink(missing_ok=True)
        other = "onnx_exporter=legacy" if exporter == "dynamo" else "format=onnx"
        raise ExportError(
            f"exporting {card.target} ({how}) failed: {type(error).__name__}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}. Try {other}; "
            "HYDRA_FULL_ERROR=1 shows the exporter's traceback"
        ) from error


def report(rows: list[dict[str, Any]], path: Path, tolerance: float) -> None:
    from seglab.utils.tables import markdown_table

    table = [
        {
            "input": row["input"],
            "max_abs_diff": f"{row['max_abs_diff']:.2e}",
            "mask_agreement": f"{row['mask_agreement']:.6f}",
        }
        for row in rows
    ]
    log.info("Exported model vs PyTorch:\n%s", markdown_table(table, ["max_abs_diff"]))
    worst = max(row["max_abs_diff"] for row in rows)
    size = path.stat().st_size / 2**20
    log.info("Wrote %s (%.2f MiB): max abs difference %.2e <= %g", path, size, worst, tolerance)


def export(cfg: DictConfig) -> dict[str, Any]:
    """Run the export task; returns ``{"path", "max_abs_diff", "rows"}``."""
    check_settings(cfg)
    from seglab.inference.export import check_export, check_exportable, check_inputs
    from seglab.inference.loading import find_checkpoint, load_network

    try:
        ckpt_path = find_checkpoint(cfg.ckpt_path)
        path = output_path(cfg, ckpt_path)
        check_writable(path)
        net, card, ckpt_path = load_network(ckpt_path)
    except FileNotFoundError as error:
        raise ExportError(str(error)) from None
    check_exportable(net, ckpt_path)
    net = net.cpu().eval()
    images = real_inputs(cfg.get("check_input"), card)
    inputs = check_inputs(card.in_channels, cfg.get("check_sizes") or [], cfg.check_batch, images)
    write(cfg, net, card, ckpt_path, path)
    rows = check_export(path, net, inputs, float(cfg.tolerance))
    report(rows, path, float(cfg.tolerance))
    worst = max(row["max_abs_diff"] for row in rows)
    return {"path": str(path), "max_abs_diff": worst, "rows": rows}


def task(cfg: DictConfig) -> None:
    """The job ``seglab.cli.export`` runs (Hydra's task function)."""
    export(cfg)


if __name__ == "__main__":
    from seglab import cli

    cli.export()
