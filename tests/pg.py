"""A throw-away PostgreSQL server for the tests: ``initdb`` into a temporary folder and
``pg_ctl start`` on a free 127.0.0.1 port, run as the ``postgres`` system user (PostgreSQL
refuses to run as root, and these machines run tests as root); stopped and deleted at the
end. Each test gets a database of its own."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "trainerbot"
_names = itertools.count(1)


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is missing; `make test` installs the Debian package `postgresql`.")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        command = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in args)]
    else:
        command = list(args)
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


class PgServer:
    """A throw-away server that can be stopped and started again (the same data and port)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="trainerbot-pg-"))
        self.data = self.root / "data"
        self.data.mkdir()
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for path in (self.root, self.data):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.port = _free_port()
        self.url = f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}"
        done = _as_postgres(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr[-500:]}")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
                   "-c max_connections=200")
        done = _as_postgres(_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        if done.returncode != 0:
            log = (self.root / "log").read_text()[-500:] if (self.root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-500:]} {log}")

    def stop(self) -> None:
        _as_postgres(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running server; yields the URL prefix ``postgresql+psycopg://trainerbot@127.0.0.1:PORT``."""
    server = PgServer()
    try:
        server.start()
        yield server.url
    finally:
        server.remove()


def new_database(server: str) -> str:
    """A fresh, empty database on ``server``; returns its URL."""
    import psycopg

    name = f"t{os.getpid()}_{next(_names)}"
    with psycopg.connect(server.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
