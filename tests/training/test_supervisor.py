"""The supervised worker: heartbeats in the store, restarts with back-off and a cap, a
rotating log, and `jobs` / `job` saying when no worker is alive."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.conftest import JSONL_FACTS, att
from trainerbot.core import Caller, CoreService
from trainerbot.ops import logs
from trainerbot.store.tables import WorkerBeat, utcnow
from trainerbot.training import queue, supervisor, worker
from trainerbot.training.supervisor import WorkerSupervisor
from trainerbot.training.worker import serve


async def test_jobs_say_when_no_worker_is_alive(core: CoreService, trainer: Caller) -> None:
    queued = await core.training.train(trainer, "facts", None, att("f.jsonl", JSONL_FACTS))
    shown = await core.training.jobs(trainer)
    assert shown.data["no_worker"] and "No training worker has run yet" in shown.content
    assert "No training worker has run yet" in (await core.training.job(trainer, queued.data["job_id"])).content

    stop = threading.Event()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(queue, "BEAT_EVERY_S", 0.05)
        thread = threading.Thread(target=serve, args=(core.settings,), kwargs={"stop": stop, "poll_s": 0.05})
        # A worker on another machine: it only beats (its queue is someone else's business here).
        mp.setattr(queue, "claim_next", lambda store, me: None)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while (await asyncio.to_thread(queue.workers, core.store)).alive == 0:
                assert time.monotonic() < deadline, "no heartbeat"
                await asyncio.sleep(0.05)
            assert not (await core.training.jobs(trainer)).data["no_worker"]
        finally:
            stop.set()
            thread.join(30)
    with core.store.read() as s:
        assert s.scalars(select(WorkerBeat)).all() == []  # a clean stop removes its heartbeat

    # A worker that died without a word: its last beat ages.
    await asyncio.to_thread(queue.beat, core.store, "elsewhere:4242")
    with core.store.session() as s:
        s.execute(update(WorkerBeat).values(last_seen=utcnow() - timedelta(seconds=95)))
    shown = await core.training.jobs(trainer)
    assert "No training worker has been seen for 95 s" in shown.content


def _dies(code: int):  # type: ignore[no-untyped-def]
    def spawn(data_dir: Path, *, log_file: Path | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", f"import sys; print('child says bye'); sys.exit({code})"],
                                stdout=subprocess.DEVNULL)
    return spawn


async def test_a_dying_worker_is_restarted_with_backoff_and_a_cap(tmp_path: Path, caplog, monkeypatch) -> None:
    monkeypatch.setattr(supervisor, "MAX_BACKOFF_S", 0.08)
    sup = WorkerSupervisor(tmp_path, spawn=_dies(3), poll_s=0.01, first_backoff_s=0.01)
    with caplog.at_level(logging.INFO, logger="trainerbot.training.supervisor"):
        await sup.start()
        await asyncio.sleep(2.0)
        await sup.stop()
    assert sup.restarts == supervisor.MAX_RESTARTS  # then it waits out the minute instead of spinning
    exits = [r for r in caplog.records if "exited with status 3" in r.getMessage()]
    assert len(exits) == supervisor.MAX_RESTARTS + 1
    assert any("capped at 5 a minute" in r.getMessage() for r in caplog.records)
    waits = [float(r.getMessage().rsplit("restarting in ", 1)[1].split(" s")[0]) for r in exits]
    assert waits[-1] > 50  # the capped wait


async def test_a_killed_worker_child_comes_back_and_beats_again(core: CoreService, trainer: Caller, tmp_path: Path) -> None:
    log_file = core.data_dir / "worker.log"
    sup = WorkerSupervisor(core.data_dir, log_file=log_file, poll_s=0.1, first_backoff_s=0.1)
    await sup.start()
    try:
        first = sup.pid
        assert first is not None

        async def beating(pid: int) -> None:
            deadline = time.monotonic() + 60
            while True:
                with core.store.read() as s:
                    if any(b.pid == pid for b in s.scalars(select(WorkerBeat))):
                        return
                assert time.monotonic() < deadline, f"worker {pid} never beat"
                await asyncio.sleep(0.2)
        await beating(first)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while sup.restarts == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert sup.pid != first
        await beating(sup.pid)  # type: ignore[arg-type]
    finally:
        await sup.stop()
    assert log_file.exists() and log_file.stat().st_size > 0


def test_the_worker_log_rotates(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(logs, "LOG_MAX_BYTES", 2000)
    log_file = tmp_path / "worker.log"
    script = "import sys\nfor i in range(400): print(f'line {i:04d} ' + 'x' * 40)\n"

    for _ in range(2):  # two children (a restart) write through the same rotating writer
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        worker._pump(proc.stdout, worker._rotating(log_file))
        proc.wait(10)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["worker.log", "worker.log.1", "worker.log.2", "worker.log.3"]
    assert all((tmp_path / f).stat().st_size <= 2100 for f in files)
    assert "line 0399" in log_file.read_text()
