"""Crash safety: a writer process killed with SIGKILL at random moments while it stores
feedback, corrections and dataset items loses no confirmed write and never damages the
store; a full disk is a clear error that leaves the store intact."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from tests.conftest import att
from trainerbot.config import Settings
from trainerbot.core import Caller, CoreService
from trainerbot.errors import DISK_FULL, NotAvailable

TRAINER = Caller(guild_id="111", guild_name="Guild A", user_id="u-trainer", channel_id="c1", roles=frozenset({"trainer"}))
MEMBER = Caller(guild_id="111", guild_name="Guild A", user_id="u-member", channel_id="c1")


def _settings(data_dir: Path) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, user_rate_per_minute=10_000, start_worker=False)  # type: ignore[call-arg]


def _writer(data_dir: str, out: Connection, tag: int) -> None:
    """The child: writes forever, reporting each write once it is confirmed (committed)."""
    core = CoreService.open(_settings(Path(data_dir)))

    def confirmed(line: str) -> None:
        out.send_bytes(line.encode())  # header and text in one write() under PIPE_BUF: never torn

    async def loop() -> None:
        i = 0
        while True:
            key = f"{tag}-{i}"
            if i % 3 == 0:
                reply = await core.feedback(MEMBER, f"note {key}")
                confirmed(f"feedback {reply.data['feedback_id']}")
            elif i % 3 == 1:
                await core.record_exchange(MEMBER, f"question {key}?", "Paris.", reply_message_id=f"r{key}")
                reply = await core.correct(TRAINER, f"r{key}", f"answer {key}")
                confirmed(f"correction {reply.data['correction_id']}")
            else:
                await core.import_data(TRAINER, "kills", None, att(f"k{key}.jsonl", f'{{"prompt": "prompt {key}", "response": "x"}}\n'))
                confirmed(f"item prompt {key}")
            i += 1
    asyncio.run(loop())


def _kill_many(data_dir: Path, kills: int, seed: int) -> tuple[int, int]:
    """Run and SIGKILL ``kills`` writers; after each, check the store. Returns (kills, confirmed writes)."""
    CoreService.open(_settings(data_dir)).store.close()  # migrated once, before the first kill
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["trainerbot.core.service", __name__])
    rng = random.Random(seed)
    total = 0
    for k in range(kills):
        reader, writer = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_writer, args=(str(data_dir), writer, k), daemon=True)
        child.start()
        writer.close()
        time.sleep(rng.uniform(0.05, 0.35))
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(10)
        assert child.exitcode == -signal.SIGKILL, f"the writer died by itself (exit {child.exitcode})"
        writes = []
        try:
            while True:
                writes.append(reader.recv_bytes().decode().split(" ", 1))
        except EOFError:
            reader.close()
        total += len(writes)
        db = sqlite3.connect(data_dir / "trainerbot.db")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"kill {k}"
            for kind, value in writes:
                if kind == "feedback":
                    assert db.execute("select count(*) from feedback where id = ?", (int(value),)).fetchone()[0] == 1
                elif kind == "correction":
                    found = db.execute("select c.status, count(i.id) from corrections c join dataset_items i on i.correction_id = c.id "
                                       "where c.id = ?", (int(value),)).fetchone()
                    assert found == ("approved", 1), (k, value, found)
                else:
                    prompt = value.removeprefix("prompt ")
                    assert db.execute("select count(*) from dataset_items where prompt = ?", (f"prompt {prompt}",)).fetchone()[0] == 1
        finally:
            db.close()
    return kills, total


def test_sigkilled_writers_lose_no_confirmed_write(tmp_path: Path) -> None:
    kills, confirmed = _kill_many(tmp_path / "data", kills=20, seed=7)
    assert kills == 20 and confirmed >= 20  # the writers really wrote between the kills


@pytest.mark.slow
def test_sigkilled_writers_lose_no_confirmed_write_200_times(tmp_path: Path) -> None:
    kills, confirmed = _kill_many(tmp_path / "data", kills=200, seed=11)
    assert kills == 200 and confirmed >= 200


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


def _fill(folder: Path) -> Path:
    filler = folder / "filler.bin"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


async def test_a_full_disk_is_a_clear_error_and_the_store_stays_intact(small_disk: Path) -> None:
    from tests.conftest import JSONL_FACTS, row_counts, tree_state

    core = CoreService.open(_settings(small_disk / "data"))
    try:
        await core.import_data(TRAINER, "facts", None, att("f.jsonl", JSONL_FACTS))
        filler = _fill(small_disk)
        def files_now() -> dict[str, str]:
            return {k: v for k, v in tree_state(core.data_dir).items() if v != "dir"}  # (an empty folder may appear)
        counts, files = row_counts(core), files_now()
        rows = "".join(f'{{"prompt": "question {i} {"x" * 200}", "response": "answer {i}"}}\n' for i in range(3000))
        with pytest.raises(NotAvailable) as caught:
            await core.import_data(TRAINER, "facts", None, att("big.jsonl", rows))
        assert caught.value.user_message == DISK_FULL
        with pytest.raises(NotAvailable, match="disk is full"):
            await core.export(TRAINER, "facts", "sft")
        results = await asyncio.gather(*(core.feedback(MEMBER, f"note {i} " + "y" * 1500) for i in range(40)), return_exceptions=True)
        assert all(isinstance(r, NotAvailable) and r.user_message == DISK_FULL for r in results)  # a whole group-commit batch
        assert row_counts(core) == counts
        assert files_now() == files  # no half-written export left behind
        db = sqlite3.connect(core.data_dir / "trainerbot.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        filler.unlink()  # space again: the same store works on
        assert (await core.import_data(TRAINER, "facts", None, att("big.jsonl", rows))).data["added"] == 3000
        assert (await core.export(TRAINER, "facts", "sft")).files
    finally:
        core.store.close()
