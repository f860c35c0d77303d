"""Crash safety: SIGKILL a writer process at random moments, again and again.

Each writer (forked from a preloaded fork server, so a kill costs milliseconds) stores
feedback, corrections (with their dataset examples) and imported examples through the real
core, and reports each write once it is committed. After each kill the store must pass
``PRAGMA integrity_check`` and hold every reported write.

    .venv/bin/python bench/crash.py [--kills 200]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import signal
import sqlite3
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from trainerbot.config import Settings
from trainerbot.core import Attachment, Caller, CoreService

TRAINER = Caller(guild_id="111", guild_name="Guild A", user_id="u-trainer", channel_id="c1", roles=frozenset({"trainer"}))
MEMBER = Caller(guild_id="111", guild_name="Guild A", user_id="u-member", channel_id="c1")


def att(name: str, text: str) -> Attachment:
    return Attachment(filename=name, content_type=None, data=text.encode())


def settings_for(data_dir: Path) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, user_rate_per_minute=10_000, start_worker=False)  # type: ignore[call-arg]


def _writer(data_dir: str, out: Connection, tag: int) -> None:
    """The child: writes forever, reporting each write once it is confirmed (committed)."""
    core = CoreService.open(settings_for(Path(data_dir)))

    def confirmed(line: str) -> None:
        out.send_bytes(line.encode())  # header and text in one write() under PIPE_BUF: never torn

    async def loop() -> None:
        i = 0
        while True:
            key = f"{tag}-{i}"
            if i % 3 == 0:
                reply = await core.feedback.leave(MEMBER, f"note {key}")
                confirmed(f"feedback {reply.data['feedback_id']}")
            elif i % 3 == 1:
                await core.delivery.record_exchange(MEMBER, f"question {key}?", "Paris.", reply_message_id=f"r{key}")
                reply = await core.feedback.correct(TRAINER, f"r{key}", f"answer {key}")
                confirmed(f"correction {reply.data['correction_id']}")
            else:
                await core.datasets.import_data(
                    TRAINER, "kills", None, att(f"k{key}.jsonl", f'{{"prompt": "prompt {key}", "response": "x"}}\n')
                )
                confirmed(f"item prompt {key}")
            i += 1

    asyncio.run(loop())


def kill_many(data_dir: Path, kills: int, seed: int) -> tuple[int, int]:
    """Run and SIGKILL ``kills`` writers; after each, check the store. Returns (kills, confirmed writes)."""
    CoreService.open(settings_for(data_dir)).store.close()  # migrated once, before the first kill
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["trainerbot.core.service", "bench.crash"])
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
                    found = db.execute(
                        "select c.status, count(i.id) from corrections c join dataset_items i on i.correction_id = c.id "
                        "where c.id = ?",
                        (int(value),),
                    ).fetchone()
                    assert found == ("approved", 1), (k, value, found)
                else:
                    prompt = value.removeprefix("prompt ")
                    assert (
                        db.execute("select count(*) from dataset_items where prompt = ?", (f"prompt {prompt}",)).fetchone()[0]
                        == 1
                    )
        finally:
            db.close()
    return kills, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        kills, confirmed = kill_many(Path(tmp) / "data", kills=args.kills, seed=11)
        spent = time.perf_counter() - start
    print(
        f"{kills} SIGKILLs of a writer at random moments (50–350 ms in) in {spent:.0f} s: "
        f"{confirmed} confirmed writes checked, 0 lost; integrity_check ok after every kill"
    )


if __name__ == "__main__":
    main()
