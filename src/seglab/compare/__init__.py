"""Compare finished runs: ``seglab-compare PATH... [--metric val/dice_best] [--top K]``.

Finds every run folder (one holding ``.hydra/config.yaml`` and ``csv/metrics.csv``) under the given
run dirs, multirun dirs or globs, ranks the runs by a metric and shows, beside it, only the
hyperparameters that differ between them. Prints the leaderboard and writes ``leaderboard.md``,
``leaderboard.csv`` and ``curves.png`` (the validation curve of every run) into ``--out``, by
default the common parent of the runs (for one multirun: the multirun folder itself).

- :mod:`~seglab.compare.runs`: finding run folders, reading their config and metrics;
- :mod:`~seglab.compare.leaderboard`: ranking and the differing hyperparameters;
- :mod:`~seglab.compare.outputs`: the console table, Markdown, CSV and curves;
- :mod:`~seglab.compare.cli`: the command line.
"""

from seglab.compare.cli import main
from seglab.compare.leaderboard import Leaderboard, compare, differing_keys, legend_label
from seglab.compare.outputs import print_table, write_outputs
from seglab.compare.runs import CompareError, Run, curve_metric, is_location, pick

__all__ = [
    "CompareError",
    "Leaderboard",
    "Run",
    "compare",
    "curve_metric",
    "differing_keys",
    "is_location",
    "legend_label",
    "main",
    "pick",
    "print_table",
    "write_outputs",
]
