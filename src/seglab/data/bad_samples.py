"""Samples that cannot be used, met while training (``data.on_bad_sample``).

A file that becomes unreadable during a run, or a sample that breaks the data rules (NaN/inf
pixels, a mask of another size, ...), raises :class:`BadSampleError` in the loader, naming the
file. ``data.on_bad_sample=fail`` (the default) stops the run with it. ``skip`` replaces the sample
by the next good one of the split (so batches keep their size; that sample is seen twice in the
epoch), appends one line ``split<TAB>file<TAB>reason`` to ``<run dir>/bad_samples.txt`` per
sample met, and :func:`report_bad_samples` lists them at the end of the run.

The file is the record because the loader may run in DataLoader worker processes (and one per
DDP rank), which share no memory with the main process: each appends one short line per bad
sample (``O_APPEND``: whole lines, on a local file system), and rank zero reads them at the end.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import Dataset

from seglab.data.resumable import SampleKey
from seglab.data.validation import shorten
from seglab.utils.tables import write_atomic

log = logging.getLogger(__name__)

ON_BAD_SAMPLE = ("fail", "skip")
FILENAME = "bad_samples.txt"
# more bad samples in a row than this: the data (or the config) is broken, not a few files
MAX_IN_A_ROW = 10


class BadSampleError(ValueError):
    """A sample that cannot be used; the message names the split, the file and the fix. (One
    argument suffices: PyTorch re-raises a DataLoader worker's error as ``type(error)(text)``.)"""

    def __init__(self, message: str, split: str = "", file: str = "", reason: str = ""):
        super().__init__(message)
        self.split, self.file, self.reason = split, file, reason

    @classmethod
    def of(cls, split: str, index: int, file: str, reason: str, fix: str) -> BadSampleError:
        where = f"{split} sample {index}" if file in reason else f"{split} sample {index} ({file})"
        message = (
            f"{where}: {reason}. {fix}; or set data.on_bad_sample=skip to leave such samples "
            f"out (listed in {FILENAME})"
        )
        return cls(message, split, file, reason)


def check_on_bad_sample(value: str) -> str:
    if value not in ON_BAD_SAMPLE:
        raise ValueError(
            f"data.on_bad_sample={value!r} must be one of {ON_BAD_SAMPLE}: fail stops at the "
            "first bad sample, skip leaves it out and lists it in bad_samples.txt"
        )
    return value


class SkipBadSamples(Dataset):
    """``dataset`` (a :class:`~seglab.data.datamodule.TransformedDataset`) with each bad sample
    replaced by the next good one, and recorded in ``record`` (see the module docstring)."""

    def __init__(self, dataset: Dataset, record: Path):
        self.dataset = dataset
        self.record = Path(record)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | SampleKey):
        index, epoch = SampleKey.of(key)
        size = len(self.dataset)
        error: BadSampleError | None = None
        for offset in range(min(MAX_IN_A_ROW, size)):
            try:
                return self.dataset[SampleKey((index + offset) % size, epoch)]
            except BadSampleError as bad:
                error = bad
                self._append(bad)
        raise ValueError(
            f"{min(MAX_IN_A_ROW, size)} samples in a row are bad, the last: {error}. More than "
            "a few files are broken: fix the data or the data config (the data check before "
            "training lists every problem: check_data=true check_data_samples=null)"
        ) from error

    def _append(self, error: BadSampleError) -> None:
        reason = " ".join(error.reason.split())
        with open(self.record, "a", encoding="utf-8") as file:
            file.write(f"{error.split}\t{error.file}\t{reason}\n")


def read_bad_samples(path: Path) -> tuple[list[str], int]:
    """The distinct lines of a ``bad_samples.txt`` in first-met order, and how many were met."""
    if not path.is_file():
        return [], 0
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(dict.fromkeys(lines)), len(lines)


@rank_zero_only
def report_bad_samples(folder: str | Path) -> None:
    """At the end of a run: one warning naming the skipped samples, and ``bad_samples.txt``
    rewritten with each of them once."""
    path = Path(folder) / FILENAME
    distinct, met = read_bad_samples(path)
    if not distinct:
        return
    write_atomic(path, "".join(f"{line}\n" for line in distinct))
    files = [line.split("\t")[1] if "\t" in line else line for line in distinct]
    log.warning(
        "%d bad sample(s) were skipped (data.on_bad_sample=skip; met %d time(s)), listed in %s: "
        "%s. Fix or remove those files.",
        len(distinct),
        met,
        path,
        shorten(files),
    )
