"""Compare finished runs: ``seglab-compare PATH... [--metric val/dice_best] [--top K]``.

Finds every run folder (one holding ``.hydra/config.yaml`` and ``csv/metrics.csv``) under the given
run dirs, multirun dirs or globs, ranks the runs by a metric and shows, beside it, only the
hyperparameters that differ between them. Prints the leaderboard and writes ``leaderboard.md``,
``leaderboard.csv`` and ``curves.png`` (the validation curve of every run) into ``--out``, by
default the common parent of the runs (for one multirun: the multirun folder itself).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

import seglab.config  # noqa: F401  (registers the ${len:...} resolver used by the configs)
from seglab.utils.run_info import flatten

CONFIG_FILE = Path(".hydra") / "config.yaml"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
HYDRA_FILE = Path(".hydra") / "hydra.yaml"
METRICS_FILE = Path("csv") / "metrics.csv"
RUN_FOLDER_HELP = (
    f"A run folder holds {CONFIG_FILE} and {METRICS_FILE} (logs/train/runs/<date>_<time>/, or "
    "logs/train/multiruns/<date>_<time>/<job>/); the CSV is written by logger=csv or logger=wandb."
)
# Top-level sections and leaf names that are locations, not hyperparameters.
DROPPED_SECTIONS = ("paths", "hydra")
DROPPED_LEAVES = ("ckpt_path", "dirpath", "save_dir", "default_root_dir", "output_dir")
MISSING = "-"


class CompareError(Exception):
    """A user error: reported as one message with exit code 2."""


@dataclass
class Run:
    path: Path
    label: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    value: float | None = None
    epoch: int | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)
    note: str = ""


@dataclass
class Leaderboard:
    metric: str
    mode: str
    runs: list[Run]  # ranked runs first, then the runs without the metric
    columns: list[str]  # the hyperparameters that differ between the runs
    total: int = 0  # runs found (``runs`` may be cut to the best K)

    def rows(self) -> list[dict[str, str]]:
        rows = []
        for rank, run in enumerate(self.runs, start=1):
            row = {
                "rank": str(rank) if run.value is not None else MISSING,
                "run": run.label,
                self.metric: MISSING if run.value is None else f"{run.value:.4f}",
                "epoch": MISSING if run.epoch is None else str(run.epoch),
            }
            row.update({key: format_value(run.params.get(key, MISSING)) for key in self.columns})
            if any(r.note for r in self.runs):
                row["note"] = run.note
            rows.append(row)
        return rows


# --------------------------------------------------------------------------------------------
# configs: flatten, and keep what differs


def is_location(key: str) -> bool:
    """Paths, output folders and Hydra's own settings are not hyperparameters."""
    parts = key.split(".")
    if parts[0] in DROPPED_SECTIONS or parts[0].startswith("hydra/"):
        return True
    return any(part in DROPPED_LEAVES or part.endswith("_dir") for part in parts)


def differing_keys(params: Sequence[Mapping[str, Any]], first: Iterable[str] = ()) -> list[str]:
    """The keys whose value is not the same in every mapping (a key missing somewhere differs).

    Location keys (see :func:`is_location`) are left out. The keys in ``first`` (those set on the
    command line) come first, the others (derived through interpolations, ...) after; each part
    sorted by name.
    """
    keys = {key for flat in params for key in flat if not is_location(key)}
    differing = []
    for key in keys:
        values = [flat.get(key, MISSING) for flat in params]
        if any(format_value(v) != format_value(values[0]) for v in values[1:]):
            differing.append(key)
    first = set(first)
    return sorted(differing, key=lambda key: (key not in first, key))


def format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str)
    return str(value)


def read_params(run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The flattened config of a run (interpolations resolved where possible), the Hydra group
    choices (``model: unet``) under the group's name, and the command-line overrides."""
    cfg = OmegaConf.load(run_dir / CONFIG_FILE)
    flat = flatten(OmegaConf.to_container(cfg, resolve=False), expand_lists=True)
    for key, value in flat.items():
        if isinstance(value, str) and "${" in value and not is_location(key):
            # a resolver of the training process (hydra:, oc.env): keep the text
            with contextlib.suppress(Exception):
                flat[key] = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
            if OmegaConf.is_config(flat[key]):
                flat[key] = OmegaConf.to_container(flat[key], resolve=True)
    hydra_file = run_dir / HYDRA_FILE
    if hydra_file.is_file():
        hydra_cfg = OmegaConf.to_container(OmegaConf.load(hydra_file), resolve=False) or {}
        choices = (hydra_cfg.get("hydra", {}).get("runtime", {}) or {}).get("choices", {}) or {}
        for group, choice in choices.items():
            if group not in flat and not is_location(group):
                flat[group] = choice
    overrides_file = run_dir / OVERRIDES_FILE
    overrides = OmegaConf.load(overrides_file) if overrides_file.is_file() else []
    return flat, [str(o) for o in overrides or []]


def override_keys(overrides: Iterable[str]) -> set[str]:
    """``["+model.x=1", "~seed", "model=resunet"]`` -> ``{"model.x", "seed", "model"}``."""
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides}


# --------------------------------------------------------------------------------------------
# metrics


def is_last_value_metric(metric: str) -> bool:
    """Best-so-far and test metrics are read as their last logged value."""
    return metric.endswith("_best") or metric.startswith("test/")


def curve_metric(metric: str) -> str:
    """The per-epoch validation curve behind a metric: val/dice_best, test/dice -> val/dice."""
    base = metric.removesuffix("_best")
    return "val/" + base.removeprefix("test/") if base.startswith("test/") else base


def default_mode(metric: str) -> str:
    return "min" if "loss" in metric else "max"


def read_metric_rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as file:
        return list(csv.DictReader(file))


def values_of(rows: list[dict[str, str]], name: str) -> list[tuple[int | None, float]]:
    """``(epoch, value)`` of every row that logged ``name`` (NaN and empty cells skipped)."""
    values = []
    for row in rows:
        text = row.get(name)
        if text in (None, ""):
            continue
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isnan(value):
            continue
        epoch = row.get("epoch")
        values.append((int(float(epoch)) if epoch not in (None, "") else None, value))
    return values


def pick(values: list[tuple[int | None, float]], metric: str, mode: str):
    """The value that ranks a run: the last one for ``*_best`` / ``test/*``, else the best."""
    if not values:
        return None, None
    if is_last_value_metric(metric):
        epoch, value = values[-1]
    else:
        choose = max if mode == "max" else min
        epoch, value = choose(values, key=lambda item: item[1])  # first of equal values
    return value, epoch


def load_run(run_dir: Path, metric: str, mode: str) -> Run:
    run = Run(path=run_dir)
    run.params, run.overrides = read_params(run_dir)
    rows = read_metric_rows(run_dir / METRICS_FILE)
    run.value, run.epoch = pick(values_of(rows, metric), metric, mode)
    if run.value is None:
        # the run-level metrics (not the per-class ones), to pick another --metric from
        logged = sorted({k for row in rows for k, v in row.items() if v and k.count("/") == 1})
        shown = ", ".join(logged[:12]) + (", ..." if len(logged) > 12 else "")
        run.note = f"no {metric} in {METRICS_FILE} (logged: {shown or 'nothing'})"
    by_epoch = {e: v for e, v in values_of(rows, curve_metric(metric)) if e is not None}
    run.curve = sorted(by_epoch.items())
    return run


# --------------------------------------------------------------------------------------------
# finding runs


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and (path / METRICS_FILE).is_file()


def find_runs(paths: Sequence[str]) -> list[Path]:
    """Every run folder under ``paths`` (run dirs, multirun dirs, globs), sorted, deduplicated."""
    missing, found = [], {}
    for pattern in paths:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [Path(m) for m in matches if Path(m).exists()]
        if not matches:
            missing.append(pattern)
        for match in matches:
            for run_dir in walk_runs(match):
                found.setdefault(run_dir.resolve(), run_dir)
    if missing:
        raise CompareError(
            f"no such path: {', '.join(missing)}. Pass run folders, multirun folders or globs "
            f"(quoted). {RUN_FOLDER_HELP}"
        )
    if not found:
        raise CompareError(f"no run folder found under {', '.join(paths)}. {RUN_FOLDER_HELP}")
    return [found[key] for key in sorted(found)]


def walk_runs(root: Path) -> Iterable[Path]:
    if root.is_file():
        return
    if is_run_dir(root):
        yield root
        return
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if is_run_dir(here):
            dirnames.clear()  # nothing below a run folder is another run
            yield here
        else:
            dirnames[:] = sorted(d for d in dirnames if d not in {".hydra", "wandb", "csv"})


def common_parent(run_dirs: Sequence[Path]) -> Path:
    """The deepest folder holding every run (the multirun folder for the jobs of one sweep)."""
    return Path(os.path.commonpath([str(p.resolve().parent) for p in run_dirs]))


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Paths relative to the current directory when all runs lie below it, else to their
    common parent."""
    cwd = Path.cwd().resolve()
    resolved = [p.resolve() for p in run_dirs]
    if all(p.is_relative_to(cwd) and p != cwd for p in resolved):
        return [str(p.relative_to(cwd)) for p in resolved]
    parent = common_parent(run_dirs)
    return [str(p.relative_to(parent)) for p in resolved]


# --------------------------------------------------------------------------------------------
# the leaderboard


def compare(paths: Sequence[str], metric: str = "val/dice_best", mode: str | None = None):
    """Load every run under ``paths`` and rank them by ``metric``."""
    mode = mode or default_mode(metric)
    if mode not in ("max", "min"):
        raise CompareError(f"mode must be 'max' or 'min', got {mode!r}")
    run_dirs = find_runs(paths)
    runs = [load_run(path, metric, mode) for path in run_dirs]
    for run, label in zip(runs, run_labels(run_dirs), strict=True):
        run.label = label
    sign = -1.0 if mode == "max" else 1.0
    ranked = sorted(
        (r for r in runs if r.value is not None), key=lambda r: (sign * r.value, r.label)
    )
    unranked = sorted((r for r in runs if r.value is None), key=lambda r: r.label)
    first = set().union(*(override_keys(r.overrides) for r in runs))
    columns = differing_keys([r.params for r in runs], first=first)
    return Leaderboard(
        metric=metric, mode=mode, runs=ranked + unranked, columns=columns, total=len(runs)
    )


def describe(run: Run, columns: Sequence[str], max_keys: int = 4) -> str:
    """A legend label: the run's differing hyperparameters, or its path when none differ."""
    if not columns:
        return run.label
    parts = [f"{key}={format_value(run.params.get(key, MISSING))}" for key in columns[:max_keys]]
    if len(columns) > max_keys:
        parts.append("...")
    return ", ".join(parts)


def title(board: Leaderboard) -> str:
    shown = f"{len(board.runs)} of {board.total} runs" if len(board.runs) < board.total else ""
    shown = shown or f"{board.total} run{'s' if board.total != 1 else ''}"
    better = "higher" if board.mode == "max" else "lower"
    return f"{shown} ranked by {board.metric} ({better} is better)"


def print_table(board: Leaderboard, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = board.rows()
    table = Table(title=title(board))
    for name in rows[0]:
        numeric = name in ("rank", "epoch", board.metric)
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*row.values())
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: do not fold the table into 80 columns
            console = Console(width=160)
    console.print(table)


def markdown_table(rows: list[dict[str, str]], metric: str = "") -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    header = list(rows[0])
    lines = [
        "| " + " | ".join(cell(h) for h in header) + " |",
        "| "
        + " | ".join("---:" if h in ("rank", "epoch", metric) else "---" for h in header)
        + " |",
    ]
    lines += ["| " + " | ".join(cell(row[h]) for h in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_outputs(board: Leaderboard, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    rows = board.rows()
    md = out / "leaderboard.md"
    md.write_text(f"# Leaderboard: {title(board)}\n\n{markdown_table(rows, board.metric)}")
    table_csv = out / "leaderboard.csv"
    with open(table_csv, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        for row, run in zip(rows, board.runs, strict=True):
            # the full precision in the CSV
            writer.writerow({**row, board.metric: "" if run.value is None else repr(run.value)})
    return [md, table_csv, plot_curves(board, out / "curves.png")]


def plot_curves(board: Leaderboard, png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = curve_metric(board.metric)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    plotted = 0
    labels = [describe(run, board.columns) for run in board.runs]
    for rank, (run, label) in enumerate(zip(board.runs, labels, strict=True), start=1):
        if not run.curve:
            continue
        epochs, values = zip(*run.curve, strict=True)
        if labels.count(label) > 1 and label != run.label:  # same hyperparameters: say which run
            label = f"{label} ({run.label})"
        prefix = f"{rank}. " if run.value is not None else "- "
        ax.plot(epochs, values, marker="o", label=prefix + label)
        plotted += 1
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    ax.set_title(f"{name} per epoch" + ("" if plotted else f" (no run logged {name})"))
    ax.grid(True, alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if plotted:
        ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png


# --------------------------------------------------------------------------------------------
# command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="seglab-compare",
        description="Rank finished runs by a metric, showing the hyperparameters that differ. "
        "Writes leaderboard.md, leaderboard.csv and curves.png. " + RUN_FOLDER_HELP,
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="run folders, multirun folders or globs"
    )
    parser.add_argument(
        "--metric", default="val/dice_best", help="rank by this metric (default: val/dice_best)"
    )
    parser.add_argument(
        "--mode",
        choices=("max", "min"),
        default=None,
        help="higher (max) or lower (min) is better; default: min for a *loss* metric, else max",
    )
    parser.add_argument("--top", type=int, default=None, metavar="K", help="show the best K runs")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for leaderboard.md/.csv and curves.png (default: the common parent of the "
        "runs, i.e. the multirun folder when comparing one sweep)",
    )
    args = parser.parse_args(argv)
    if args.top is not None and args.top < 1:
        parser.error(f"--top {args.top}: give a positive number of runs")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        board = compare(args.paths, metric=args.metric, mode=args.mode)
    except CompareError as error:
        print(f"seglab-compare: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    out = args.out or common_parent([run.path for run in board.runs])
    if args.top is not None:
        board.runs = board.runs[: args.top]
    print_table(board)
    for path in write_outputs(board, out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
