"""`trainerbot migrate`: a SQLite store copied into PostgreSQL with nothing lost — row counts
and content hashes compared — and the copy keeps working (IDs continue past the copied rows)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import JSONL_FACTS, att
from tests.pg import new_database
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.store import Store
from trainerbot.store.migrate import copy_store, fingerprint


async def _populate(core: CoreService, trainer: Caller, member: Caller) -> None:
    await core.datasets.import_data(trainer, "facts", None, att("facts.jsonl", JSONL_FACTS))
    await core.delivery.record_exchange(member, "What is the capital of Zorbia?", "Paris.", reply_message_id="m1",
                               context=[{"role": "user", "content": "hi"}])
    await core.feedback.react(member, "m1", "👎")
    await core.feedback.correct(member, "m1", "Quillport.")
    await core.feedback.leave(member, "ünïcödé feedback ✓")
    await core.chat.reply(member, "Tell me what the capital of Zorbia is.")  # the taught questions' embeddings, stored
    await core.training.train(trainer, "facts")  # a queued job with its snapshot
    await core.datasets.archive(trainer, "facts")
    await core.voice.language(trainer, "ru")


async def test_migrate_copies_everything_and_the_copy_works(
    postgres: str, tmp_path: Path, trainer: Caller, member: Caller
) -> None:
    data = tmp_path / "data"
    source_core = CoreService.open(Settings(_env_file=None, data_dir=data))  # type: ignore[call-arg]
    await _populate(source_core, trainer, member)
    before = fingerprint(source_core.store)
    source_core.store.close()

    target_url = new_database(postgres)
    run = subprocess.run(
        [sys.executable, "-m", "trainerbot", "migrate", "--to", target_url, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "content hashes match" in run.stdout, run.stderr
    target = Store.open(target_url)
    after = fingerprint(target)
    target.close()
    assert after == before and sum(n for n, _ in after.values()) >= 15
    assert sorted(name for name, (n, _) in after.items() if n == 0) == [
        "dashboard_logins",
        "dashboard_sessions",
        "model_versions",
        "test_runs",
        "worker_beats",
    ]  # every other table has rows

    moved = CoreService.open(Settings(_env_file=None, data_dir=data, database_url=target_url))  # type: ignore[call-arg]
    try:
        assert (await moved.voice.guild_language(member)) == "ru"
        assert (await moved.review.next(trainer)).data["correction_id"] == 1
        assert (
            "Rated 👍" in (await moved.feedback.react(member, "m1", "👍")).content
        )  # new rows get fresh IDs past the copied ones
        reply = await moved.datasets.import_data(trainer, "more", None, att("m.jsonl", '{"prompt": "new", "response": "row"}\n'))
        assert reply.data["added"] == 1
    finally:
        moved.store.close()

    again = subprocess.run(
        [sys.executable, "-m", "trainerbot", "migrate", "--to", target_url, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "not empty" in again.stderr


def test_a_copy_that_differs_is_reported(postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainerbot.errors import ConfigError
    from trainerbot.store import migrate

    source = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    target = Store.open(new_database(postgres))
    real = migrate.fingerprint
    calls = iter([{"guilds": (1, "a")}, {"guilds": (0, "b")}])
    monkeypatch.setattr(migrate, "fingerprint", lambda store: next(calls))
    try:
        with pytest.raises(ConfigError, match="does not match the source in guilds"):
            copy_store(source, target)
    finally:
        monkeypatch.setattr(migrate, "fingerprint", real)
        source.close()
        target.close()
