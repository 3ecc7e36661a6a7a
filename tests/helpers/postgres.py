"""A throwaway PostgreSQL server for the tests (PostgreSQL 15's binaries; skipped without them).

The server refuses to run as root: under root the cluster belongs to ``nobody``, in a folder of
its own under /tmp (pytest's tmp folders are private to root), and listens on a Unix socket in
that folder only (no TCP port).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("SEGLAB_PG_BIN", "/usr/lib/postgresql/15/bin"))


def as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "nobody", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a cluster; yields its SQLAlchemy URL; stops it and removes its folder after."""
    if not (PG_BIN / "initdb").is_file():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (set SEGLAB_PG_BIN)")
    pytest.importorskip("psycopg2", reason="the postgres extra (psycopg2-binary) is missing")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    root = Path(tempfile.mkdtemp(prefix="seglab-pg-"))
    data = root / "data"
    root.chmod(0o755)
    data.mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(data, "nobody", "nogroup")
    run = lambda *argv: subprocess.run(as_server_user(list(argv)), check=True, capture_output=True)  # noqa: E731
    try:
        run(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = f"-k {data} -c listen_addresses='' -c fsync=off -c max_connections=50"
        log = str(data / "server.log")
        run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start")
        try:
            yield f"postgresql+psycopg2://postgres@/postgres?host={data}"
        finally:
            run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
