"""Shared fixtures: offline W&B, no albumentations update check, configs composed in-process."""

from __future__ import annotations

import os

# Before anything imports wandb or albumentations.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ["WANDB_SILENT"] = "true"
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from seglab.config import CONFIG_DIR  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
ISBI_DIR = REPO_ROOT.parent / "shared" / "data" / "isbi2012_membrane"

# A run small enough for a test: 32x32 images, a 2-level U-Net of width 4, 2 short epochs.
TINY_DATA = [
    "data.splits.train.num_samples=16",
    "data.splits.val.num_samples=8",
    "data.splits.test.num_samples=8",
    "data.dataset.image_size=32",
    "data.batch_size=4",
    "data.num_workers=0",
]
TINY_MODEL = ["model.depth=2", "model.base_width=4"]
TINY_TRAINER = [
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]
TINY = [*TINY_DATA, *TINY_MODEL, *TINY_TRAINER]


def compose_train(output_dir: Path, overrides: list[str] = ()) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides``, writing into ``output_dir``."""
    return compose_task("train", output_dir, overrides)


def compose_task(config_name: str, output_dir: Path, overrides: list[str] = ()) -> DictConfig:
    """``conf/<config_name>.yaml`` composed with ``overrides``, writing into ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=False)
    with open_dict(cfg):
        cfg.paths.root_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
        cfg.paths.output_dir = str(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return cfg


@pytest.fixture(autouse=True)
def no_hydra_config_left_over():
    """Each test starts without the Hydra run config an earlier in-process task may have set
    (tests run in any order, also spread over pytest-xdist workers)."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None
    yield


@pytest.fixture
def tiny_cfg(tmp_path):
    """The tiny training config, composed in-process (no W&B by default)."""
    return lambda *overrides: compose_train(tmp_path, [*TINY, "logger=csv", *overrides])


def train_script_env() -> dict[str, str]:
    """The environment of a ``train.py`` subprocess: W&B offline, no network at import."""
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("WANDB_API_KEY", None)
    return env


def train_script_argv(args: list[str]) -> list[str]:
    """``python train.py ARGS`` as an argv (for ``subprocess.Popen``, e.g. to interrupt it)."""
    return [sys.executable, str(REPO_ROOT / "train.py"), *args]


def run_script(
    script: str, args: list[str], cwd: Path, timeout: float = 600, check: bool = False
) -> subprocess.CompletedProcess:
    """``python <script> ARGS`` (train.py, eval.py, predict.py, export.py) in a subprocess, as a
    user runs it. ``check=True`` fails the test with the tail of stderr on a non-zero exit."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *args],
        cwd=cwd,
        env=train_script_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, result.stderr[-4000:]
    return result


def run_train_script(
    args: list[str], cwd: Path, timeout: float = 300, check: bool = False
) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` in a subprocess (required for DDP: the ranks re-run argv)."""
    return run_script("train.py", args, cwd, timeout, check)


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory) -> Path:
    """One finished tiny run of the real train.py (CSV logger, no test stage, deterministic),
    shared by the tests that load or predict with its checkpoints (they must not change its
    files) and by test_safety's reproducibility check (which trains its twin)."""
    cwd = tmp_path_factory.mktemp("tiny_run")
    args = [*TINY, "logger=csv", "test=false", "trainer.deterministic=true"]
    run_train_script(args, cwd=cwd, check=True)
    (run,) = (cwd / "logs" / "train" / "runs").iterdir()
    return run
