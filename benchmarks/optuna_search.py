"""Optuna search at scale: the same search with and without pruning, and 1 worker vs 2.

    python benchmarks/optuna_search.py                      # the issue's: 20 trials, default data
    python benchmarks/optuna_search.py --trials 20 --epochs 8 --train-samples 128 \
        --val-samples 32 --num-workers 0                    # reduced (BENCHMARKS.md)

Each case is ``python train.py -m hparams_search=unet_optuna`` (TPE, seed 1234: trial ``n`` draws
from the seed and ``n``, so every case proposes the same first trials) in a fresh sweep folder
under ``--out``; ``two_workers`` starts the unpruned command twice on one sqlite study. Prints one
Markdown table: trials complete / pruned / failed, the epochs trained in all (load-independent),
the wall time, the best value, its trial and when it completed (seconds after the start).
``--seed-noise N`` then trains the first case's best trial again with seeds 1..N: the spread of
those values is the noise of one trial's value. ``--sampler-seeds 1234 1 2`` runs every case once
per sampler seed (``hydra.sweeper.sampler.seed``: other random first trials, so another search) and
adds a row per case of the mean and standard deviation of its best values and wall times: the
search-to-search noise that "the pruned search's best value within noise of the unpruned one" is
judged against.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import optuna

from seglab.compare.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
PRUNER = "hydra/sweeper/pruner"
# name: (workers, overrides)
CASES = {
    "unpruned": (1, []),
    "median": (1, [f"{PRUNER}=median"]),  # the config's n_startup_trials=5, n_warmup_steps=1
    # patient: 3 of 8 epochs before any pruning (and never at the last, as always)
    "median_patient": (1, [f"{PRUNER}=median", "hydra.sweeper.pruner.n_warmup_steps=3"]),
    "median_tuned": (
        1,
        [f"{PRUNER}=median", "hydra.sweeper.pruner.n_startup_trials=3"]
        + ["hydra.sweeper.pruner.n_warmup_steps=0"],
    ),
    "successive_halving": (1, [f"{PRUNER}=successive_halving"]),
    # rungs after 2, 4 and 8 epochs, the better half kept at each
    "successive_halving_patient": (
        1,
        [f"{PRUNER}=successive_halving", "hydra.sweeper.pruner.min_resource=2"]
        + ["hydra.sweeper.pruner.reduction_factor=2"],
    ),
    # successive-halving brackets of several rung sizes (the config's reduction_factor 3)
    "hyperband": (1, [f"{PRUNER}=hyperband"]),
    "two_workers": (2, []),
}


def fixed(args: argparse.Namespace) -> list[str]:
    """The overrides of every training run in every case."""
    return [
        f"trainer.max_epochs={args.epochs}",
        f"data.splits.train.num_samples={args.train_samples}",
        f"data.splits.val.num_samples={args.val_samples}",
        f"data.num_workers={args.num_workers}",
        "logger=csv",
        "callbacks.progress_bar=null",
        "trainer.accelerator=cpu",
        "test=false",
        *args.set,
    ]


def command(sweep_dir: Path, args: argparse.Namespace, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "hparams_search=unet_optuna",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.sweeper.n_trials={args.trials}",
        *fixed(args),
        *extra,
    ]


def seed_noise(case: str, seeds: int, args: argparse.Namespace) -> list[float]:
    """The best trial of ``case`` trained again with seeds 1..``seeds`` (its val/dice_best for
    each): how far a best value moves by the training seed alone."""
    study = load(Path(args.out) / case)
    best = max((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    params = [f"{key}={value}" for key, value in best.params.items()]
    env = {**os.environ, "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
    values = []
    for seed in range(1, seeds + 1):
        run_dir = Path(args.out) / f"{case}-best-seed{seed}"
        subprocess.run(
            [sys.executable, str(ROOT / "train.py"), *fixed(args), *params, f"seed={seed}"]
            + [f"hydra.run.dir={run_dir}"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        values.append(load_run(run_dir, "val/dice_best", "max").value)
    print(f"{case}: best trial {best.number} ({best.value:.4f}) with seeds 1-{seeds}: {values}")
    return values


def load(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(
        study_name="unet_optuna", storage=f"sqlite:///{sweep_dir / 'optuna.db'}"
    )


def run_case(name: str, args: argparse.Namespace, sampler_seed: int | None = None) -> dict:
    """One search of case ``name`` in ``--out``/``name`` (``name-s<seed>`` with a sampler seed)."""
    workers, extra = CASES[name]
    if sampler_seed is not None:
        name = f"{name}-s{sampler_seed}"
        extra = [*extra, f"hydra.sweeper.sampler.seed={sampler_seed}"]
    sweep_dir = Path(args.out) / name
    env = {**os.environ, "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
    if workers > 1:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(max(1, args.threads // workers))
    start = time.time()
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
    wall = time.time() - start
    study = load(sweep_dir)
    return {"case": name, "workers": workers, "exit": ",".join(map(str, codes))} | summary(
        study.trials, start, wall
    )


def summary(trials: list[optuna.trial.FrozenTrial], start: float, wall: float) -> dict:
    """The table row of one case's study (every validation epoch was reported to the trial)."""
    states = [t.state.name for t in trials]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: t.value) if complete else None
    return {
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "epochs": sum(len(t.intermediate_values) for t in trials),
        "wall s": f"{wall:.0f}",
        "best": f"{best.value:.4f}" if best else "-",
        "best trial": best.number if best else "-",
        "best at s": f"{best.datetime_complete.timestamp() - start:.0f}" if best else "-",
    }


def seeds_summary(name: str, rows: list[dict]) -> dict:
    """The row of case ``name`` over its sampler seeds: mean (standard deviation) of the best
    values, wall times and epochs."""

    def spread(key: str, digits: int) -> str:
        values = [float(row[key]) for row in rows if row[key] != "-"]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.{digits}f} ({std:.{digits}f})" if values else "-"

    return {key: "" for key in rows[0]} | {
        "case": f"{name}: mean (std) of {len(rows)} seeds",
        "pruned": spread("pruned", 1),
        "epochs": spread("epochs", 1),
        "wall s": spread("wall s", 0),
        "best": spread("best", 4),
    }


def run_cases(args: argparse.Namespace) -> list[dict]:
    """Every case once, or once per sampler seed followed by its mean row."""
    rows = []
    for name in args.cases:
        seeds = args.sampler_seeds or [None]
        case_rows = []
        for seed in seeds:
            case_rows.append(run_case(name, args, seed))
            print(f"{case_rows[-1]['case']}: {case_rows[-1]}", file=sys.stderr, flush=True)
        rows += case_rows
        if args.sampler_seeds:
            rows.append(seeds_summary(name, case_rows))
    return rows


def print_table(rows: list[dict]) -> None:
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key in header) + " |")


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
    parser.add_argument(
        "--cases", nargs="+", choices=sorted(CASES), default=["unpruned", "median", "two_workers"]
    )
    parser.add_argument(
        "--seed-noise",
        type=int,
        default=0,
        metavar="N",
        help="train the first case's best trial again with seeds 1..N and print the values",
    )
    parser.add_argument(
        "--sampler-seeds",
        type=int,
        nargs="+",
        default=None,
        metavar="SEED",
        help="run every case once per sampler seed and add the mean and spread of its best values",
    )
    parser.add_argument(
        "--noise-only",
        action="store_true",
        help="with --seed-noise: the first case's searches are in --out already, run no case",
    )
    args = parser.parse_args()
    if args.noise_only and not args.seed_noise:
        parser.error("--noise-only needs --seed-noise N")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if not args.noise_only:
        print_table(run_cases(args))
    if args.seed_noise:
        first = args.cases[0] + (f"-s{args.sampler_seeds[0]}" if args.sampler_seeds else "")
        values = seed_noise(first, args.seed_noise, args)
        low, high = min(values), max(values)
        print(f"seed noise: {low:.4f}-{high:.4f} (spread {high - low:.4f})")


if __name__ == "__main__":
    main()
