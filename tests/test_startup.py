"""Startup: the task scripts answer ``--help``, ``--cfg`` and config errors without importing
torch, Lightning or W&B (``seglab.cli`` imports a task module only when Hydra runs its job), and
the console scripts are those entry points."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys

from .conftest import REPO_ROOT, train_script_env

HEAVY = ("torch", "lightning", "torchvision", "torchmetrics", "albumentations", "wandb", "cv2")

# every case in ONE interpreter, as the shell runs the script; the heavy modules loaded after each
CHILD = r"""
import contextlib, io, json, runpy, sys
from hydra.core.global_hydra import GlobalHydra

cases, results_file, heavy = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
results = {}
for name, argv in cases.items():
    sys.argv, output, code = argv, io.StringIO(), 0
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            runpy.run_path(argv[0], run_name="__main__")
        except SystemExit as exit_:
            print(exit_.code if isinstance(exit_.code, str) else "", file=sys.stderr)
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    GlobalHydra.instance().clear()
    loaded = [module for module in heavy if module in sys.modules]
    results[name] = {"code": code, "output": output.getvalue(), "loaded": loaded}
with open(results_file, "w") as file:
    json.dump(results, file)
"""

# name: (script and arguments, exit code, a line of the output)
CASES = {
    "train --help": (["train.py", "--help"], 0, r"== Configuration groups =="),
    # eval.yaml has no default data (Hydra composes the config for --help); strict keys checked
    "eval --help": (["eval.py", "data=synthetic", "--help"], 0, r"== Configuration groups =="),
    # Hydra names the job after the task module (the run's <job name>.log)
    "train --cfg hydra": (["train.py", "--cfg", "hydra"], 0, r"^    name: train$"),
    "no such option": (["train.py", "model=unett"], 1, r"Could not find 'model/unett'"),
}


def test_help_and_config_errors_import_neither_torch_nor_lightning(tmp_path):
    cases = {name: [str(REPO_ROOT / argv[0]), *argv[1:]] for name, (argv, _, _) in CASES.items()}
    results_file = tmp_path / "results.json"
    command = [sys.executable, "-c", CHILD, json.dumps(cases), str(results_file), ",".join(HEAVY)]
    subprocess.run(command, cwd=tmp_path, env=train_script_env(), check=True, timeout=300)
    results = json.loads(results_file.read_text())
    wrong = {}
    for name, (_, code, pattern) in CASES.items():
        result = results[name]
        found = re.search(pattern, result["output"], re.MULTILINE)
        if result["code"] != code or not found or result["loaded"]:
            wrong[name] = (result["code"], result["loaded"], result["output"][-1500:])
    assert not wrong, "\n\n".join(f"{name}: {detail}" for name, detail in wrong.items())


def test_the_console_scripts_are_the_light_entry_points():
    """Every seglab-* command of pyproject.toml names a function that exists; the Hydra tasks'
    are seglab.cli's."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]")[1].split("\n[")[0]
    scripts = dict(re.findall(r'^(seglab-\w+) = "([\w.:]+)"$', section, re.MULTILINE))
    for target in scripts.values():
        module, _, name = target.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), target
    assert {name: scripts[name] for name in scripts if name != "seglab-compare"} == {
        "seglab-train": "seglab.cli:train",
        "seglab-eval": "seglab.cli:evaluate",
        "seglab-predict": "seglab.cli:predict",
        "seglab-export": "seglab.cli:export",
        "seglab-inspect": "seglab.cli:inspect",
    }
