"""The offline W&B run-file reader the tracking tests rest on: it reads a file that wandb's service
is still writing (CI once read one mid-chunk and failed on a half-written record)."""

from __future__ import annotations

import pytest

from tests.helpers import wandb_records


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    import wandb

    folder = tmp_path_factory.mktemp("wandb_run")
    run = wandb.init(mode="offline", dir=str(folder), project="seglab-tests", config={"lr": 0.1})
    for step in range(300):
        # rows that straddle the 32 KiB blocks, and every 50th spans several (middle chunks)
        size = 80_000 if step % 50 == 49 else step * 20
        run.log({"loss": 1.0 / (step + 1), "note": "x" * size})
    run.finish()
    path = wandb_records.run_file(folder)
    wandb_records.read_finished_file(path)
    return path


def test_a_finished_run_file_reads_back_in_full(run_file):
    records = wandb_records.read_records(run_file)
    rows = wandb_records.history(records)
    assert [row["loss"] for row in rows] == [1.0 / (step + 1) for step in range(300)]
    assert wandb_records.config(records)["lr"] == 0.1
    assert wandb_records.exit_code(records) == 0


def test_a_file_cut_anywhere_reads_as_its_whole_records(run_file, tmp_path):
    data = run_file.read_bytes()
    assert len(data) > 3 * wandb_records.BLOCK  # records span blocks
    full = wandb_records.read_records(run_file)
    cut = tmp_path / "run-cut.wandb"
    counts = []
    stride = len(data) // 300 | 1  # an odd stride: cuts land in headers and payloads
    for size in range(8, len(data), stride):
        cut.write_bytes(data[:size])
        records = wandb_records.read_records(cut)
        assert records == full[: len(records)]  # a prefix of the records, never a half one
        counts.append(len(records))
    assert counts == sorted(counts) and counts[-1] < len(full)


def test_a_corrupt_chunk_ends_the_reading_there(run_file, tmp_path):
    data = bytearray(run_file.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    broken = tmp_path / "run-broken.wandb"
    broken.write_bytes(bytes(data))
    full = wandb_records.read_records(run_file)
    records = wandb_records.read_records(broken)
    assert 0 < len(records) < len(full) and records == full[: len(records)]


def test_a_file_that_is_not_a_run_file_is_named(tmp_path):
    other = tmp_path / "run-x.wandb"
    other.write_bytes(b"not a run file")
    with pytest.raises(ValueError, match="not a W&B run file"):
        wandb_records.read_records(other)
