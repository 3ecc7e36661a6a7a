"""argmax over the class dimension on the CPU: ``scores.argmax(1)`` against
``scores.max(1).indices`` (what ``seglab.utils.argmax.class_argmax`` computes), in NCHW and
channels_last, fp32 and bf16.

    python benchmarks/argmax.py [--threads 1] [--repeats 20] [--shapes 8x4x64x64 4x2x256x256 ...]

The default shapes are the default config's training batch (8 x 4 classes x 64 x 64), the ISBI
preset's (4 x 2 x 256 x 256) and VOC's (8 x 21 x 256 x 256). Each line gives milliseconds per
call of both and their ratio; both give the same indices (checked on every shape).
"""

from __future__ import annotations

import argparse
import time

import torch

from seglab.utils.argmax import class_argmax

SHAPES = ["8x4x64x64", "4x2x256x256", "8x21x256x256"]


def milliseconds(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def measure(shapes: list[str], repeats: int) -> list[dict]:
    rows = []
    for shape in shapes:
        size = tuple(int(n) for n in shape.split("x"))
        for dtype in (torch.float32, torch.bfloat16):
            for layout in ("NCHW", "channels_last"):
                scores = torch.randn(size).round(decimals=1).to(dtype)  # ties included
                if layout == "channels_last":
                    scores = scores.contiguous(memory_format=torch.channels_last)
                assert torch.equal(class_argmax(scores), scores.argmax(1))
                argmax = milliseconds(lambda s=scores: s.argmax(1), repeats)
                ours = milliseconds(lambda s=scores: class_argmax(s), repeats)
                rows.append(
                    {
                        "shape": shape,
                        "dtype": str(dtype).removeprefix("torch."),
                        "layout": layout,
                        "argmax ms": argmax,
                        "max().indices ms": ours,
                        "speed-up": argmax / ours,
                    }
                )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| shape | dtype | layout | argmax(1) ms | max(1).indices ms | speed-up |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['dtype']} | {r['layout']} | {r['argmax ms']:.3f} "
            f"| {r['max().indices ms']:.3f} | {r['speed-up']:.1f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--shapes", nargs="+", default=SHAPES)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = measure(args.shapes, args.repeats)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
