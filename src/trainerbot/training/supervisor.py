"""Keeping the bot's training worker alive.

``run`` and ``console`` start ``trainerbot worker`` as a child process. ``WorkerSupervisor``
watches it: when the child exits while the bot runs, it is started again after a back-off
(1 s, doubling to 60 s; back to 1 s once a child has lived 5 minutes), at most
``MAX_RESTARTS`` times in any minute, and every exit and restart is logged. Queued jobs
therefore never wait on a dead worker unnoticed, and a worker that dies at once does not
spin. Nothing here blocks the event loop (the child is polled; starting and stopping it run
in a thread).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from trainerbot.training.worker import spawn_child, stop_child

log = logging.getLogger(__name__)

POLL_S = 1.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
HEALTHY_AFTER_S = 300.0  # a child that lived this long resets the back-off
MAX_RESTARTS = 5  # in any 60 s


class WorkerSupervisor:
    def __init__(self, data_dir: Path, *, log_file: Path | None = None,
                 spawn: Callable[..., subprocess.Popen[bytes]] = spawn_child, poll_s: float = POLL_S,
                 first_backoff_s: float = FIRST_BACKOFF_S) -> None:
        self.data_dir = data_dir
        self.log_file = log_file
        self._spawn = spawn
        self.poll_s = poll_s
        self.first_backoff_s = first_backoff_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._recent: deque[float] = deque()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        self.proc = await asyncio.to_thread(self._spawn, self.data_dir, log_file=self.log_file)
        log.info("training worker started (pid %s%s)", self.proc.pid, f", log in {self.log_file}" if self.log_file else "")
        self._task = asyncio.create_task(self._watch(), name="worker-supervisor")

    async def _watch(self) -> None:
        backoff = self.first_backoff_s
        started = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(self.poll_s)
            proc = self.proc
            if proc is None or proc.poll() is None or self._stopping:
                continue
            lived = time.monotonic() - started
            if lived >= HEALTHY_AFTER_S:
                backoff = self.first_backoff_s
            now = time.monotonic()
            while self._recent and now - self._recent[0] > 60.0:
                self._recent.popleft()
            wait = backoff
            if len(self._recent) >= MAX_RESTARTS:  # the cap: wait until the oldest restart is a minute old
                wait = max(wait, 60.0 - (now - self._recent[0]))
                log.error("training worker restarts are capped at %d a minute; waiting %.0f s", MAX_RESTARTS, wait)
            log.warning("training worker (pid %s) exited with status %s after %.0f s; restarting in %.0f s",
                        proc.pid, proc.returncode, lived, wait)
            await asyncio.sleep(wait)
            if self._stopping:
                return
            self.proc = await asyncio.to_thread(self._spawn, self.data_dir, log_file=self.log_file)
            self._recent.append(time.monotonic())
            self.restarts += 1
            started = time.monotonic()
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            log.warning("training worker restarted (pid %s; restart %d)", self.proc.pid, self.restarts)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.proc is not None:
            await asyncio.to_thread(stop_child, self.proc)
