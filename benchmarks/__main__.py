"""Issue 15's benchmarks in one command, one summary table at the end.

    python -m benchmarks                 # overhead, flops, startup (~5-10 min on 2 idle cores)
    python -m benchmarks isbi            # also the 10-minute ISBI head to head (+ ~22 min)
    python -m benchmarks isbi --minutes 2 --only isbi

Each part is also a script with its own options: benchmarks/overhead.py, flops.py, startup.py,
isbi.py (and baseline_isbi.py). Every ratio is measured within one job; absolute times depend
on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


def summary(results: dict) -> str:
    lines = [
        f"## Summary ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f})",
        "| benchmark | figure |",
        "| --- | --- |",
    ]
    if "overhead" in results:
        r = results["overhead"]
        lines.append(
            f"| overhead ({r['threads']} thread) | seglab / plain = {r['ratio']:.3f} "
            f"({r['seglab_steps_per_s']:.2f} vs {r['plain_steps_per_s']:.2f} steps/s; "
            f"{r['cpu_ratio']:.3f} by CPU time) |"
        )
    from benchmarks.flops import VARIANTS

    for row in results.get("flops", []):
        if row["variant"] in VARIANTS:
            lines.append(
                f"| {row['model']} {row['variant']}, {row['threads']} thread(s) | "
                f"{row['gflops']:.0f} GFLOP/s = {row['utilisation']:.0%} of the "
                f"{row['peak_gflops']:.0f} GFLOP/s matmul peak ({row['cpu_utilisation']:.0%} "
                "by CPU time) |"
            )
    if "startup" in results:
        r = results["startup"]
        first = r["phases"].get("total to the first step's end", float("nan"))
        job = r["phases"].get("total to the job's end", float("nan"))
        lines.append(f"| `python train.py --help` | {r['python train.py --help']:.2f} s |")
        lines.append(f"| `python train.py` to the first step's end | {first:.2f} s |")
        lines.append(f"| `python train.py` (one step) to the job's end | {job:.2f} s |")
    for row in results.get("isbi", []):
        lines.append(
            f"| ISBI {row['name']} | best membrane Dice {row['best_membrane_dice']:.4f}, "
            f"final {row['final_membrane_dice']:.4f}, {row['steps']} steps |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="*", help="'isbi' adds the ISBI head to head")
    parser.add_argument("--only", nargs="+", default=None, help="run only these parts")
    parser.add_argument("--minutes", type=float, default=10.0, help="ISBI budget")
    args = parser.parse_args()
    parts = args.only or ["overhead", "flops", "startup", *args.parts]
    results: dict = {}
    if "overhead" in parts:
        from benchmarks import overhead

        print("## Framework overhead")
        results["overhead"] = overhead.main([])
    if "flops" in parts:
        from benchmarks import flops

        print("\n## FLOP utilisation")
        results["flops"] = flops.main([])
    if "startup" in parts:
        from benchmarks import startup

        print("\n## Startup")
        results["startup"] = startup.main([])
    if "isbi" in parts:
        from pathlib import Path

        from benchmarks import isbi

        out = Path("logs/benchmarks/isbi") / time.strftime("%Y-%m-%d_%H-%M-%S")
        rows = isbi.run(args.minutes, out, [], None)
        print("\n" + isbi.table(rows, args.minutes))
        results["isbi"] = rows
    print("\n" + summary(results))


if __name__ == "__main__":
    main()
