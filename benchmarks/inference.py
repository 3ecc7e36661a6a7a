"""seglab's Predictor beside a plain ``net(x).argmax(1)`` loop, tiling, TTA and peak memory.

    python benchmarks/inference.py [--device cpu|cuda] [--size 512] [--images 4] [--rounds 5]
                                   [--width 16] [--depth 4] [--large 2048] [--tile 512]
                                   [--rss-sizes 2048 8192] [--threads N]

On random single-channel uint8 images, one network (seglab's UNet, ``--depth`` / ``--width``,
2 classes, eval mode, random weights), in one job:

- images/s at ``--size`` for the Predictor (tiling off) and for a plain loop over the same arrays
  (``torch.from_numpy`` -> /255, normalise -> ``net(x).argmax(1)`` under ``inference_mode``),
  and for the network alone on tensors made beforehand. Rounds are interleaved (plain, predictor,
  network, ...) so the machine's noise hits all alike; ratios are medians of per-round ratios;
- tiles/s of a tiled prediction of a ``--large`` square image (``--tile`` tiles, 25% overlap,
  gaussian blending, 4 tiles a batch), tiles counted at the network's forward;
- the cost of ``tta=flips`` and ``tta=d4`` relative to none at ``--size``;
- the peak resident memory of one tiled mask prediction of each ``--rss-sizes`` square image, each
  in a fresh process (VmHWM above VmRSS before the call, Linux, glibc told to give freed blocks of
  64 KiB and more back to the OS), beside what the arrays it must hold take: the float32 input,
  the float32 probabilities, MONAI's float32 weight map and the uint8 mask.

Times depend on the machine and its load: compare the ratios, within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seglab.inference import Predictor, Preprocessing
from seglab.models import UNet

MEAN, STD = 0.5, 0.25
MIB = 2**20


def network(args) -> UNet:
    torch.manual_seed(0)
    return UNet(1, 2, depth=args.depth, base_width=args.width).to(args.device).eval()


def predictor(net, args, **kwargs) -> Predictor:
    kwargs.setdefault("tile_size", None)
    return Predictor(net, Preprocessing(1, [MEAN], [STD]), ["a", "b"], device=args.device, **kwargs)


def images(count: int, size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size), dtype=np.uint8) for _ in range(count)]


def timed(function, inputs, device: str) -> float:
    """Seconds for ``function`` over every input (results brought to the CPU, as a user would)."""
    start = time.perf_counter()
    for item in inputs:
        function(item)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def plain_loop(net, device: str):
    def run(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(image).to(device).float().div_(255).sub_(MEAN).div_(STD)
            return net(x[None, None]).argmax(1)[0].cpu().numpy()

    return run


def network_only(net):
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net(x).argmax(1)

    return run


def throughput(args) -> dict:
    net = network(args)
    arrays = images(args.images, args.size)
    pre = Preprocessing(1, [MEAN], [STD])
    tensors = [pre.to_tensor(a).to(args.device) for a in arrays]
    runs = {
        "plain": (plain_loop(net, args.device), arrays),
        "predictor": (predictor(net, args), arrays),
        "network": (network_only(net), tensors),
    }
    for function, inputs in runs.values():  # warm-up
        timed(function, inputs[:1], args.device)
    seconds = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (function, inputs) in runs.items():
            seconds[name].append(timed(function, inputs, args.device))
    ratio = [p / s for p, s in zip(seconds["plain"], seconds["predictor"], strict=True)]
    ratio_net = [n / s for n, s in zip(seconds["network"], seconds["predictor"], strict=True)]
    per_second = {k: args.images / statistics.median(v) for k, v in seconds.items()}
    return {
        "images_per_s": per_second,
        "predictor_vs_plain": statistics.median(ratio),
        "predictor_vs_network_only": statistics.median(ratio_net),
    }


def tiles_per_second(args) -> dict:
    net = network(args)
    tiles = []
    net.register_forward_pre_hook(lambda _, inputs: tiles.append(inputs[0].shape[0]))
    p = predictor(net, args, tile_size=args.tile, tile_batch_size=4)
    image = images(1, args.large)[0]
    p(images(1, args.tile * 2)[0])  # warm-up (imports MONAI)
    tiles.clear()
    seconds = timed(p, [image], args.device)
    return {
        "image": args.large,
        "tile": args.tile,
        "tiles": sum(tiles),
        "s": seconds,
        "tiles_per_s": sum(tiles) / seconds,
    }


def tta_cost(args) -> dict:
    net = network(args)
    arrays = images(args.images, args.size)
    modes = ("none", "flips", "d4")
    runs = {mode: predictor(net, args, tta=mode) for mode in modes}
    for p in runs.values():
        timed(p, arrays[:1], args.device)
    seconds = {mode: [] for mode in modes}
    for _ in range(max(1, args.rounds // 2)):
        for mode, p in runs.items():
            seconds[mode].append(timed(p, arrays, args.device))
    none = statistics.median(seconds["none"])
    return {f"{mode}_vs_none": statistics.median(seconds[mode]) / none for mode in modes[1:]}


def proc_status(key: str) -> int:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_of(size: int, args) -> dict:
    """Peak RSS growth of one tiled mask prediction of a ``size`` x ``size`` uint8 image."""
    p = predictor(network(args), args, tile_size=args.tile, tile_batch_size=4)
    p(images(1, args.tile * 2)[0])  # warm-up: MONAI imported, kernels chosen
    image = np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
    before = proc_status("VmRSS")
    mask = p(image)
    peak = proc_status("VmHWM") - before
    pixels = size * size
    arrays = pixels * (4 + 4 * 2 + 4 + 1)  # float32 input, 2 class probabilities, weights, mask
    return {
        "size": size,
        "peak_MiB": peak / MIB,
        "arrays_MiB": arrays / MIB,
        "peak_over_arrays": peak / arrays,
        "mask": list(mask.shape),
    }


def peak_in_fresh_process(size: int, args) -> dict:
    command = [sys.executable, __file__, "--peak-of", str(size), "--device", args.device]
    command += ["--tile", str(args.tile), "--width", str(args.width), "--depth", str(args.depth)]
    command += ["--threads", str(torch.get_num_threads())]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--large", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--rss-sizes", type=int, nargs="*", default=[2048, 8192])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--peak-of", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peak_of is not None:
        print(json.dumps(peak_of(args.peak_of, args)))
        return
    print(
        json.dumps(
            {
                "device": args.device,
                "threads": torch.get_num_threads(),
                "net": f"UNet depth={args.depth} width={args.width}",
            }
        )
    )
    print(json.dumps({"throughput": throughput(args)}), flush=True)
    print(json.dumps({"tiling": tiles_per_second(args)}), flush=True)
    print(json.dumps({"tta": tta_cost(args)}), flush=True)
    for size in args.rss_sizes:
        print(json.dumps({"peak_rss": peak_in_fresh_process(size, args)}), flush=True)


if __name__ == "__main__":
    main()
