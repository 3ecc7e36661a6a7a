"""Where a study lives (``hydra.sweeper.storage``), opened the same way by the sweeper and by the
trial's job, in any process or on any machine:

- ``sqlite:///<path>.db`` (the default, ``<sweep dir>/optuna.db``; one machine): the folder is
  created first (the launcher creates the sweep folder only at the first launch); a file made by
  Optuna 2.10 (seglab's searches before) is upgraded, keeping a copy;
- ``postgresql://user:password@host:port/db`` (or any SQLAlchemy URL; several machines);
- ``journal:///<path>`` or ``<path>.log``: Optuna's journal file (a shared filesystem without a
  database; no heartbeat);
- ``null``: in memory (one process; nothing resumes and a job cannot reach its trial).

With ``heartbeat_interval`` (seconds) each running trial's worker records a heartbeat; a trial
whose heartbeat is older than ``grace_period`` (a dead worker) is failed by the next worker that
asks for a trial, and re-queued with its parameters (Optuna's
``RetryHeartbeatStaleTrialCallback``, Optuna >= 4.9) up to ``failed_trial_max_retry`` times.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy.engine
import sqlalchemy.exc
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend

log = logging.getLogger(__name__)

JOURNAL = "journal:///"
STORAGE_HELP = (
    "Use sqlite:///<path>.db (the default is optuna.db in the sweep folder), "
    "postgresql://user:password@host:port/database, journal:///<path>.log (a shared "
    "filesystem without a database), or hydra.sweeper.storage=null (in memory)."
)


def journal_path(url: str) -> Path | None:
    """The journal file that ``url`` names, or None for a database URL."""
    if url.startswith(JOURNAL):
        return Path(url[len(JOURNAL) - 1 :])
    if "://" not in url and url.endswith(".log"):
        return Path(url)
    return None


def open_storage(
    url: str | None,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    failed_trial_max_retry: int | None = 3,
) -> BaseStorage | None:
    """The storage ``url`` names (None: in memory), with the heartbeat settings when given."""
    if url is None:
        return None
    url = str(url)
    try:
        path = journal_path(url)
        if path is not None:
            if heartbeat_interval:
                log.info(
                    "Optuna's journal storage has no heartbeat: a trial of a worker that dies on "
                    "another machine stays RUNNING (hydra.sweeper.heartbeat_interval is ignored)"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        retry = None
        if heartbeat_interval:
            with warnings.catch_warnings():  # "experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = RetryHeartbeatStaleTrialCallback(max_retry=failed_trial_max_retry)
        settings = dict(
            heartbeat_interval=heartbeat_interval or None,
            grace_period=grace_period or None,
            heartbeat_stale_trial_callback=retry,
        )
        with warnings.catch_warnings():  # "heartbeat_interval is experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            path = sqlite_file(url)
            if path is None:
                return open_rdb(url, settings)
            with sqlite_lock(path):
                try:
                    return open_rdb(url, settings)
                except RuntimeError as error:
                    if "storage upgrade" not in str(error):
                        raise
                    upgrade_sqlite(url, path)
                    return open_rdb(url, settings)
    except Exception as error:
        raise RuntimeError(
            f"Cannot open hydra.sweeper.storage={url!r}: {type(error).__name__}: {error}. "
            + STORAGE_HELP
        ) from error


def sqlite_file(url: str) -> Path | None:
    """The file of an sqlite URL (its query, e.g. ``?timeout=30``, left out), or None for
    another database or an in-memory sqlite (``sqlite://``, ``sqlite:///:memory:``)."""
    if not url.startswith("sqlite"):
        return None
    database = sqlalchemy.engine.make_url(url).database
    return Path(database) if database and database != ":memory:" else None


@contextmanager
def sqlite_lock(path: Path):
    """Hold an exclusive lock on the sqlite file ``path`` (created with its folder; the launcher
    creates the sweep folder only at the first launch) while it is opened: workers started
    together on one machine would otherwise race to create Optuna's tables, and the loser died
    on "table studies already exists". An ``flock`` does not touch sqlite's own (fcntl) locks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_rdb(url: str, settings: dict, attempts: int = 5) -> RDBStorage:
    """``RDBStorage(url)``; when workers start together on a new database server, one of them
    may find the tables half-created by another (PostgreSQL: a unique violation on ``CREATE
    TYPE`` or "already exists"): it tries again once the other has finished. (sqlite files are
    opened under ``sqlite_lock`` instead.)"""
    for attempt in range(attempts):
        try:
            return RDBStorage(url, **settings)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as error:
            if attempt == attempts - 1:
                raise
            log.info(
                "The study's tables are being created by another worker (%s): retrying",
                type(error.orig).__name__,
            )
            time.sleep(1.0 + attempt)
    raise RuntimeError(f"{url}: no attempts")


def upgrade_sqlite(url: str, path: Path) -> None:
    """Upgrade the sqlite study ``path`` (of ``url``) made by an older Optuna (seglab's searches
    before Optuna 4 used 2.10, whose table schema Optuna >= 3 no longer reads), keeping a copy
    of the old file."""
    backup = path.with_name(path.name + ".optuna2-backup")
    shutil.copy2(path, backup)
    log.warning(
        "%s was made by an older Optuna: upgrading its tables (optuna storage upgrade); the "
        "old file is kept as %s",
        path,
        backup,
    )
    RDBStorage(url, skip_compatibility_check=True).upgrade()


def superseded(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Numbers of the failed trials that were re-queued (by a heartbeat's retry callback), which
    the re-queued copy replaces."""
    with warnings.catch_warnings():  # "retried_trial_number is experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        numbers = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials}
    return numbers - {None}
