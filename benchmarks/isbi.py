"""Accuracy at a fixed budget, head to head: ``experiment=isbi2012`` against the plain-PyTorch smp
baseline (``benchmarks/baseline_isbi.py``), the same budget each, one after the other in one job.

    python -m benchmarks isbi [--minutes 10] [--threads N] [--out DIR] [-- overrides ...]
    python benchmarks/isbi.py --minutes 2 -- model.base_width=32

Both read slices 00-24 for training and score the membrane Dice over the full val slices 25-29:
seglab's ``val/dice/membrane`` (best and last validation epoch, from the run's metrics CSV) and the
baseline's same measure (best and final evaluation). Hydra overrides after ``--`` go to
``train.py`` (e.g. other widths or schedules to compare). Each side's outputs land in ``--out``
(default ``logs/benchmarks/isbi/<time>``). Run it on an otherwise idle machine: the two sides run
one after the other, so load that changes between them changes the comparison.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def hms(minutes: float) -> str:
    seconds = round(minutes * 60)
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def environment(threads: int | None) -> dict[str, str]:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "offline"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_seglab(minutes: float, out: Path, overrides: list[str], threads: int | None) -> dict:
    run_dir = out / "seglab"
    argv = [sys.executable, str(REPO_ROOT / "train.py"), "experiment=isbi2012"]
    argv += [f"trainer.max_time={hms(minutes)}", f"hydra.run.dir={run_dir}", "test=false"]
    start = time.monotonic()
    with open(out / "seglab.log", "w") as log:
        subprocess.run(
            [*argv, *overrides],
            cwd=REPO_ROOT,
            env=environment(threads),
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("val/dice/membrane")]
    dice = [float(row["val/dice/membrane"]) for row in rows]
    steps = max(int(row["step"]) for row in rows) if rows else 0
    return {
        "name": "seglab experiment=isbi2012 " + " ".join(overrides),
        "steps": steps,
        "seconds": round(time.monotonic() - start, 1),
        "best_membrane_dice": max(dice, default=float("nan")),
        "final_membrane_dice": dice[-1] if dice else float("nan"),
        "validations": len(dice),
    }


def run_baseline(minutes: float, out: Path, threads: int | None) -> dict:
    result = out / "baseline.json"
    argv = [sys.executable, str(REPO_ROOT / "benchmarks" / "baseline_isbi.py")]
    argv += ["--minutes", str(minutes), "--json", str(result)]
    with open(out / "baseline.log", "w") as log:
        subprocess.run(
            argv,
            cwd=REPO_ROOT,
            env=environment(threads),
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return json.loads(result.read_text())


def run(minutes: float, out: Path, overrides: list[str], threads: int | None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = [run_baseline(minutes, out, threads), run_seglab(minutes, out, overrides, threads)]
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    return rows


def table(rows: list[dict], minutes: float) -> str:
    lines = [
        f"ISBI 2012 membrane Dice (val slices 25-29) within {minutes:g} min",
        "| run | steps | best Dice | final Dice | wall s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['steps']} | {row['best_membrane_dice']:.4f} | "
            f"{row['final_membrane_dice']:.4f} | {row['seconds']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of both")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "logs/benchmarks/isbi" / stamp)
    args = parser.parse_args(argv)
    print(table(run(args.minutes, args.out, overrides, args.threads), args.minutes))


if __name__ == "__main__":
    main()
