"""``python train.py resume=<run folder>`` (or ``resume=last``) continues a run where it stopped.

Before Hydra composes anything, :func:`resume_argv` turns the command line into the run's own:
its saved overrides (``<run>/.hydra/overrides.yaml``) with the new ones on top (a new value of
the same key replaces the saved one), ``hydra.run.dir=<run>`` (no new timestamped folder: logs,
``predictions/`` and checkpoints continue there), ``hydra.mode=RUN`` (a multirun job or an Optuna
trial continues as one run), and ``ckpt_path=<its newest checkpoint>`` (``interrupted.ckpt`` or
``last.ckpt``, whichever was written last), which also keeps the W&B run id
(:func:`seglab.tracking.complete_wandb_config`). The rewritten argv is what DDP children
re-execute, so they continue the same run.

``resume=last`` is the newest folder with a checkpoint among the task's run folders (under the
parent of ``hydra.run.dir`` as the config composes it: ``logs/train/runs/<run>``) and its sweep
jobs (under the parent of ``hydra.sweep.dir``: ``logs/train/multiruns/<sweep>/<job>``), newest
by the time its ``.hydra/overrides.yaml`` was written (the run's start or last resume). A sweep job
(a multirun job or an Optuna trial) resumes as one run in its job folder with its own overrides;
the sweep is not continued (a plain sweep's summary row is updated when the job ends:
:class:`seglab.sweeps.summary.SweepSummary`), and an Optuna study is not told the result: to go
on with a search, rerun its command with ``hydra.sweep.dir=<sweep folder>`` (the study retries
the interrupted trial), see :func:`sweep_note`. Problems stop with :class:`ResumeError`, one line
naming the folder and the fix.

The CSV metrics of the run are appended to (:func:`continue_csv_logs`; Lightning's CSV logger
would delete them), without the rows logged after the checkpoint.
"""

from __future__ import annotations

import csv
import logging
import os
import shlex
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import OmegaConf

from seglab.checkpoints import read_checkpoint
from seglab.config import CONFIG_DIR, override_key

log = logging.getLogger(__name__)

# overrides that resume sets itself: left out of the saved ones
OWN_KEYS = ("resume", "ckpt_path", "hydra.run.dir", "hydra.mode")
RUN_FILE = Path(".hydra") / "overrides.yaml"


class ResumeError(SystemExit):
    """``resume=`` cannot continue that folder; the message names it and the fix."""


def merge_overrides(saved: list[str], new: list[str]) -> list[str]:
    """``saved`` with ``new`` on top: a new override of the same key replaces the saved one."""
    keys = {override_key(o) for o in new}
    kept = [o for o in saved if override_key(o) not in keys and override_key(o) not in OWN_KEYS]
    return kept + list(new)


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint written last in ``<run_dir>/checkpoints`` (interrupted.ckpt, last.ckpt...)."""
    found = sorted((run_dir / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def check_run_dir(run_dir: Path, value: str) -> Path:
    """``run_dir`` resolved, if it is a run folder with a checkpoint; else :class:`ResumeError`."""
    run_dir = run_dir.expanduser().resolve()
    if not (run_dir / RUN_FILE).is_file():
        raise ResumeError(
            f"resume={value}: {run_dir} is not a run folder (it has no {RUN_FILE}): give the "
            "folder of a run, e.g. resume=logs/train/runs/<date>_<time> (the folder the "
            "interrupted run's last log line names), or resume=last for the newest"
        )
    if newest_checkpoint(run_dir) is None:
        saved = OmegaConf.to_container(OmegaConf.load(run_dir / RUN_FILE))
        raise ResumeError(
            f"resume={value}: {run_dir} holds no checkpoint (checkpoints/*.ckpt): the run "
            "stopped before it saved one, so there is nothing to continue; start it again: "
            + " ".join(["python train.py", *map(shlex.quote, saved)])
        )
    return run_dir


def places_runs(override: str) -> bool:
    """Whether an override can move the run folders (``paths``, ``task_name``, ``hydra.*``)."""
    key = override_key(override)
    return key in ("paths", "task_name") or key.startswith(("paths.", "hydra"))


def runs_roots(config_name: str, overrides: list[str]) -> tuple[Path, Path]:
    """The folders that hold this task's run folders and its sweep folders: the parents of
    ``hydra.run.dir`` and ``hydra.sweep.dir``. Only the overrides that place runs are composed:
    the others may need the run's own (``data.dataset.root=...`` needs its ``data=folder``)."""
    overrides = [o for o in overrides if places_runs(o)]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # ${hydra:runtime.cwd} in the paths resolves
    return Path(cfg.hydra.run.dir).parent, Path(cfg.hydra.sweep.dir).parent


def last_run(root: Path, sweeps: Path | None = None) -> Path:
    """The newest run folder under ``root`` (``<root>/<run>``) or sweep job folder under
    ``sweeps`` (``<sweeps>/<sweep>/<job>``) that holds a checkpoint."""
    found = [*root.glob(f"*/{RUN_FILE}"), *(sweeps.glob(f"*/*/{RUN_FILE}") if sweeps else [])]
    runs = [p.parents[1] for p in found if newest_checkpoint(p.parents[1])]
    if not runs:
        where = f"{root}" + (f" or {sweeps}" if sweeps else "")
        raise ResumeError(
            f"resume=last: no run folder with a checkpoint under {where}: give the folder, "
            "resume=<run folder>; for runs under another logs folder add paths.log_dir=<it>"
        )
    return max(runs, key=lambda run: (run / RUN_FILE).stat().st_mtime)


def sweep_note(sweep_dir: Path, optuna: bool, stopped: bool) -> str:
    """What becomes of the sweep in ``sweep_dir`` when one of its jobs is ``stopped`` by a
    signal, or resumed."""
    search = f"rerunning the search's command with hydra.sweep.dir={sweep_dir} retries"
    if stopped and optuna:
        return (
            f"an Optuna trial of the search in {sweep_dir}: {search} it under the study "
            "(resuming this job folder finishes it as a single run, which the study does not "
            "record)"
        )
    if stopped:
        return (
            f"a job of the sweep in {sweep_dir}: the sweep's later jobs did not run (start them "
            "with -m and their values)"
        )
    if optuna:
        return (
            f"an Optuna trial of the search in {sweep_dir}: it continues as a single run, which "
            f"the study does not record (to go on with the search instead, {search} the trial)"
        )
    return (
        f"a job of the sweep in {sweep_dir}: it continues as a single run, and its row in the "
        "sweep's summary is updated when it ends"
    )


def sweep_of(run_dir: Path) -> tuple[Path, bool] | None:
    """(sweep folder, is an Optuna search) when ``run_dir`` is a job of a sweep, else None: its
    parent holds the sweep's ``multirun.yaml`` (Hydra's sweeper and seglab's Optuna search write
    it before the jobs start)."""
    from seglab.sweeps.context import SWEEP_CONFIG

    sweep = run_dir.parent / SWEEP_CONFIG
    if not sweep.is_file():
        return None
    target = str(OmegaConf.load(sweep).hydra.sweeper.get("_target_", ""))
    return run_dir.parent, "optuna" in target.lower()


def resume_argv(argv: list[str], config_name: str) -> list[str]:
    """``argv`` with ``resume=<folder>|last`` expanded into the run's own command line (see the
    module docstring); ``argv`` itself when it has no ``resume=``."""
    args, _ = get_args_parser().parse_known_args(argv[1:])
    overrides = list(args.overrides)
    values = [o.partition("=")[2] for o in overrides if override_key(o) == "resume"]
    if not values or values[-1] in ("", "null"):
        return argv
    if args.multirun:
        raise ResumeError("resume= continues one run: leave out -m / --multirun")
    value = values[-1]
    new = [o for o in overrides if override_key(o) != "resume"]
    if value == "last":
        run_dir = check_run_dir(last_run(*runs_roots(config_name, new)), value)
    else:
        run_dir = check_run_dir(Path(value), value)
    saved = list(OmegaConf.to_container(OmegaConf.load(run_dir / RUN_FILE)))
    explicit = [o.partition("=")[2] for o in new if override_key(o) == "ckpt_path"]
    ckpt = explicit[-1] if explicit else str(newest_checkpoint(run_dir))
    shown = [o for o in new if override_key(o) != "ckpt_path"]
    if os.environ.get("LOCAL_RANK", "0") == "0":  # DDP children re-run this: rank zero prints
        sweep = sweep_of(run_dir)
        note = f". It is {sweep_note(*sweep, stopped=False)}" if sweep else ""
        print(
            f"Resuming {run_dir} from {ckpt}; overrides on top of the run's: "
            f"{' '.join(shown) or '(none)'}{note}",
            file=sys.stderr,
        )
    flags = [a for a in argv[1:] if a not in overrides]  # --config-dir and the like
    own = [f"resume={run_dir}", f"ckpt_path={ckpt}", f"hydra.run.dir={run_dir}", "hydra.mode=RUN"]
    return [argv[0], *flags, *merge_overrides(saved, shown), *own]


def checkpoint_step(ckpt_path: str | Path) -> int:
    return int(read_checkpoint(ckpt_path).get("global_step", 0))


@rank_zero_only
def continue_csv_logs(loggers, ckpt_path: str | Path) -> None:
    """Keep the rows of each CSV logger's ``metrics.csv`` logged before the checkpoint (Lightning's
    CSV logger deletes the file when it starts) and append to them."""
    step = checkpoint_step(ckpt_path)
    for logger in loggers:
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / "metrics.csv"
        if not path.is_file():
            continue
        with open(path, newline="") as file:
            reader = csv.DictReader(file)
            header = list(reader.fieldnames or [])
            rows = [row for row in reader if row.get("step", "").isdigit()]
        rows = [row for row in rows if int(row["step"]) < step]
        writer = logger.experiment  # created now: it deletes the file
        with open(path, "w", newline="") as file:
            out = csv.DictWriter(file, fieldnames=header)
            out.writeheader()
            out.writerows(rows)
        writer.metrics_keys = sorted(header)  # later rows extend this header
        log.info("Resumed run: appending to %s (%d earlier rows kept)", path, len(rows))
