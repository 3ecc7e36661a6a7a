"""Accuracy at a fixed budget, head to head: ``experiment=isbi2012`` against the plain-PyTorch smp
baseline (``benchmarks/baseline_isbi.py``), the same budget each, one after the other in one job.

    python -m benchmarks isbi [--minutes 10] [--threads N] [--out DIR] [-- overrides ...]
    python benchmarks/isbi.py --minutes 2 -- model.base_width=32
    python benchmarks/isbi.py --steps 470 -- optimizer.lr=3e-3    # seglab alone, a step budget
    python benchmarks/isbi.py --folds 5 [--steps 470]             # seglab alone, k-fold CV
    python benchmarks/isbi.py --alone -- data.batch_size=8        # seglab alone, the time budget

Both read slices 00-24 for training and score the membrane Dice over the full val slices 25-29:
seglab's ``val/dice/membrane`` (best and last validation epoch, from the run's metrics CSV) and the
baseline's same measure (best and final evaluation). Hydra overrides after ``--`` go to
``train.py`` (e.g. other widths or schedules to compare). Each side's outputs land in ``--out``
(default ``logs/benchmarks/isbi/<time>``). Run it on an otherwise idle machine: the two sides run
one after the other, so load that changes between them changes the comparison.

``--steps N`` replaces the time budget by ``N`` optimiser steps (``trainer.max_time=null``,
``scheduler=warmup_cosine``: the same warm-up + cosine over steps that ``time_cosine`` follows over
time): on a loaded machine, where minutes buy a varying number of steps, it compares recipes at
equal steps (~470 steps of the preset are 10 idle minutes on 2 cores). It runs seglab's side alone
(the baseline has a time budget only). ``--folds K`` runs seglab's side once per fold of slices
00-29 (``data.dataset.num_folds=K``, ``fold=k``: the folder data's seeded folds, 6 slices each for
K=5, instead of val 25-29) and prints each fold's figures with their mean and standard deviation.
``--alone`` runs seglab's side alone at the time budget (one lever against the preset's figures).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
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


def budget_overrides(minutes: float, steps: int | None) -> list[str]:
    """seglab's budget: ``trainer.max_time`` (the preset's ``time_cosine``), or ``steps``
    optimiser steps with the same schedule over steps."""
    if steps is None:
        return [f"trainer.max_time={hms(minutes)}"]
    return [f"trainer.max_steps={steps}", "trainer.max_time=null", "scheduler=warmup_cosine"]


def fold_overrides(fold: int, folds: int) -> list[str]:
    """Fold ``fold`` of ``folds`` over all 30 slices, in place of the fixed val slices 25-29."""
    return [
        "data.dataset.val_stems=null",
        f"data.dataset.num_folds={folds}",
        f"data.dataset.fold={fold}",
    ]


def run_seglab(
    minutes: float, out: Path, overrides: list[str], threads: int | None, steps: int | None = None
) -> dict:
    run_dir = out / "seglab"
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(REPO_ROOT / "train.py"), "experiment=isbi2012"]
    argv += [*budget_overrides(minutes, steps), f"hydra.run.dir={run_dir}", "test=false"]
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
    return {
        "name": "seglab experiment=isbi2012 " + " ".join(overrides),
        "seconds": round(time.monotonic() - start, 1),
        **validation_figures(run_dir / "csv" / "metrics.csv"),
    }


def validation_figures(metrics_csv: Path) -> dict:
    """Steps, best and last ``val/dice/membrane`` and the number of validations of a run's
    metrics CSV (Lightning's CSVLogger)."""
    with open(metrics_csv, newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("val/dice/membrane")]
    dice = [float(row["val/dice/membrane"]) for row in rows]
    return {
        "steps": max(int(row["step"]) for row in rows) if rows else 0,
        "best_membrane_dice": max(dice, default=float("nan")),
        "final_membrane_dice": dice[-1] if dice else float("nan"),
        "validations": len(dice),
    }


def run_folds(
    minutes: float,
    out: Path,
    overrides: list[str],
    threads: int | None,
    steps: int | None,
    folds: int,
) -> list[dict]:
    """seglab's side once per fold (``out/fold<k>``), then a row of the folds' mean and spread."""
    rows = []
    for fold in range(folds):
        fold_out = out / f"fold{fold}"
        row = run_seglab(
            minutes, fold_out, [*overrides, *fold_overrides(fold, folds)], threads, steps
        )
        rows.append({**row, "name": f"fold {fold}/{folds} " + " ".join(overrides)})
    rows.append(fold_summary(rows))
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    return rows


def fold_summary(rows: list[dict]) -> dict:
    """Mean of the folds' figures, with their standard deviation in ``*_std``."""
    summary = {"name": f"mean of {len(rows)} folds (std)", "seconds": ""}
    for key in ("steps", "best_membrane_dice", "final_membrane_dice"):
        values = [row[key] for row in rows]
        summary[key] = statistics.fmean(values)
        summary[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return summary


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


def table(rows: list[dict], minutes: float, budget: str | None = None, val: str = "25-29") -> str:
    lines = [
        f"ISBI 2012 membrane Dice (val slices {val}) within {budget or f'{minutes:g} min'}",
        "| run | steps | best Dice | final Dice | wall s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        best, final = (figure(row, key) for key in ("best_membrane_dice", "final_membrane_dice"))
        lines.append(f"| {row['name']} | {row['steps']:g} | {best} | {final} | {row['seconds']} |")
    return "\n".join(lines)


def figure(row: dict, key: str) -> str:
    std = row.get(key + "_std")
    return f"{row[key]:.4f}" + ("" if std is None else f" ± {std:.4f}")


def run_chosen(args: argparse.Namespace, overrides: list[str]) -> str:
    """The table of what the options ask for: folds, seglab at a step budget, or head to head."""
    budget = None if args.steps is None else f"{args.steps} steps"
    if args.folds:
        rows = run_folds(args.minutes, args.out, overrides, args.threads, args.steps, args.folds)
        return table(rows, args.minutes, budget, val=f"of each of {args.folds} folds of 00-29")
    if args.steps is not None or args.alone:
        rows = [run_seglab(args.minutes, args.out, overrides, args.threads, args.steps)]
        (args.out / "results.json").write_text(json.dumps(rows, indent=1))
        return table(rows, args.minutes, budget)
    return table(run(args.minutes, args.out, overrides, args.threads), args.minutes)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--steps", type=positive, default=None, help="a step budget instead")
    parser.add_argument("--folds", type=positive, default=None, help="k-fold CV of seglab alone")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of both")
    parser.add_argument("--alone", action="store_true", help="seglab alone, no baseline")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "logs/benchmarks/isbi" / stamp)
    args = parser.parse_args(argv)
    if args.folds == 1:
        parser.error("--folds 1 leaves no training slices: use --folds 2 or more (e.g. 5)")
    print(run_chosen(args, overrides))


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number >= 1")
    return value


if __name__ == "__main__":
    main()
