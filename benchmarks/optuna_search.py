"""Optuna search at scale: the same search with and without pruning, and 1 worker vs 2.

    python benchmarks/optuna_search.py --trials 20 --epochs 10          # the default synthetic run
    python benchmarks/optuna_search.py --trials 6 --epochs 3 --train-samples 64 --val-samples 32 \
        --num-workers 0                                                 # smaller (BENCHMARKS.md)

Each case is ``python train.py -m hparams_search=unet_optuna`` (TPE, seed 1234) in a fresh sweep
folder under ``--out``; the workers case starts the same command twice on one sqlite study. Prints
a Markdown table: wall time, trials complete / pruned / failed, best value, trials per minute.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]


def command(sweep_dir: Path, args: argparse.Namespace, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "hparams_search=unet_optuna",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.sweeper.n_trials={args.trials}",
        f"trainer.max_epochs={args.epochs}",
        f"data.splits.train.num_samples={args.train_samples}",
        f"data.splits.val.num_samples={args.val_samples}",
        f"data.num_workers={args.num_workers}",
        "logger=csv",
        "callbacks.progress_bar=null",
        "trainer.accelerator=cpu",
        "test=false",
        *args.set,
        *extra,
    ]


def run_case(name: str, args: argparse.Namespace, workers: int, *extra: str) -> dict:
    sweep_dir = Path(args.out) / name
    env = {**os.environ, "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
    if workers > 1:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(max(1, args.threads // workers))
    start = time.perf_counter()
    with ExitStack() as stack:
        logs = [
            stack.enter_context(open(Path(args.out) / f"{name}-{i}.log", "w"))
            for i in range(workers)
        ]
        processes = [
            subprocess.Popen(command(sweep_dir, args, *extra), env=env, stdout=log, stderr=log)
            for log in logs
        ]
        codes = [p.wait() for p in processes]
    wall = time.perf_counter() - start
    study = optuna.load_study(
        study_name="unet_optuna", storage=f"sqlite:///{sweep_dir / 'optuna.db'}"
    )
    states = [t.state.name for t in study.trials]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    return {
        "case": name,
        "workers": workers,
        "exit": ",".join(map(str, codes)),
        "wall s": f"{wall:.0f}",
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "best": f"{max(t.value for t in complete):.4f}" if complete else "-",
        "trials/min": f"{len(states) / wall * 60:.2f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-samples", type=int, default=1024)
    parser.add_argument("--val-samples", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="more overrides for every case")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="logs/benchmarks/optuna")
    parser.add_argument("--cases", nargs="+", default=["unpruned", "median", "two_workers"])
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    median = ["hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=3"]
    cases = {
        "unpruned": (1, []),
        "median": (1, median),
        "two_workers": (2, []),
    }
    rows = [run_case(name, args, *cases[name][:1], *cases[name][1]) for name in args.cases]
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key in header) + " |")


if __name__ == "__main__":
    main()
