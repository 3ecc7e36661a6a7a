"""The leaderboard: runs ranked by a metric, with the hyperparameters that differ between them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from seglab.compare.runs import (
    MISSING,
    CompareError,
    Run,
    default_mode,
    find_runs,
    format_value,
    is_location,
    load_run,
    override_keys,
    run_labels,
)


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


def legend_label(run: Run, columns: Sequence[str], max_keys: int = 4) -> str:
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
