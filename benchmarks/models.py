"""seglab's networks beside their closest segmentation_models_pytorch (smp) twins, in one run.

    python benchmarks/models.py [--device cpu|cuda] [--size 256] [--batch 4] [--steps 5]
                                [--threads N] [--models NAME ...]

For every network on random (batch, 3, size, size) images, 4 classes, in training mode:
- parameters, and MACs (= FLOPs / 2, counted by torch.utils.flop_counter on the meta device) of
  the forward pass and of forward + backward;
- the median time of one forward + backward pass (two warm-up steps, then ``--steps`` timed),
  with channels_last off and on. Steps are interleaved (ours, smp, ours, smp, ...) so that the
  machine's noise hits every network alike, and ours/smp is the median of the per-round ratios;
- the peak memory of one forward + backward (after a warm-up step, gradients set to None): on
  CUDA ``torch.cuda.max_memory_allocated`` above what was allocated before the step; on the CPU
  the peak growth of resident memory (VmHWM - VmRSS, Linux) in a fresh process per network, with
  glibc told (MALLOC_MMAP_THRESHOLD_) to return every freed block of 64 KiB or more to the OS, so
  that resident memory follows the tensors that are alive rather than the allocator's cache.

Times depend on the machine and its load: compare ratios, and only within one run. On a CPU that
other processes share, ``--threads 1`` avoids OpenMP threads waiting for a busy core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from seglab.models import ResUNet, UNet

CLASSES = 4


def smp_unet(encoder: str, **kwargs) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    return smp.Unet(encoder, encoder_weights=None, classes=CLASSES, **kwargs)


MODELS: dict[str, Callable[[], torch.nn.Module]] = {
    "ours ResUNet resnet34": lambda: ResUNet(3, CLASSES, encoder="resnet34"),
    "smp Unet resnet34": lambda: smp_unet("resnet34"),
    "ours UNet width 64": lambda: UNet(3, CLASSES, base_width=64, bilinear=False),
    # the classic U-Net's encoder is VGG-13's first 4 blocks (two 3x3 convs per level) + a
    # bottleneck; smp's VGG Unet skips the full-resolution map and its bottleneck is 512 wide
    "smp Unet vgg13_bn depth 4": lambda: smp_unet(
        "vgg13_bn", encoder_depth=4, decoder_channels=(512, 256, 128, 64)
    ),
    "ours UNet width 16 (default)": lambda: UNet(3, CLASSES, base_width=16),
}
PAIRS = [
    ("ours ResUNet resnet34", "smp Unet resnet34"),
    ("ours UNet width 64", "smp Unet vgg13_bn depth 4"),
]
MIB = 2**20


def step(net: torch.nn.Module, images: torch.Tensor) -> None:
    """One forward + backward pass; gradients are freed again."""
    net(images).sum().backward()
    net.zero_grad(set_to_none=True)


def counts(name: str, shape: tuple[int, ...]) -> tuple[float, float, float]:
    """Millions of parameters, GMACs of the forward pass and of forward + backward.

    Shapes are all FlopCounterMode needs: the network runs on the meta device (no compute)."""
    with torch.device("meta"):
        net, images = MODELS[name]().train(), torch.empty(shape)
        with FlopCounterMode(display=False) as forward:
            out = net(images)
        with FlopCounterMode(display=False) as backward:
            out.sum().backward()
    flops = forward.get_total_flops(), backward.get_total_flops()
    return sum(p.numel() for p in net.parameters()) / 1e6, flops[0] / 2e9, sum(flops) / 2e9


def prepare(name: str, args, channels_last: bool) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = MODELS[name]().to(args.device, memory_format=fmt).train()
    images = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    return net, images.to(memory_format=fmt)


def timed_step(net: torch.nn.Module, images: torch.Tensor) -> float:
    if images.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    step(net, images)
    if images.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def proc_status(key: str) -> int:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_step_bytes(name: str, args, channels_last: bool) -> int:
    """Peak memory of one forward + backward above what was in use before it (see the top)."""
    net, images = prepare(name, args, channels_last)
    step(net, images)  # warm-up: lazy initialisations are not part of a step's memory
    if images.is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step(net, images)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
    before = proc_status("VmRSS")
    step(net, images)
    return proc_status("VmHWM") - before


def peak_in_fresh_process(name: str, args, channels_last: bool) -> int:
    command = [sys.executable, __file__, "--peak-of", name, "--device", args.device]
    command += ["--size", str(args.size), "--batch", str(args.batch)]
    command += ["--threads", str(torch.get_num_threads())]
    command += ["--channels-last"] * channels_last
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--peak-of", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peak_of:  # the fresh process of peak_in_fresh_process
        print(json.dumps(peak_step_bytes(args.peak_of, args, args.channels_last)))
        return

    shape = (args.batch, 3, args.size, args.size)
    print(
        f"device {args.device}, {torch.get_num_threads()} threads, batch {shape}, {CLASSES} "
        f"classes, median of {args.steps} fwd+bwd steps after 2 warm-up steps\n"
    )
    names, formats = args.models, (False, True)
    times = {(name, cl): [] for name in names for cl in formats}
    for channels_last in formats:
        built = {name: prepare(name, args, channels_last) for name in names}
        for round_ in range(args.steps + 2):
            for name in names:  # interleaved: ours, smp, ours, smp, ...
                seconds = timed_step(*built[name])
                if round_ >= 2:
                    times[name, channels_last].append(seconds)
        del built
    peaks = {(n, cl): peak_in_fresh_process(n, args, cl) for n in names for cl in formats}

    print(
        "| network | params | GMACs fwd | GMACs fwd+bwd | ms/step | ms/step CL | peak MiB "
        "| peak MiB CL |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        params, forward, total = counts(name, shape)
        cells = [f"{statistics.median(times[name, cl]) * 1000:.0f}" for cl in formats]
        cells += [f"{peaks[name, cl] / MIB:.0f}" for cl in formats]
        print(f"| {name} | {params:.2f}M | {forward:.1f} | {total:.1f} | {' | '.join(cells)} |")

    print("\n| ours / smp | time | time CL | peak memory | peak memory CL | MACs fwd+bwd |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for ours, theirs in PAIRS:
        if ours not in names or theirs not in names:
            continue
        cells = [
            statistics.median(
                [a / b for a, b in zip(times[ours, cl], times[theirs, cl], strict=True)]
            )
            for cl in formats
        ]
        cells += [peaks[ours, cl] / peaks[theirs, cl] for cl in formats]
        cells.append(counts(ours, shape)[2] / counts(theirs, shape)[2])
        print(f"| {ours} / {theirs} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
