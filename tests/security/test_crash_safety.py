"""Crash safety: a writer process killed with SIGKILL at random moments while it stores
feedback, corrections and dataset items loses no confirmed write and never damages the
store (the driver is ``bench/crash.py``); a full disk is a clear error that leaves the
store intact."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bench.crash import MEMBER, TRAINER, kill_many, settings_for
from tests.conftest import att, fill_disk
from trainerbot.core import CoreService
from trainerbot.errors import DISK_FULL, NotAvailable


def test_sigkilled_writers_lose_no_confirmed_write(tmp_path: Path) -> None:
    kills, confirmed = kill_many(tmp_path / "data", kills=20, seed=7)
    assert kills == 20 and confirmed >= 20  # the writers really wrote between the kills


@pytest.mark.slow
def test_sigkilled_writers_lose_no_confirmed_write_200_times(tmp_path: Path) -> None:
    kills, confirmed = kill_many(tmp_path / "data", kills=200, seed=11)
    assert kills == 200 and confirmed >= 200


async def test_a_full_disk_is_a_clear_error_and_the_store_stays_intact(small_disk: Path) -> None:
    from tests.conftest import JSONL_FACTS, row_counts, tree_state

    core = CoreService.open(settings_for(small_disk / "data"))
    try:
        await core.datasets.import_data(TRAINER, "facts", None, att("f.jsonl", JSONL_FACTS))
        filler = fill_disk(small_disk)
        def files_now() -> dict[str, str]:
            return {k: v for k, v in tree_state(core.data_dir).items() if v != "dir"}  # (an empty folder may appear)
        counts, files = row_counts(core), files_now()
        # 3000 rows that fit the 3 MiB disk once there is space again: each taught row is an example and a revision.
        rows = "".join(f'{{"prompt": "question {i} {"x" * 60}", "response": "answer {i}"}}\n' for i in range(3000))
        with pytest.raises(NotAvailable) as caught:
            await core.datasets.import_data(TRAINER, "facts", None, att("big.jsonl", rows))
        assert caught.value.user_message == DISK_FULL
        with pytest.raises(NotAvailable, match="disk is full"):
            await core.datasets.export(TRAINER, "facts", "sft")
        results = await asyncio.gather(
            *(core.feedback.leave(MEMBER, f"note {i} " + "y" * 1500) for i in range(40)), return_exceptions=True
        )
        assert all(isinstance(r, NotAvailable) and r.user_message == DISK_FULL for r in results)  # a whole group-commit batch
        assert row_counts(core) == counts
        assert files_now() == files  # no half-written export left behind
        db = sqlite3.connect(core.data_dir / "trainerbot.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        filler.unlink()  # space again: the same store works on
        assert (await core.datasets.import_data(TRAINER, "facts", None, att("big.jsonl", rows))).data["added"] == 3000
        assert (await core.datasets.export(TRAINER, "facts", "sft")).files
    finally:
        core.store.close()
