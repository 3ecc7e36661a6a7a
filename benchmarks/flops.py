"""FLOP utilisation: each default network's training step in GFLOP/s against this CPU's measured
fp32 matmul peak, in one job, for NCHW / channels_last / bf16 autocast (/ torch.compile).

    python benchmarks/flops.py [--threads 1 2] [--size 256] [--batch 4] [--steps 3]
                               [--models unet resunet] [--compile]

- FLOPs of one training step (forward, cross-entropy, backward) from
  ``torch.utils.flop_counter.FlopCounterMode`` (the optimiser's element-wise update is not counted:
  a few FLOPs per parameter against billions per step);
- peak: median GFLOP/s of 2048^3 fp32 matmuls (``torch.mm``) on the same thread count, measured
  right before that thread count's networks;
- time: median of ``--steps`` full steps (zero_grad, forward, loss, backward, AdamW step) after a
  warm-up step, on random images of ``--batch`` x 1 x ``--size`` x ``--size`` (ISBI-like: 1 channel,
  2 classes); networks from ``conf/model/<name>.yaml``;
- utilisation = step GFLOP/s / matmul peak GFLOP/s.
``--compile`` adds ``torch.compile`` (inductor; its first steps compile for minutes on a CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import hydra
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from torch.utils.flop_counter import FlopCounterMode

from seglab.config import CONFIG_DIR

MATMUL_N = 2048


def matmul_peak(repeats: int = 5) -> float:
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * MATMUL_N**3 / statistics.median(times) / 1e9


def build(name: str) -> torch.nn.Module:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["data=isbi2012", f"model={name}"])
    torch.manual_seed(0)
    return hydra.utils.instantiate(cfg.model).train()


def step_flops(net: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        torch.nn.functional.cross_entropy(net(images), masks).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def step_time(net, images, masks, variant: str, steps: int) -> float:
    if variant == "channels_last":
        net, images = (
            net.to(memory_format=torch.channels_last),
            images.contiguous(memory_format=torch.channels_last),
        )
    if variant == "compile":
        net = torch.compile(net)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if variant == "bf16"
        else contextlib.nullcontext()
    )
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = torch.nn.functional.cross_entropy(net(images).float(), masks)
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(args) -> list[dict]:
    variants = ["NCHW", "channels_last", "bf16", *(["compile"] if args.compile else [])]
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        peak = matmul_peak()
        for name in args.models:
            images = torch.randn(args.batch, 1, args.size, args.size)
            masks = torch.randint(0, 2, (args.batch, args.size, args.size))
            flops = step_flops(build(name), images, masks)
            for variant in variants:
                try:
                    seconds = step_time(build(name), images, masks, variant, args.steps)
                except Exception as error:  # e.g. no C++ compiler for torch.compile
                    print(f"{name} {variant}: failed ({type(error).__name__}: {error})"[:300])
                    continue
                rate = flops / seconds / 1e9
                rows.append(
                    {
                        "threads": threads,
                        "model": name,
                        "variant": variant,
                        "gflop_per_step": flops / 1e9,
                        "s_per_step": seconds,
                        "gflops": rate,
                        "peak_gflops": peak,
                        "utilisation": rate / peak,
                    }
                )
                print(table(rows[-1:], header=not rows[:-1]), flush=True)
    return rows


def table(rows: list[dict], header: bool = True) -> str:
    lines = []
    if header:
        lines += [
            "| threads | model | variant | GFLOP/step | s/step | GFLOP/s | matmul peak | of peak |",
            "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
    for r in rows:
        lines.append(
            f"| {r['threads']} | {r['model']} | {r['variant']} | {r['gflop_per_step']:.1f} | "
            f"{r['s_per_step']:.3f} | {r['gflops']:.1f} | {r['peak_gflops']:.1f} | "
            f"{r['utilisation']:.0%} |"
        )
    return "\n".join(lines)


def parse(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["unet", "resunet"])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    return measure(parse(argv))


if __name__ == "__main__":
    main()
