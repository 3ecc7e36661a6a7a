"""Do two seeded, deterministic runs of the same config end bit-identical? (Not in the test suite:
under DDP on 2 CPU cores each tiny run takes one to two minutes.)

    python benchmarks/reproducibility.py [overrides ...]

Runs ``python train.py`` twice with the tiny test config (tests/conftest.py) plus
``trainer.deterministic=true`` and the given overrides (default ``trainer=ddp``: 2 CPU
processes), each into its own folder under a temporary directory, then compares the weights of
``last.ckpt`` tensor by tensor (``torch.equal``) and the metrics CSV byte for byte. Prints one
line per check; exits 1 when a check fails. The single-process CPU case is tests/test_safety.py.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.conftest import TINY, train_script_argv, train_script_env  # noqa: E402

SETTINGS = [*TINY, "logger=csv", "test=false", "trainer.deterministic=true"]
DEFAULT = ["trainer=ddp"]


def train(folder: Path, overrides: list[str]) -> None:
    argv = train_script_argv([*SETTINGS, *overrides, f"hydra.run.dir={folder}"])
    done = subprocess.run(argv, cwd=REPO, env=train_script_env(), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"train.py failed in {folder}:\n{done.stderr[-3000:]}")


def main() -> int:
    overrides = sys.argv[1:] or DEFAULT
    with tempfile.TemporaryDirectory() as tmp:
        runs = [Path(tmp) / name for name in ("a", "b")]
        for run in runs:
            train(run, overrides)
        weights = [
            torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
            for run in runs
        ]
        same_weights = weights[0].keys() == weights[1].keys() and all(
            torch.equal(weights[0][key], weights[1][key]) for key in weights[0]
        )
        csvs = [(run / "csv" / "metrics.csv").read_bytes() for run in runs]
    print(f"overrides: {' '.join(overrides)}")
    print(f"weights identical: {same_weights} ({len(weights[0])} tensors)")
    print(f"metrics CSV identical: {csvs[0] == csvs[1]}")
    return 0 if same_weights and csvs[0] == csvs[1] else 1


if __name__ == "__main__":
    sys.exit(main())
