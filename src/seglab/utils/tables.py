"""Table writing shared by ``seglab-compare`` (the leaderboard) and the sweep summary: Markdown and
CSV text from rows of strings, and files replaced atomically."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from seglab.utils.files import write_atomically


def markdown_table(rows: Sequence[Mapping[str, str]], numeric: Iterable[str] = ()) -> str:
    """A Markdown table of ``rows`` (the first row's keys are the header); the ``numeric`` columns
    are right-aligned. ``|`` and newlines in cells are escaped."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    header = list(rows[0])
    numeric = set(numeric)
    lines = [
        "| " + " | ".join(cell(h) for h in header) + " |",
        "| " + " | ".join("---:" if h in numeric else "---" for h in header) + " |",
    ]
    lines += ["| " + " | ".join(cell(row[h]) for h in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> str:
    """The CSV text of ``rows`` under a header of ``fieldnames``."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Readers in other processes see the old or the new file, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda file: file.write(text.encode()))
