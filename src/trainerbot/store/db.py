"""Engine, sessions and migrations for the store.

SQLite (the default) runs in WAL mode with a busy timeout and foreign keys on, so
readers never block the writer and a short write contention waits instead of failing.
A PostgreSQL URL uses the same code. ``Store.open`` runs the Alembic migrations to
head, so a fresh data folder or an old one both come up at the current schema.
All calls here are blocking: the core runs them in a worker thread.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from trainerbot.errors import DISK_FULL, STORE_DOWN, ConfigError, NotAvailable

SQLITE_BUSY_TIMEOUT_MS = 15_000
READ_ONLY = "trainerbot_read_only"


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling would defer BEGIN; we want it explicit
            # so that a write transaction takes the lock at its start (BEGIN IMMEDIATE).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Writers take the write lock up front (so the busy timeout applies, instead of
            # a deferred lock upgrade failing at once); readers use a plain snapshot.
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def _is_unavailable(exc: OperationalError) -> bool:
    """A full disk, or a database that cannot be reached right now (as opposed to a mistake
    in a query): SQLite's locked, unopenable or full file; any PostgreSQL OperationalError
    (psycopg raises it for connection failures)."""
    reason = str(exc.orig).lower()
    if "full" in reason or "no space left" in reason:
        return True
    if isinstance(exc.orig, sqlite3.Error):
        return any(s in reason for s in ("database is locked", "unable to open database file", "disk i/o error"))
    return True


@contextmanager
def _transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session in a transaction; a full disk or an unreachable database becomes ``NotAvailable``."""
    try:
        with sessions() as session, session.begin():
            yield session
    except OperationalError as exc:
        if _is_unavailable(exc):
            raise _unavailable(exc) from None
        raise


def _unavailable(exc: OperationalError) -> NotAvailable:
    reason = str(exc.orig).lower()
    if "full" in reason or "no space left" in reason:  # SQLITE_FULL; PostgreSQL: "could not extend file … No space left"
        return NotAvailable(DISK_FULL)
    return NotAvailable(STORE_DOWN)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("trainerbot.store") / "migrations"))
    # '%' is ConfigParser's interpolation character; URLs may contain it (escaped passwords).
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class Store:
    """The database: an engine, a session factory and the migrations."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        engine = make_engine(url)
        if migrate:
            cfg = alembic_config(url)
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        return cls(engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises.
        A full disk, or a database that cannot be reached, is a clear ``NotAvailable``, and
        the store is left as it was."""
        with _transaction(self._sessions) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction: a consistent snapshot that takes no write lock."""
        with _transaction(self._read_sessions) as session:
            yield session

    def backup(self, target: Path, *, pages_per_step: int = 256) -> int:
        """A consistent copy of the store in ``target`` while writes go on (SQLite's online
        backup API; writers are never blocked for long). Written to a temporary name in the
        same folder, checked with ``PRAGMA integrity_check``, then renamed. Returns its bytes."""
        if self.engine.dialect.name != "sqlite":
            raise ConfigError("`backup` copies SQLite stores; for PostgreSQL use pg_dump.")
        target = target.expanduser().resolve()
        if target.is_dir():
            raise ConfigError(f"{target} is a folder; give the backup file's path.")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        raw = self.engine.raw_connection()
        try:
            source = raw.driver_connection
            dest = sqlite3.connect(partial)
            try:
                assert isinstance(source, sqlite3.Connection)  # a SQLite store's driver connection
                source.backup(dest, pages=pages_per_step)
                ok = dest.execute("PRAGMA integrity_check").fetchone()[0]
                dest.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                dest.close()
        finally:
            raw.close()
        if ok != "ok":
            partial.unlink(missing_ok=True)
            raise ConfigError(f"The backup failed its integrity check ({ok}); nothing was written.")
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
        return target.stat().st_size

    def close(self) -> None:
        self.engine.dispose()
