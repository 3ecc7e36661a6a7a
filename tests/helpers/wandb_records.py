"""Read an offline W&B run file (``run-<id>.wandb``) back through wandb's own protobuf records.

The file is a LevelDB-style log: a 7-byte header (``:W&B``, 0xBEE1, version), then 32 KiB blocks
of chunks, each with a 7-byte header (crc32 u32, length u16, type u8: 1 full, 2 first, 3 middle,
4 last) whose payloads join into serialised ``wandb_internal_pb2.Record`` messages. The crc32 is
zlib's over the payload, seeded with the crc32 of the type byte. wandb (0.31) writes the file from
its Go service and ships no Python reader, hence this one.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> list[wandb_internal_pb2.Record]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    records, pending, offset = [], b"", HEADER
    while offset + HEADER <= len(data):
        room = BLOCK - offset % BLOCK
        if room < HEADER:
            offset += room
            continue
        crc, length, kind = struct.unpack("<IHB", data[offset : offset + HEADER])
        payload = data[offset + HEADER : offset + HEADER + length]
        offset += HEADER + length
        if kind == 0 and length == 0:
            offset += BLOCK - offset % BLOCK if offset % BLOCK else 0
            continue
        if len(payload) < length or crc != zlib.crc32(payload, zlib.crc32(bytes([kind]))):
            break  # the chunk wandb's service is writing now: the records before it are whole
        if kind in (FULL, FIRST):
            pending = payload
        else:
            pending += payload
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def history(records) -> list[dict]:
    """The logged rows (``wandb.log`` calls), values decoded from JSON."""
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows


def _updates(records, kind: str) -> dict:
    """The latest value per key of the ``config`` or ``summary`` records, decoded from JSON."""
    values = {}
    for record in records:
        if record.WhichOneof("record_type") == kind:
            for item in getattr(record, kind).update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values


def config(records) -> dict:
    """The run config as logged: the keys given to ``wandb.init(config=...)``, then
    ``wandb.config``."""
    runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    at_init = {
        item.key or "/".join(item.nested_key): json.loads(item.value_json)
        for run in runs[:1]
        for item in run.config.update
    }
    return at_init | _updates(records, "config")


def summary(records) -> dict:
    """The run summary as updated (``run.summary[key] = value``), values decoded from JSON."""
    return _updates(records, "summary")


def tags(records) -> set[str]:
    """Every tag the run had (at the start or set later)."""
    runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    return {tag for run in runs for tag in run.tags}


def run_file(run_dir: str | Path) -> Path:
    """The single offline run file under ``run_dir``; fails if there are none or several."""
    files = sorted(Path(run_dir).glob("**/offline-run-*/run-*.wandb"))
    if len(files) != 1:
        raise AssertionError(f"expected one offline W&B run under {run_dir}, found {files}")
    return files[0]


def run_info(records) -> wandb_internal_pb2.RunRecord:
    """The run's own record: ``display_name``, ``run_group``, ``job_type``, ``run_id``, ``tags``."""
    for record in records:
        if record.WhichOneof("record_type") == "run":
            return record.run
    raise AssertionError("the run file holds no run record")


def artifact_files(records, kind: str = "run_table") -> dict[str, list[str]]:
    """The files of each logged artifact of ``kind`` by artifact name. A ``wandb.Table`` logged
    to a run is a ``run_table`` artifact: its JSON and the media of its cells (images, masks),
    staged for ``wandb sync`` outside the run folder in offline mode."""
    return {
        record.artifact.name: [entry.path for entry in record.artifact.manifest.contents]
        for record in records
        if record.WhichOneof("record_type") == "artifact" and record.artifact.type == kind
    }


def exit_code(records) -> int:
    """The exit code the run was finished with (``wandb.finish(exit_code=...)``); the dashboard
    shows a non-zero one as failed."""
    exits = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    if not exits:
        raise AssertionError("the run file holds no exit record: the run was never finished")
    return exits[-1].exit_code


def read_finished(run_dir: str | Path, wait: float = 120.0) -> list[wandb_internal_pb2.Record]:
    """The records of the single offline run under ``run_dir`` once its exit record is on disk
    (:func:`read_finished_file`)."""
    return read_finished_file(run_file(run_dir), wait)


def read_finished_file(path: str | Path, wait: float = 120.0) -> list[wandb_internal_pb2.Record]:
    """The records of one offline run file once its exit record is on disk.

    wandb's service may still be writing the file when ``wandb.finish`` has returned (seen on a
    loaded machine: history rows and the exit record missing at the first read), so this reads
    again until the exit record is there, for at most ``wait`` seconds (then returns what is).
    """
    deadline = time.monotonic() + wait
    while True:
        records = read_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        if time.monotonic() > deadline:
            return records
        time.sleep(0.2)
