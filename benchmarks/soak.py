"""Soak test (issue 13, item 7): seeded runs killed at random points and resumed with ``resume=``
end as their uninterrupted twins? Not in the test suite: the default 20 runs take ~6 minutes on
two idle cores (BENCHMARKS.md), far longer on a loaded machine.

    python benchmarks/soak.py [--runs 20] [--seed 0] [--out DIR] [--json FILE] [--max-minutes M]

Each run is the tiny synthetic config (tests/conftest.py: 32x32 images, a width-4 U-Net; here
24 training samples, i.e. 6 steps per epoch), ``trainer.deterministic=true``, ``logger=csv``,
without the prediction images and the report (pictures only; they slow every start). Runs differ
in ``seed`` and ``trainer.max_epochs`` (five configs, used in turn); each config's uninterrupted
twin is trained once. Each run gets one or two kills from a seeded plan: SIGTERM or SIGKILL, at a
random training step or inside a checkpoint save (benchmarks/soak_child.py plants them; a
SIGKILL there leaves the temporary file half-written). After a kill the run is continued with
``python train.py resume=<run folder>``, again until it completes; a run killed before it saved
any checkpoint has nothing to resume and is started again (a restart).

What is compared with the twin: the weights of ``last.ckpt`` (``torch.equal`` over the whole
state_dict: "identical") and the last logged value of every metric in ``csv/metrics.csv`` (test
metrics of the best checkpoint included: "equal final metrics"). What "identical" can mean:

- SIGTERM saves ``interrupted.ckpt`` after the batch it arrived in; the resume starts there. At an
  epoch boundary that is the twin's state exactly; mid-epoch it is as exact as the resumable
  loader and the restored random states make it (the table counts the two cases apart).
- SIGKILL saves nothing: the resume starts from the newest complete checkpoint (``last.ckpt`` or
  ``interrupted.ckpt``, whichever was written last) and repeats the steps since. Deterministic
  replay of those steps makes the run identical; nothing beyond that checkpoint survives.

"Checkpoints lost" counts checkpoint files that fail to load after a kill (``.ckpt`` files only;
the half-written temporary files of killed saves are counted apart) and runs that could not be
resumed (an exit that is neither 0, 143 for SIGTERM, nor a SIGKILL).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]  # this checkout's seglab, also in the children
from tests.conftest import TINY, train_script_env  # noqa: E402

CHILD = REPO / "benchmarks" / "soak_child.py"
STEPS_PER_EPOCH = 6  # 24 samples / batch 4
SETTINGS = [
    *(o for o in TINY if not o.startswith(("data.splits.train.", "trainer.max_epochs"))),
    f"data.splits.train.num_samples={STEPS_PER_EPOCH * 4}",
    "trainer.deterministic=true",
    "logger=csv",
    "callbacks.prediction_images=null",
    "callbacks.segmentation_report=null",
]
SIGTERM_EXIT = 143
CONFIGS = 5


@dataclass(frozen=True)
class Config:
    seed: int
    epochs: int

    @property
    def overrides(self) -> list[str]:
        return [f"seed={self.seed}", f"trainer.max_epochs={self.epochs}"]

    @property
    def name(self) -> str:
        return f"seed {self.seed}, {self.epochs} epochs"


def configs(count: int) -> list[Config]:
    return [Config(seed=1 + i, epochs=3 + i % 2) for i in range(count)]


@dataclass
class Attempt:
    """One process of a run: how it started, the kill planted, what it did."""

    start: str  # "fresh", "restart" or the checkpoint resumed from, e.g. "interrupted.ckpt@7"
    kill: str | None  # "SIGKILL:save:2" ... or None (left to complete)
    fired: str | None = None  # the child's "soak: ..." line, when the kill happened
    returncode: int = 0
    seconds: float = 0.0

    @property
    def in_save(self) -> bool:
        return bool(self.fired) and self.kill is not None and ":save:" in self.kill


@dataclass
class RunResult:
    index: int
    config: str
    attempts: list[Attempt] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # checkpoints that failed to load
    temp_files: int = 0  # half-written temporary files left by killed saves
    failure: str = ""  # why the run could not be resumed, if it could not
    identical: bool = False
    equal_metrics: bool = False
    max_metric_diff: float = 0.0

    @property
    def kills(self) -> list[str]:
        return [a.kill.split(":")[0] for a in self.attempts if a.kill and a.fired]

    @property
    def mid_epoch(self) -> bool:
        """Resumed at least once from a checkpoint that is not at an epoch boundary."""
        return any(is_mid_epoch(a.start) for a in self.attempts if "@" in a.start)


def is_mid_epoch(start: str) -> bool:
    """``last.ckpt@12`` is an epoch's end; ``interrupted.ckpt@12`` is too when it was saved after
    the epoch's last batch (a multiple of the steps per epoch), before its validation;
    ``interrupted.ckpt@7`` and a best checkpoint (saved after validation, before the epoch's end
    hooks) are not."""
    name, _, step = start.rpartition("@")
    if name == "last.ckpt":
        return False
    return name != "interrupted.ckpt" or int(step) % STEPS_PER_EPOCH != 0


def child(args: list[str], kill: str | None, log: Path) -> tuple[int, str | None]:
    """``train.py ARGS`` through the soak child with ``kill`` planted; (exit code, kill line)."""
    env = train_script_env()
    path = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env.update(SEGLAB_SOAK_KILL=kill or "", PYTHONPATH=path)
    with open(log, "w") as out:
        done = subprocess.run(
            [sys.executable, str(CHILD), *args], cwd=log.parent, env=env, stdout=out, stderr=out
        )
    fired = [line for line in log.read_text().splitlines() if line.startswith("soak: ")]
    return done.returncode, (fired[-1].removeprefix("soak: ") if fired else None)


def resume_point(run_dir: Path) -> tuple[Path | None, int]:
    """The checkpoint ``resume=`` takes (the newest) and its global step; (None, 0) without."""
    from seglab.resume import checkpoint_step, newest_checkpoint

    ckpt = newest_checkpoint(run_dir) if (run_dir / "checkpoints").is_dir() else None
    return ckpt, checkpoint_step(ckpt) if ckpt else 0


def draw_kill(rng: random.Random, step: int, epochs: int) -> str:
    """A kill for a process starting at ``step``: SIGTERM or SIGKILL, at a later training step
    (70%) or in one of the checkpoint saves it is sure to make (30%: one per epoch left)."""
    name = rng.choice(["SIGTERM", "SIGKILL"])
    total = epochs * STEPS_PER_EPOCH
    if rng.random() < 0.3 or step >= total:  # no training step left: a save still comes
        return f"{name}:save:{rng.randint(1, max(1, epochs - step // STEPS_PER_EPOCH))}"
    return f"{name}:step:{rng.randint(step + 1, total)}"


def check_checkpoints(run_dir: Path, result: RunResult) -> None:
    """Every ``.ckpt`` of the run loads (seglab's safe reader); the others are lost."""
    from seglab.checkpoints import CheckpointError, read_checkpoint

    for path in sorted((run_dir / "checkpoints").glob("*.ckpt")):
        try:
            read_checkpoint(path)
        except CheckpointError as error:
            result.lost.append(f"{path.name}: {error}")


def soak_run(index: int, config: Config, rng: random.Random, out: Path) -> RunResult:
    """Train run ``index`` with its kills until it completes (or cannot be resumed)."""
    run_dir = out / "runs" / f"{index:02d}"
    fresh = [*SETTINGS, *config.overrides, f"hydra.run.dir={run_dir}"]
    result = RunResult(index, config.name)
    kills_left = rng.choice([1, 1, 2])  # one kill, or two
    args, start = fresh, "fresh"
    while True:
        ckpt, step = resume_point(run_dir)
        kill = draw_kill(rng, step, config.epochs) if kills_left else None
        attempt = Attempt(start=start, kill=kill)
        began = time.perf_counter()
        log = out / "logs" / f"{index:02d}_{len(result.attempts)}.log"
        attempt.returncode, attempt.fired = child(args, kill, log)
        attempt.seconds = time.perf_counter() - began
        result.attempts.append(attempt)
        kills_left -= bool(attempt.fired)
        if attempt.returncode == 0:
            break
        if attempt.returncode not in (SIGTERM_EXIT, -9) or not attempt.fired:
            result.failure = f"exit {attempt.returncode}, see {log}"
            break
        check_checkpoints(run_dir, result)
        ckpt, step = resume_point(run_dir)
        if ckpt is None:  # killed before the first checkpoint: nothing to resume
            args, start = fresh, "restart"
        else:
            args, start = [f"resume={run_dir}"], f"{ckpt.name}@{step}"
    result.temp_files = len(list((run_dir / "checkpoints").glob(".*.tmp")))
    return result


def final_metrics(run_dir: Path) -> dict[str, str]:
    """The last logged value of every ``stage/name`` column of the run's metrics CSV."""
    import csv

    values: dict[str, str] = {}
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        for row in csv.DictReader(file):
            values.update({k: v for k, v in row.items() if v and "/" in k})
    return values


def compare(run_dir: Path, twin_dir: Path, result: RunResult) -> None:
    """Weights of ``last.ckpt`` (``torch.equal``) and final metrics against the twin."""
    import torch

    weights = [
        torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for d in (run_dir, twin_dir)
    ]
    result.identical = weights[0].keys() == weights[1].keys() and all(
        torch.equal(weights[0][k], weights[1][k]) for k in weights[0]
    )
    ours, theirs = final_metrics(run_dir), final_metrics(twin_dir)
    result.equal_metrics = ours == theirs
    common = ours.keys() & theirs.keys()
    diffs = [abs(float(ours[k]) - float(theirs[k])) for k in common]
    result.max_metric_diff = max(diffs, default=float("inf")) if common else float("inf")


def describe(result: RunResult) -> str:
    """``fresh, SIGTERM at step 7 -> interrupted.ckpt@7, SIGKILL at save 1 (...) -> ... done``."""
    parts = []
    for attempt in result.attempts:
        if attempt.fired and attempt.returncode == 0:
            parts.append(f"{attempt.start}, {attempt.fired} (no effect: the fit had ended)")
        elif attempt.fired:
            parts.append(f"{attempt.start}, {attempt.fired}")
        else:
            parts.append(f"{attempt.start}, done" if attempt.returncode == 0 else attempt.start)
    return " -> ".join(parts) + (f" -> FAILED: {result.failure}" if result.failure else "")


def summary(results: list[RunResult]) -> dict:
    kills = [k for r in results for k in r.kills]
    boundary = [r for r in results if not r.mid_epoch]
    return {
        "runs": len(results),
        "kills": len(kills),
        "sigterm": kills.count("SIGTERM"),
        "sigkill": kills.count("SIGKILL"),
        "kills_in_saves": sum(a.in_save for r in results for a in r.attempts),
        "no_effect": sum(bool(a.fired) and a.returncode == 0 for r in results for a in r.attempts),
        "resumes": sum(1 for r in results for a in r.attempts if "@" in a.start),
        "restarts": sum(1 for r in results for a in r.attempts if a.start == "restart"),
        "identical": sum(r.identical for r in results),
        "equal_metrics": sum(r.equal_metrics for r in results),
        "boundary_runs": len(boundary),
        "boundary_identical": sum(r.identical for r in boundary),
        "mid_epoch_runs": len(results) - len(boundary),
        "mid_epoch_identical": sum(r.identical for r in results if r.mid_epoch),
        "checkpoints_lost": sum(len(r.lost) for r in results),
        "not_resumed": sum(bool(r.failure) for r in results),
        "temp_files_left": sum(r.temp_files for r in results),
    }


def table(results: list[RunResult], seconds: float) -> str:
    s = summary(results)
    lines = [
        "| runs | kills (SIGTERM / SIGKILL) | kills during a save | resumes | restarts | "
        "runs identical (weights bit-identical) | runs with equal final metrics | "
        "checkpoints lost | runs not resumed |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {s['runs']} | {s['kills']} ({s['sigterm']} / {s['sigkill']}) | "
        f"{s['kills_in_saves']} | {s['resumes']} | {s['restarts']} | {s['identical']} | "
        f"{s['equal_metrics']} | {s['checkpoints_lost']} | {s['not_resumed']} |",
        "",
        f"Identical: {s['boundary_identical']} of {s['boundary_runs']} runs resumed only at "
        f"epoch boundaries (or restarted), {s['mid_epoch_identical']} of {s['mid_epoch_runs']} "
        "runs resumed at least once mid-epoch. Kills that came after the fit's last batch "
        f"(no effect): {s['no_effect']}. Half-written temporary files left by killed saves: "
        f"{s['temp_files_left']}. Wall time {seconds / 60:.1f} min.",
        "",
        "| run | config | attempts | identical | equal metrics | max metric diff |",
        "| ---: | --- | --- | --- | --- | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.index} | {r.config} | {describe(r)} | {'yes' if r.identical else 'no'} | "
            f"{'yes' if r.equal_metrics else 'no'} | {r.max_metric_diff:.2g} |"
        )
    lost = [f"run {r.index}: {item}" for r in results for item in r.lost]
    return "\n".join(lines + (["", "Lost checkpoints:", *lost] if lost else []))


def twin(config: Config, out: Path) -> Path:
    """The uninterrupted run of ``config``."""
    folder = out / "twins" / f"seed{config.seed}_epochs{config.epochs}"
    args = [*SETTINGS, *config.overrides, f"hydra.run.dir={folder}"]
    returncode, _ = child(args, None, out / "logs" / f"{folder.name}.log")
    if returncode != 0:
        sys.exit(f"the twin {folder} failed (exit {returncode}): see {out / 'logs'}")
    return folder


def soak(runs: int, seed: int, out: Path, minutes: float | None = None) -> list[RunResult]:
    """The runs (fewer when ``minutes`` run out: no run starts after that)."""
    (out / "logs").mkdir(parents=True, exist_ok=True)
    chosen = configs(min(CONFIGS, runs))
    twins = {}
    results = []
    began = time.perf_counter()
    for index in range(runs):
        if minutes is not None and time.perf_counter() - began > minutes * 60:
            print(f"--max-minutes {minutes} used up: stopping after {index} runs", flush=True)
            break
        config = chosen[index % len(chosen)]
        if config not in twins:
            twins[config] = twin(config, out)
        result = soak_run(index, config, random.Random(f"{seed}:{index}"), out)
        if not result.failure:
            compare(out / "runs" / f"{index:02d}", twins[config], result)
        results.append(result)
        print(f"run {index}: {describe(result)}; identical {result.identical}", flush=True)
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="interrupted runs (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill plan")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="also write the figures and runs as JSON")
    parser.add_argument(
        "--max-minutes", type=float, help="start no run after this (a loaded machine)"
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        out = (args.out or Path(tmp)).resolve()
        results = soak(args.runs, args.seed, out, args.max_minutes)
    seconds = time.perf_counter() - began
    print("\n" + table(results, seconds))
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seed": args.seed,
        "runs_planned": args.runs,
        "seconds": round(seconds, 1),
        "load_average": os.getloadavg()[0],
        **summary(results),
        "details": [{**asdict(r), "description": describe(r)} for r in results],
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    report = main()
    sys.exit(1 if report["checkpoints_lost"] or report["not_resumed"] else 0)
