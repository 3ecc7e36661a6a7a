"""``seglab-compare PATH... [--metric val/dice_best] [--top K] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from seglab.compare.leaderboard import compare
from seglab.compare.outputs import print_table, write_outputs
from seglab.compare.runs import RUN_FOLDER_HELP, CompareError, common_parent


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
