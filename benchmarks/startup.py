"""Startup: ``python train.py --help`` and the time from ``python train.py`` to the first
training step, broken down by phase (one process each, the default config).

    python benchmarks/startup.py [--repeats 2] [--imports 12] [overrides ...]

- ``--help``: wall time of ``python train.py --help`` (median of ``--repeats``);
- first step: ``python benchmarks/startup.py --child <overrides>`` runs ``train.py``'s own
  ``main()`` in one process, with timers around its phases (interpreter start measured as
  ``python -c pass``; imports of ``seglab.train``; config checks and the printed config tree;
  W&B / logger preparation; instantiation (data, network, module, trainer) without the data check;
  the data check; logging hyperparameters (which starts the W&B run); fit set-up and the sanity
  validation; the first training step). The run stops after one step (``trainer.max_steps=1``,
  ``test=false``, no early stopping; W&B offline);
- imports: the packages with the largest cumulative import time (``python -X importtime -c
  "import seglab.train"``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
}
PHASES = [
    ("check_config", "config checks"),
    ("print_config_tree", "config tree"),
    ("tracking.prepare", "W&B / logger preparation"),
    ("check_data", "data check"),
    ("instantiate", "instantiate data, net, module, trainer (without the data check)"),
    ("tracking.log_hyperparameters", "log hyperparameters (W&B run start)"),
]


def wall(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO_ROOT, env=ENV, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def child(result_path: Path, overrides: list[str]) -> None:
    """Runs train.py's main() with timers around its phases; writes the phases as JSON."""
    start = time.perf_counter()
    timings: dict[str, float] = {}
    import lightning as L

    import seglab.train as train

    timings["import seglab.train"] = time.perf_counter() - start

    def timed(owner, name: str, label: str):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timings[label] = timings.get(label, 0.0) + time.perf_counter() - began

        setattr(owner, name, wrapper)

    class FirstStep(L.Callback):
        def on_fit_start(self, trainer, pl_module):
            self.fit_start = time.perf_counter()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                self.step_start = time.perf_counter()
                timings["fit set-up and sanity validation"] = self.step_start - self.fit_start

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == 0:
                timings["first training step"] = time.perf_counter() - self.step_start
                timings["total to the first step's end"] = time.perf_counter() - start

    for key, label in PHASES:
        owner = train.tracking if key.startswith("tracking.") else train
        timed(owner, key.removeprefix("tracking."), label)
    instantiate = train.instantiate

    def instantiate_with_timer(cfg):
        run = instantiate(cfg)
        run.trainer.callbacks.append(FirstStep())
        return run

    train.instantiate = instantiate_with_timer
    sys.argv = [str(REPO_ROOT / "train.py"), *overrides]
    try:
        train.main()
    except SystemExit as exit_:
        if exit_.code:
            raise
    checked = timings.pop("data check", 0.0)
    timings["instantiate data, net, module, trainer (without the data check)"] -= checked
    timings["data check"] = checked
    result_path.write_text(json.dumps(timings))


def imports(top: int) -> list[tuple[str, float]]:
    """(package, cumulative seconds) of the slowest top-level imports of seglab.train."""
    argv = [sys.executable, "-X", "importtime", "-c", "import seglab.train"]
    stderr = subprocess.run(argv, env=ENV, capture_output=True, text=True, check=True).stderr
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if name and not name.startswith(" ") and "." not in name.strip():
            package = name.strip()
            totals[package] = max(totals.get(package, 0.0), int(cumulative) / 1e6)
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def measure(args) -> dict:
    python = wall([sys.executable, "-c", "pass"], args.repeats)
    help_seconds = wall([sys.executable, str(REPO_ROOT / "train.py"), "--help"], args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "phases.json"
        overrides = ["trainer.max_steps=1", "test=false", f"hydra.run.dir={tmp}/run"]
        overrides += ["callbacks.early_stopping=null", "optimized_metric=null"]  # no val/dice
        argv = [sys.executable, __file__, "--child", str(result), *overrides, *args.overrides]
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO_ROOT, env=ENV, check=True, capture_output=True)
        process = time.perf_counter() - start
        phases = json.loads(result.read_text())
    return {
        "python -c pass": python,
        "python train.py --help": help_seconds,
        "phases": phases,
        "process wall (to exit)": process,
        "imports": imports(args.imports),
    }


def table(result: dict) -> str:
    phases = result["phases"]
    lines = ["| phase | s |", "| --- | ---: |"]
    lines.append(f"| `python train.py --help` | {result['python train.py --help']:.2f} |")
    lines.append(f"| interpreter start (`python -c pass`) | {result['python -c pass']:.2f} |")
    for name, seconds in phases.items():
        if not name.startswith("total"):
            lines.append(f"| {name} | {seconds:.2f} |")
    total = phases.get("total to the first step's end", float("nan")) + result["python -c pass"]
    lines.append(f"| **`python train.py` to the end of the first step** | **{total:.2f}** |")
    lines += ["", "| import (cumulative, `-X importtime`) | s |", "| --- | ---: |"]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in result["imports"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(Path(argv[1]), argv[2:])
        return None
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--imports", type=int, default=12, help="slowest imports listed")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the first-step run")
    result = measure(parser.parse_args(argv))
    print(table(result))
    return result


if __name__ == "__main__":
    main()
