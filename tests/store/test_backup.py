"""`trainerbot backup`: a consistent copy of the store while writes go on, and a restore."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import JSONL_FACTS, att, row_counts
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.store.tables import Feedback, Guild


def test_backup_while_writing_is_consistent_and_restores(core: CoreService, trainer: Caller, tmp_path: Path) -> None:
    import asyncio

    asyncio.run(core.datasets.import_data(trainer, "facts", None, att("f.jsonl", JSONL_FACTS)))
    with core.store.session() as s:
        guild_id = s.scalar(select(Guild.id))
    confirmed: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            with core.store.session() as s:
                row = Feedback(guild_id=guild_id, user_id="w", kind="text", text=f"note {len(confirmed)}")
                s.add(row)
                s.flush()
                rid = row.id
            confirmed.append(rid)  # committed

    thread = threading.Thread(target=writer)
    thread.start()
    while len(confirmed) < 50:
        time.sleep(0.001)
    before = len(confirmed)
    size = core.store.backup(tmp_path / "backups" / "copy.db", pages_per_step=1)
    after = len(confirmed)
    stop.set()
    thread.join()
    assert size > 0 and after > before  # writes went on during the backup
    copy = sqlite3.connect(tmp_path / "backups" / "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = [r[0] for r in copy.execute("select id from feedback order by id")]
    copy.close()
    assert before <= len(ids) <= after and ids == confirmed[: len(ids)]  # a prefix of the confirmed writes: consistent
    assert not list((tmp_path / "backups").glob(".*partial"))

    # Restore: the copy as the store of a fresh data folder.
    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    shutil.copyfile(tmp_path / "backups" / "copy.db", restored_dir / "trainerbot.db")
    restored = CoreService.open(Settings(_env_file=None, data_dir=restored_dir))  # type: ignore[call-arg]
    try:
        assert asyncio.run(restored.datasets.stats(trainer, "facts")).data["total"] == 3
        with restored.store.read() as s:
            assert s.scalar(select(func.count()).select_from(Feedback)) == len(ids)
        assert row_counts(restored)["dataset_items"] == 3
    finally:
        restored.store.close()


def test_backup_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = CoreService.open(Settings(_env_file=None, data_dir=data))  # type: ignore[call-arg]
    store.store.close()
    run = subprocess.run([sys.executable, "-m", "trainerbot", "backup", str(tmp_path / "b.db"), "--data-dir", str(data)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "integrity ok" in run.stdout, run.stderr
    bad = subprocess.run([sys.executable, "-m", "trainerbot", "backup", str(tmp_path), "--data-dir", str(data)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "is a folder" in bad.stderr


def test_backup_of_a_postgresql_store_points_to_pg_dump(postgres: str, tmp_path: Path) -> None:
    from tests.pg import new_database
    from trainerbot.errors import ConfigError
    from trainerbot.store import Store

    store = Store.open(new_database(postgres))
    try:
        with pytest.raises(ConfigError, match="pg_dump"):
            store.backup(tmp_path / "x.db")
    finally:
        store.close()
