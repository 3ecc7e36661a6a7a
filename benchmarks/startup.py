"""Startup: ``python train.py --help`` and the time from ``python train.py`` to the end of the
first training step, broken down by phase (one process each, the default config).

    python benchmarks/startup.py [--repeats 2] [--imports 10] [--baseline DIR] [overrides ...]

- ``--help``: wall time of ``python train.py --help`` (each of ``--repeats`` runs measures once);
- first step: ``python benchmarks/startup.py --child <overrides>`` runs ``train.py``'s own entry
  point in one process, with timers around its phases: interpreter start (``python -c pass``);
  the entry module (hydra, omegaconf); ``seglab.train`` (torch, Lightning...; imported up front
  here, inside the job in a real run); Hydra (compose, run folder, Hydra callbacks); the phases of
  ``seglab.train.train`` (config checks, W&B preparation, config tree, ``versions.yaml``,
  instantiation without the data check, the data check, the W&B run start); fit set-up; the
  sanity validation; the first batch (the train loader's workers); the first training step; and
  after it, to the job's end (the fit's end, closing the W&B run). The run stops after one step
  (``trainer.max_steps=1``, ``test=false``, no early stopping; W&B offline);
- imports: the packages with the largest cumulative import time (``-X importtime``) of
  ``import seglab.train`` and of ``python train.py --help``;
- layers: the heavy imports one after the other in one fresh process (``LAYERS``), each timed
  alone, so that what a later one adds is not counted again. ``torch._dynamo`` is its own layer:
  torch imports it when the first optimizer is built (``Optimizer.add_param_group`` is wrapped in
  ``torch._disable_dynamo``), so every training run pays for it, whoever imports it first;
- ``--baseline DIR``: another checkout of seglab (e.g. ``git worktree add /tmp/before <commit>``)
  measured the same way, run by run interleaved with this one (baseline, this, baseline, this),
  so that both see the same machine load; the table has one column per run.
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
# (owner, function, label) timed inside seglab.train.train; owner "tracking" is seglab.tracking
PHASES = [
    ("train", "check_config", "config checks"),
    ("tracking", "prepare", "W&B / logger preparation"),
    ("train", "print_config_tree", "config tree"),
    ("tracking", "record_versions", "versions.yaml (package versions, git)"),
    ("train", "check_data", "data check"),
    ("train", "instantiate", "instantiate data, net, module, trainer (without the data check)"),
    ("tracking", "log_hyperparameters", "log hyperparameters (W&B run start)"),
]
# consecutive events of the run; the phase between two is named after the later one
EVENTS = [
    ("train() starts", "Hydra: compose, run folder, Hydra callbacks"),
    ("fit starts", "other work in train() (seed, ...)"),
    ("sanity check starts", "fit set-up (to the sanity check)"),
    ("sanity check ends", "sanity validation (num_sanity_val_steps)"),
    ("first batch starts", "to the first batch (train loader)"),
    ("first step ends", "first training step"),
    ("job ends", "after the first step: the fit's end, closing the W&B run"),
]
# (import, label): timed one after the other in one process
LAYERS = [
    ("torch", "torch"),
    ("torch._dynamo", "torch._dynamo (the first torch.optim optimizer imports it)"),
    ("torchvision", "torchvision (torchmetrics imports it when installed)"),
    ("lightning", "lightning (torchmetrics included)"),
    ("seglab.train", "seglab.train (the rest: Hydra, albumentations, seglab)"),
]
LAYER_CODE = """
import json, sys, time
seconds = {}
for name in sys.argv[1:]:
    start = time.perf_counter()
    __import__(name)
    seconds[name] = time.perf_counter() - start
print(json.dumps(seconds))
"""
TOTAL = "total to the first step's end"
JOB_TOTAL = "total to the job's end"


def env_for(checkout: Path) -> dict[str, str]:
    """The environment that imports seglab from ``checkout``."""
    return {**ENV, "PYTHONPATH": str(checkout / "src")}


def wall(argv: list[str], repeats: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO_ROOT, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed(owner, name: str, label: str, timings: dict[str, float]) -> None:
    """Replace ``owner.name`` by itself with a timer adding to ``timings[label]``."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timings[label] = timings.get(label, 0.0) + time.perf_counter() - began

    setattr(owner, name, wrapper)


def child(result_path: Path, overrides: list[str]) -> None:
    """Runs train.py's entry point with timers around its phases; writes them as JSON."""
    start = time.perf_counter()
    timings: dict[str, float] = {}
    events: dict[str, float] = {}
    try:
        from seglab.cli import train as entry
    except ImportError:  # a checkout from before seglab.cli: the entry is seglab.train.main
        import seglab  # noqa: F401

        entry = None
    timings["import the entry module (hydra, omegaconf)"] = time.perf_counter() - start
    began = time.perf_counter()
    import lightning as L

    import seglab.train as train

    timings["import seglab.train (torch, Lightning, ...)"] = time.perf_counter() - began
    entry = entry or train.main

    def mark(event: str) -> None:
        events.setdefault(event, time.perf_counter())

    class Events(L.Callback):
        def on_sanity_check_start(self, trainer, pl_module):
            mark("sanity check starts")

        def on_sanity_check_end(self, trainer, pl_module):
            mark("sanity check ends")

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            mark("first batch starts")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            mark("first step ends")

    for owner, name, label in PHASES:
        timed(train.tracking if owner == "tracking" else train, name, label, timings)
    instantiate, run_train, fit_and_test = train.instantiate, train.train, train.fit_and_test

    def instantiate_with_events(cfg):
        run = instantiate(cfg)
        run.trainer.callbacks.append(Events())
        return run

    def train_with_event(cfg):
        mark("train() starts")
        return run_train(cfg)

    def fit_with_event(cfg, run):
        mark("fit starts")
        return fit_and_test(cfg, run)

    train.instantiate, train.train, train.fit_and_test = (
        instantiate_with_events,
        train_with_event,
        fit_with_event,
    )
    train.run_task = train.tracking.task_wrapper(train.train)  # the task calls run_task
    sys.argv = [str(REPO_ROOT / "train.py"), *overrides]
    events["entry called"] = time.perf_counter()
    try:
        entry()
    except SystemExit as exit_:
        if exit_.code:
            raise
    mark("job ends")
    timings["data check"] = checked = timings.get("data check", 0.0)
    timings["instantiate data, net, module, trainer (without the data check)"] -= checked
    timings.update(event_phases(events, timings))
    timings[TOTAL] = events["first step ends"] - start
    timings[JOB_TOTAL] = events["job ends"] - start
    result_path.write_text(json.dumps(timings))


def event_phases(events: dict[str, float], timings: dict[str, float]) -> dict[str, float]:
    """The time between consecutive events that happened; the phases timed inside ``train()``
    are taken out of the stretch that holds them."""
    phases, previous = {}, events["entry called"]
    inside_train = sum(timings.get(label, 0.0) for _, _, label in PHASES)
    for event, label in EVENTS:
        if event not in events:  # e.g. no sanity check with num_sanity_val_steps=0
            continue
        phases[label] = events[event] - previous
        if event == "fit starts":
            phases[label] -= inside_train
        previous = events[event]
    return phases


def imports(argv: list[str], env: dict[str, str], top: int) -> list[tuple[str, float]]:
    """(package, cumulative seconds) of the slowest imports of ``python -X importtime ARGV``."""
    command = [sys.executable, "-X", "importtime", *argv]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    totals: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if name and "." not in name:
            totals[name] = max(totals.get(name, 0.0), int(cumulative) / 1e6)
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def layers(env: dict[str, str]) -> dict[str, float]:
    """Seconds of each of ``LAYERS``, imported in order in one fresh process."""
    command = [sys.executable, "-c", LAYER_CODE, *(name for name, _ in LAYERS)]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"timing the imports failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def measure(checkout: Path, repeats: int, top: int, overrides: list[str]) -> dict:
    """One measurement of ``checkout`` (its ``src`` imported, run from this checkout)."""
    env = env_for(checkout)
    script = str(checkout / "train.py")
    help_seconds = wall([sys.executable, script, "--help"], repeats, env)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "phases.json"
        first_step = ["trainer.max_steps=1", "test=false", f"hydra.run.dir={tmp}/run"]
        first_step += ["callbacks.early_stopping=null", "optimized_metric=null"]  # no val/dice
        argv = [sys.executable, __file__, "--child", str(result), *first_step, *overrides]
        done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the first-step run of {checkout} failed:\n{done.stderr[-3000:]}")
        phases = json.loads(result.read_text())
    return {
        "checkout": str(checkout),
        "python -c pass": wall([sys.executable, "-c", "pass"], repeats, env),
        "python train.py --help": help_seconds,
        "phases": phases,
        "imports": imports(["-c", "import seglab.train"], env, top),
        "help imports": imports([script, "--help"], env, top),
        "layers": layers(env),
    }


def table(results: list[dict], names: list[str]) -> str:
    """One column per measurement, in the order they ran."""
    head = "| phase | " + " | ".join(names) + " |"
    lines = [head, "| --- |" + " ---: |" * len(results)]

    def row(label: str, values: list[float], bold: bool = False) -> None:
        cells = [f"{v:.2f}" if v == v else "-" for v in values]
        if bold:
            label, cells = f"**{label}**", [f"**{c}**" for c in cells]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("`python train.py --help`", [r["python train.py --help"] for r in results])
    row("interpreter start (`python -c pass`)", [r["python -c pass"] for r in results])
    labels = [k for r in results for k in r["phases"] if k not in (TOTAL, JOB_TOTAL)]
    for label in dict.fromkeys(labels):
        row(label, [r["phases"].get(label, float("nan")) for r in results])
    for key, label in ((TOTAL, "the end of the first step"), (JOB_TOTAL, "the job's end")):
        totals = [r["phases"].get(key, float("nan")) + r["python -c pass"] for r in results]
        row(f"`python train.py` to {label}", totals, bold=True)
    lines += ["", "| imports one after the other in one process (s) | " + " | ".join(names) + " |"]
    lines.append("| --- |" + " ---: |" * len(results))
    for name, label in LAYERS:
        lines.append(
            f"| {label} | " + " | ".join(f"{r['layers'][name]:.2f}" for r in results) + " |"
        )
    for key, title in (("imports", "`import seglab.train`"), ("help imports", "`--help`")):
        lines += ["", f"| slowest imports of {title} (cumulative s) | " + " | ".join(names) + " |"]
        lines.append("| --- |" + " --- |" * len(results))
        width = max(len(r[key]) for r in results)
        for i in range(width):
            cells = [
                f"{r[key][i][0]} {r[key][i][1]:.2f}" if i < len(r[key]) else "" for r in results
            ]
            lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(Path(argv[1]), argv[2:])
        return None
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each checkout")
    parser.add_argument("--imports", type=int, default=10, help="slowest imports listed")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured interleaved")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the first-step run")
    args = parser.parse_args(argv)
    results, names = [], []
    for run in range(1, args.repeats + 1):
        if args.baseline:
            results.append(measure(args.baseline.resolve(), 1, args.imports, args.overrides))
            names.append(f"baseline #{run}")
        results.append(measure(REPO_ROOT, 1, args.imports, args.overrides))
        names.append(f"this #{run}")
    print(table(results, names))
    this = [r for r in results if r["checkout"] == str(REPO_ROOT)]
    return {
        "python train.py --help": statistics.median(r["python train.py --help"] for r in this),
        "phases": {
            key: statistics.median(r["phases"][key] for r in this) for key in (TOTAL, JOB_TOTAL)
        },
        "runs": results,
    }


if __name__ == "__main__":
    main()
