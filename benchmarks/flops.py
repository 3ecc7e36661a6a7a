"""FLOP utilisation: each default network's training step in GFLOP/s against this CPU's measured
fp32 matmul peak, in one job, for NCHW / channels_last / bf16 autocast / both (/ torch.compile).

    python benchmarks/flops.py [--threads 1 2] [--size 256] [--batch 4] [--steps 3]
                               [--models unet resunet] [--compile] [--variants NCHW bf16]
                               [--profile [ROWS]]

- FLOPs of one training step (forward, cross-entropy, backward) from
  ``torch.utils.flop_counter.FlopCounterMode`` (the optimiser's element-wise update is not counted:
  a few FLOPs per parameter against billions per step);
- peak: median GFLOP/s of 2048^3 fp32 matmuls (``torch.mm``) on the same thread count, measured
  right before that thread count's networks; the same in bf16 (on CPUs with AMX or AVX512-BF16 a
  bf16 matmul runs several times faster than fp32: bf16 autocast is compared with both);
- time: median of ``--steps`` full steps (zero_grad, forward, loss, backward, AdamW step) after a
  warm-up step, by wall-clock and by CPU time per thread (process CPU time / threads: on a
  machine that others load, the step's cost without the time they hold the cores; with several
  threads it also counts threads spinning while they wait for each other), on random images of
  ``--batch`` x 1 x ``--size`` x ``--size`` (ISBI-like: 1 channel, 2 classes); networks from
  ``conf/model/<name>.yaml``;
- utilisation = step GFLOP/s / matmul peak GFLOP/s, both by wall-clock or both by CPU time.
``--compile`` adds ``torch.compile`` (inductor; its first steps compile for minutes on a CPU).
``--profile`` also profiles one step of each model and variant (``torch.profiler``, after a
warm-up step) and prints its ops by self CPU time, then the step's time by kind of op:
convolutions and matmuls (the counted FLOPs) against batch norm, ReLU, max-pool, concatenation,
copies, the loss and the optimiser (memory-bound: they do few FLOPs per byte moved).
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
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from seglab.config import CONFIG_DIR

MATMUL_N = 2048


def timed(call, repeats: int) -> tuple[float, float]:
    """Median wall-clock seconds and CPU seconds per thread (process CPU time / torch's threads:
    a call's cost without the time other processes hold the cores) of ``repeats`` calls, after
    one warm-up call."""
    call()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append((time.process_time() - cpu) / torch.get_num_threads())
    return statistics.median(walls), statistics.median(cpus)


def matmul_peak(repeats: int = 5, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """GFLOP/s of a 2048^3 matmul, by wall-clock and by CPU time."""
    a, b = (torch.randn(MATMUL_N, MATMUL_N, dtype=dtype) for _ in range(2))
    wall, cpu = timed(lambda: torch.mm(a, b), repeats)
    return 2 * MATMUL_N**3 / wall / 1e9, 2 * MATMUL_N**3 / cpu / 1e9


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


VARIANTS = ["NCHW", "channels_last", "bf16", "bf16_channels_last", "compile"]


def prepare(net, images, variant: str):
    """The network, input and autocast context of one variant."""
    if variant in ("channels_last", "bf16_channels_last"):
        net, images = (
            net.to(memory_format=torch.channels_last),
            images.contiguous(memory_format=torch.channels_last),
        )
    if variant == "compile":
        net = torch.compile(net)
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if variant in ("bf16", "bf16_channels_last")
        else contextlib.nullcontext()
    )
    return net, images, autocast


def train_step(net, images, masks, optimizer, autocast) -> None:
    optimizer.zero_grad(set_to_none=True)
    with autocast:
        loss = torch.nn.functional.cross_entropy(net(images).float(), masks)
    loss.backward()
    optimizer.step()


def step_time(net, images, masks, variant: str, steps: int) -> tuple[float, float]:
    net, images, autocast = prepare(net, images, variant)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    return timed(lambda: train_step(net, images, masks, optimizer, autocast), steps)


# ops by what bounds them: convolutions and matmuls do the counted FLOPs, the rest moves memory
CATEGORIES = {
    "convolution / matmul (forward and backward)": ("conv", "mm", "matmul"),
    "batch norm": ("batch_norm",),
    "ReLU": ("relu", "threshold"),
    "max-pool": ("max_pool",),
    "concatenation / slicing": ("cat", "slice", "narrow", "split"),
    "copies / layout": ("copy", "clone", "contiguous", "empty", "zero", "fill"),
    "optimiser (AdamW)": ("foreach", "addcdiv", "lerp", "sqrt", "_fused_adam"),
    "loss": ("softmax", "nll_loss", "cross_entropy"),
}


def category(name: str) -> str:
    name = name.removeprefix("aten::")
    for label, parts in CATEGORIES.items():
        if any(part in name for part in parts):
            return label
    return "other"


def profile_step(net, images, masks, variant: str, rows: int) -> str:
    """One step's ops by self CPU time (after a warm-up step), then the step's time by kind of
    op (convolutions and matmuls against the memory-bound rest)."""
    net, images, autocast = prepare(net, images, variant)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    train_step(net, images, masks, optimizer, autocast)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        train_step(net, images, masks, optimizer, autocast)
    events = profiler.key_averages()
    table = events.table(sort_by="self_cpu_time_total", row_limit=rows)
    by_kind: dict[str, float] = {}
    for event in events:
        kind = category(event.key)
        by_kind[kind] = by_kind.get(kind, 0.0) + event.self_cpu_time_total / 1e6
    total = sum(by_kind.values())
    lines = ["| kind of op | self CPU s | share |", "| --- | ---: | ---: |"]
    for kind, seconds in sorted(by_kind.items(), key=lambda item: -item[1]):
        lines.append(f"| {kind} | {seconds:.3f} | {seconds / total:.0%} |")
    return table + "\n" + "\n".join(lines)


def measure(args) -> list[dict]:
    variants = args.variants or [v for v in VARIANTS if v != "compile"]
    variants += ["compile"] if args.compile and "compile" not in variants else []
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        peak, peak_cpu = matmul_peak()
        bf16_peak, bf16_peak_cpu = matmul_peak(dtype=torch.bfloat16)  # AMX / AVX512-BF16
        print(
            f"matmul peak, {threads} thread(s): fp32 {peak:.1f} GFLOP/s ({peak_cpu:.1f} by CPU "
            f"time), bf16 {bf16_peak:.1f} ({bf16_peak_cpu:.1f} by CPU time)",
            flush=True,
        )
        for name in args.models:
            images = torch.randn(args.batch, 1, args.size, args.size)
            masks = torch.randint(0, 2, (args.batch, args.size, args.size))
            flops = step_flops(build(name), images, masks)
            for variant in variants:
                try:
                    wall, cpu = step_time(build(name), images, masks, variant, args.steps)
                except Exception as error:  # e.g. no C++ compiler for torch.compile
                    print(f"{name} {variant}: failed ({type(error).__name__}: {error})"[:300])
                    continue
                rate, rate_cpu = flops / wall / 1e9, flops / cpu / 1e9
                rows.append(
                    {
                        "threads": threads,
                        "model": name,
                        "variant": variant,
                        "gflop_per_step": flops / 1e9,
                        "s_per_step": wall,
                        "cpu_s_per_step": cpu,
                        "gflops": rate,
                        "gflops_cpu": rate_cpu,
                        "peak_gflops": peak,
                        "utilisation": rate / peak,
                        "cpu_utilisation": rate_cpu / peak_cpu,
                        "bf16_cpu_utilisation": rate_cpu / bf16_peak_cpu,
                    }
                )
                print(table(rows[-1:], header=len(rows) == 1), flush=True)
                if args.profile:
                    print(f"\n{name} {variant}, {threads} thread(s), one step:", flush=True)
                    print(profile_step(build(name), images, masks, variant, args.profile))
    return rows


def table(rows: list[dict], header: bool = True) -> str:
    lines = []
    if header:
        lines += [
            "| threads | model | variant | GFLOP/step | s/step | CPU s/step | GFLOP/s | "
            "of fp32 peak | of fp32 peak (CPU time) | of bf16 peak (CPU time) |",
            "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
    for r in rows:
        lines.append(
            f"| {r['threads']} | {r['model']} | {r['variant']} | {r['gflop_per_step']:.1f} | "
            f"{r['s_per_step']:.3f} | {r['cpu_s_per_step']:.3f} | {r['gflops']:.1f} | "
            f"{r['utilisation']:.0%} | {r['cpu_utilisation']:.0%} | "
            f"{r['bf16_cpu_utilisation']:.0%} |"
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
    parser.add_argument("--variants", nargs="+", default=None, choices=VARIANTS)
    parser.add_argument(
        "--profile", type=int, nargs="?", const=25, default=0, help="profile one step: top ROWS"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    return measure(parse(argv))


if __name__ == "__main__":
    main()
