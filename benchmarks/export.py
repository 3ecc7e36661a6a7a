"""onnxruntime vs PyTorch on the CPU: images/s of one network, exported by seglab-export.

    python benchmarks/export.py [--size 512] [--images 4] [--rounds 5] [--width 16] [--depth 4]
                                [--threads N] [--exporters dynamo legacy]

One network (seglab's UNet, ``--depth`` / ``--width``, 1 channel, 2 classes, eval mode, random
weights; the same as ``benchmarks/inference.py``) is exported to ONNX with each of
``--exporters`` (:func:`seglab.inference.export.export_onnx`, as ``export.py`` does) and loaded as
predict loads it (:class:`seglab.inference.runners.OnnxNet`, onnxruntime's CPU provider, as many
intra-op threads as torch uses). In one job, rounds interleaved (torch, onnxruntime, ...) so the
machine's noise hits all alike:

- ``network``: ``--images`` forward passes on ready (1, 1, size, size) float32 tensors, PyTorch
  (``inference_mode``) vs each ONNX file;
- ``predictor``: the same images as uint8 arrays through seglab's Predictor (tiling off), with the
  PyTorch network vs with the onnxruntime one.

Ratios are medians of per-round ratios (onnxruntime images/s over PyTorch's, > 1: onnxruntime
faster); the max abs difference of the logits is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch
from inference import images, network, network_only, predictor, timed

from seglab.inference.card import ModelCard
from seglab.inference.export import export_metadata, export_onnx
from seglab.inference.preprocessing import Preprocessing
from seglab.inference.runners import OnnxNet


def exported(net, folder: Path, exporters: list[str]) -> dict[str, OnnxNet]:
    card = ModelCard(net=net.config, class_names=["a", "b"], in_channels=1)
    runners = {}
    for exporter in exporters:
        path = folder / f"{exporter}.onnx"
        export_onnx(net, path, export_metadata(card, Path("random"), "onnx", exporter), exporter)
        runners[f"onnxruntime_{exporter}"] = OnnxNet(path)
    return runners


def interleaved(runs: dict, rounds: int, count: int) -> dict:
    """images/s of each run (median over rounds) and each one's per-round ratio to the first."""
    for function, inputs in runs.values():  # warm-up
        timed(function, inputs[:1], "cpu")
    seconds = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (function, inputs) in runs.items():
            seconds[name].append(timed(function, inputs, "cpu"))
    first = next(iter(runs))
    return {
        "images_per_s": {k: count / statistics.median(v) for k, v in seconds.items()},
        "vs_" + first: {
            k: statistics.median(b / s for b, s in zip(seconds[first], v, strict=True))
            for k, v in seconds.items()
            if k != first
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--exporters", nargs="+", default=["dynamo", "legacy"])
    args = parser.parse_args()
    args.device = "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    net = network(args)
    arrays = images(args.images, args.size)
    pre = Preprocessing(1, [0.5], [0.25])
    tensors = [pre.to_tensor(a) for a in arrays]
    info = {
        "threads": torch.get_num_threads(),
        "net": f"UNet depth={args.depth} width={args.width}",
    }
    info.update(size=args.size, torch=torch.__version__)
    print(json.dumps(info), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        runners = exported(net, Path(folder), args.exporters)
        with torch.inference_mode():
            diffs = {
                k: float((r(tensors[0]) - net(tensors[0])).abs().max()) for k, r in runners.items()
            }
        print(json.dumps({"max_abs_diff": diffs}), flush=True)
        runs = {"pytorch": (network_only(net), tensors)}
        runs.update({k: (network_only(r), tensors) for k, r in runners.items()})
        print(json.dumps({"network": interleaved(runs, args.rounds, args.images)}), flush=True)
        runs = {"pytorch": (predictor(net, args), arrays)}
        runs.update({k: (predictor(r, args), arrays) for k, r in runners.items()})
        print(json.dumps({"predictor": interleaved(runs, args.rounds, args.images)}), flush=True)


if __name__ == "__main__":
    main()
