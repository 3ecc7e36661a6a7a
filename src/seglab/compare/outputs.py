"""What ``seglab-compare`` shows and writes: the table on the console, ``leaderboard.md``,
``leaderboard.csv`` (full precision) and ``curves.png``."""

from __future__ import annotations

from pathlib import Path

from seglab.compare.leaderboard import Leaderboard, legend_label, title
from seglab.compare.runs import curve_metric
from seglab.utils.tables import csv_text, markdown_table, write_atomic


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


def write_outputs(board: Leaderboard, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    rows = board.rows()
    md = out / "leaderboard.md"
    numeric = ("rank", "epoch", board.metric)
    write_atomic(md, f"# Leaderboard: {title(board)}\n\n{markdown_table(rows, numeric)}")
    # the full precision in the CSV
    full = [
        {**row, board.metric: "" if run.value is None else repr(run.value)}
        for row, run in zip(rows, board.runs, strict=True)
    ]
    table_csv = out / "leaderboard.csv"
    write_atomic(table_csv, csv_text(full, list(rows[0])))
    return [md, table_csv, plot_curves(board, out / "curves.png")]


def plot_curves(board: Leaderboard, png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = curve_metric(board.metric)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    plotted = 0
    labels = [legend_label(run, board.columns) for run in board.runs]
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
