"""The W&B sweep definition (sweeps/*.yaml) drives train.py with Hydra overrides: every parameter
it samples must be a config key (or group) that composes, with the value it sets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from .conftest import REPO_ROOT, compose_train

SWEEPS = sorted((REPO_ROOT / "sweeps").glob("*.yaml"))


def samples(spec: dict) -> list:
    """Values W&B's agent can hand out for one parameter (the ends of a range)."""
    return spec["values"] if "values" in spec else [spec["min"], spec["max"]]


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_runs_train_py_with_hydra_overrides(path: Path):
    sweep = yaml.safe_load(path.read_text())
    assert (REPO_ROOT / sweep["program"]).is_file()
    # ${args_no_hyphens} passes parameters as key=value, which is Hydra's override syntax
    assert sweep["command"][-1] == "${args_no_hyphens}"
    assert sweep["metric"]["goal"] in ("maximize", "minimize")


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_sampled_value_composes_and_takes_effect(path: Path, tmp_path):
    sweep = yaml.safe_load(path.read_text())
    for name, spec in sweep["parameters"].items():
        for value in samples(spec):
            cfg = compose_train(tmp_path, [f"{name}={value}"])
            if "/" in name or "." not in name:  # a config group: its choice is composed
                continue
            assert OmegaConf.select(cfg, name) == value, f"{name}={value}"


def test_the_sweep_metric_is_one_that_runs_log(tmp_path):
    for path in SWEEPS:
        metric = yaml.safe_load(path.read_text())["metric"]["name"]
        assert metric == compose_train(tmp_path).optimized_metric
