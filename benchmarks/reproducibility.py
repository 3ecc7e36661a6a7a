"""Do seeded, deterministic runs of the same config end bit-identical, also when one of them is
stopped by SIGTERM mid-epoch and resumed? (Not in the test suite: under DDP on 2 CPU cores each
tiny run takes one to two minutes.)

    python benchmarks/reproducibility.py [--resume] [overrides ...]

Runs ``python train.py`` with the tiny test config (tests/conftest.py) plus
``trainer.deterministic=true`` and the given overrides (default ``trainer=ddp``: 2 CPU
processes), each into its own folder under a temporary directory: twice straight, or with
``--resume`` once straight and once stopped by a real SIGTERM after training step ``STOP_AFTER``
(``tests/helpers/exactness.py``; every rank then stops after the next step, mid-epoch) and
continued with ``python train.py resume=<its folder>``. Compares the weights of ``last.ckpt``
tensor by tensor (``torch.equal``) and the logged metrics (the metrics CSV byte for byte for two
straight runs; the values for a resumed one, whose rows are rewritten), and with ``--resume``
the sample indices each rank trained on in each epoch (recorded for every batch). Prints one line
per check; exits 1 when a check fails. The single-process CPU cases are tests/test_safety.py
and tests/test_exactness.py.

    python benchmarks/reproducibility.py --resume trainer=ddp data.num_workers=2
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.conftest import TINY, train_script_argv, train_script_env  # noqa: E402
from tests.helpers.exactness import RECORD, read_indices, stop_after  # noqa: E402

SETTINGS = [*TINY, "logger=csv", "test=false", "trainer.deterministic=true"]
DEFAULT = ["trainer=ddp"]
# 32 train samples, batch 4: 8 steps an epoch on one process, 4 per rank on two
RESUME_SETTINGS = ["data.splits.train.num_samples=32"]
STOP_AFTER = 5


def train(folder: Path, overrides: list[str], expect: int = 0) -> None:
    resuming = any(o.startswith("resume=") for o in overrides)  # resume= sets the folder
    argv = train_script_argv([*overrides, *([] if resuming else [f"hydra.run.dir={folder}"])])
    done = subprocess.run(argv, cwd=REPO, env=train_script_env(), capture_output=True, text=True)
    if done.returncode != expect:
        sys.exit(f"train.py exited {done.returncode} in {folder}:\n{done.stderr[-3000:]}")


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def metric_values(run: Path) -> list[dict[str, str]]:
    with open(run / "csv" / "metrics.csv", newline="") as file:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(file)]


def epochs_seen(run: Path) -> dict[tuple[int, int], list[int]]:
    """``{(rank, epoch): sample indices in training order}``, each step counted once."""
    steps = {
        (rank, step): (epoch, indices)
        for rank, epoch, step, indices in read_indices(run / "indices.txt")
    }
    seen: dict[tuple[int, int], list[int]] = defaultdict(list)
    for (rank, _), (epoch, indices) in sorted(steps.items()):
        seen[rank, epoch] += indices
    return dict(seen)


def main() -> int:
    args = sys.argv[1:]
    resume = "--resume" in args
    overrides = [a for a in args if a != "--resume"] or DEFAULT
    settings = [*SETTINGS, *(RESUME_SETTINGS if resume else []), *overrides]
    with tempfile.TemporaryDirectory() as tmp:
        runs = [Path(tmp) / name for name in ("a", "b")]
        if resume:
            train(runs[0], [*settings, *RECORD])
            stopped = [*settings, *RECORD, *stop_after(STOP_AFTER)]
            train(runs[1], stopped, expect=128 + signal.SIGTERM)
            train(runs[1], [f"resume={runs[1]}"])
        else:
            for run in runs:
                train(run, settings)
        first, second = (weights(run) for run in runs)
        same_weights = first.keys() == second.keys() and all(
            torch.equal(first[key], second[key]) for key in first
        )
        if resume:
            same_metrics = metric_values(runs[0]) == metric_values(runs[1])
            seen = [epochs_seen(run) for run in runs]
        else:
            same_metrics = len({(run / "csv" / "metrics.csv").read_bytes() for run in runs}) == 1
    print(f"overrides: {' '.join(overrides)}{' (one run stopped and resumed)' if resume else ''}")
    print(f"weights identical: {same_weights} ({len(first)} tensors)")
    print(f"metrics identical: {same_metrics}")
    checks = [same_weights, same_metrics]
    if resume:
        once = all(sorted(v) == sorted(set(v)) for v in seen[1].values())
        print(f"each sample once per rank and epoch in the resumed run: {once}")
        print(f"the same samples in the same order as the straight run: {seen[0] == seen[1]}")
        checks += [once, seen[0] == seen[1]]
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
