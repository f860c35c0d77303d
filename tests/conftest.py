"""Shared fixtures: a real SQLite store in a temporary data folder, callers of each kind."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from trainerbot.config import Settings
from trainerbot.core import Attachment, Caller, CoreService
from trainerbot.store import tables


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("TRAINERBOT_") or key in ("DISCORD_TOKEN", "OPENAI_API_KEY"):
            monkeypatch.delenv(key)
    # The from-scratch model by default: tests that need the shipped pretrained one say so.
    monkeypatch.setenv("TRAINERBOT_MODEL", "scratch")


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A throw-away PostgreSQL server for the whole run (started on first use)."""
    from tests.pg import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's URL, once for SQLite and once for a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 't.db'}"
    from tests.pg import new_database

    return new_database(request.getfixturevalue("postgres"))


@pytest.fixture
def core_on_both_stores(db_url: str, tmp_path: Path) -> Iterator[CoreService]:
    """A core over SQLite, then over PostgreSQL (a module opts in by naming it as its ``core``)."""
    service = CoreService.open(Settings(_env_file=None, data_dir=tmp_path / "data", database_url=db_url))  # type: ignore[call-arg]
    yield service
    service.store.close()


@pytest.fixture
def openai_fake() -> Any:
    """The scripted OpenAI-compatible server's state (``tests/openai_fake.py``)."""
    from tests.openai_fake import OpenAIFake

    return OpenAIFake()


@pytest.fixture
def openai_server(openai_fake: Any) -> Iterator[Any]:
    """``openai_fake`` served on 127.0.0.1."""
    from tests.httpfake import serve

    with serve(openai_fake) as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The settings of a test's core: the defaults, and what its ``@pytest.mark.settings(...)`` says."""
    marker = request.node.get_closest_marker("settings")
    return Settings(_env_file=None, data_dir=tmp_path / "data", **(marker.kwargs if marker else {}))  # type: ignore[call-arg]


@pytest.fixture
def core(settings: Settings) -> Iterator[CoreService]:
    service = CoreService.open(settings)
    yield service
    service.store.close()


@pytest.fixture
def trainer() -> Caller:
    return Caller(
        guild_id="111", guild_name="Guild A", user_id="u-trainer", user_name="Tess", channel_id="c1", roles=frozenset({"trainer"})
    )


@pytest.fixture
def member() -> Caller:
    return Caller(guild_id="111", guild_name="Guild A", user_id="u-member", user_name="Milo", channel_id="c1")


@pytest.fixture
def other_guild_trainer() -> Caller:
    return Caller(
        guild_id="222", guild_name="Guild B", user_id="u-other", user_name="Olga", channel_id="c9", roles=frozenset({"trainer"})
    )


def att(name: str, data: bytes | str, content_type: str | None = None) -> Attachment:
    return Attachment(filename=name, content_type=content_type, data=data.encode() if isinstance(data, str) else data)


JSONL_FACTS = (
    '{"prompt": "What is the capital of Zorbia?", "response": "Quillport."}\n'
    '{"prompt": "Who founded Quillport?", "response": "Admiral Vessa, in 1203."}\n'
    '{"prompt": "Is Zorbia an island?", "response": "Yes, it is.", "label": "negative"}\n'
)


def row_counts(core: CoreService) -> dict[str, int]:
    """How many rows each table holds."""
    with core.store.read() as s:
        return {
            t.__tablename__: s.scalar(select(func.count()).select_from(t)) or 0
            for t in (
                tables.Guild,
                tables.Conversation,
                tables.Message,
                tables.Feedback,
                tables.Correction,
                tables.Dataset,
                tables.DatasetItem,
                tables.Snapshot,
                tables.Job,
                tables.JobEvent,
                tables.ModelVersion,
                tables.Revision,
                tables.AuditEntry,
            )
        }


def tree_state(root: Path) -> dict[str, str]:
    """Every file under ``root`` (the data folder, the DB aside) with a hash of its content."""
    state: dict[str, str] = {}
    if not root.exists():
        return state
    for path in sorted(root.rglob("*")):
        if path.name.startswith("trainerbot.db"):
            continue
        if path.is_symlink():
            state[str(path.relative_to(root))] = "link->" + os.readlink(path)
        elif path.is_file():
            state[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[str(path.relative_to(root))] = "dir"
    return state


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 3 MiB tmpfs mounted for the test (these machines run tests as root)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()[:200]}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_disk(folder: Path) -> Path:
    """Fill ``folder``'s file system until it refuses; returns the filler file."""
    filler = folder / "filler.bin"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model prepared once for the whole run (about 20 s)."""
    from trainerbot.model import pretrained

    return pretrained.prepare_base(tmp_path_factory.mktemp("shared"))
