"""Chat comes first: the bot says when it is writing a reply, and a training worker on the
same machine pauses until it is done.

On 2 cores a reply and a training step each want both cores. Measured before this module:
a 64-token reply through llama.cpp took 65–129 s with a job training (1.0 s idle), and the
job fell from 275 to 104 tokens/s. Three things share the cores out instead:

- the worker runs at a lower CPU priority (``os.setpriority``; ``TRAINERBOT_WORKER_NICE``,
  and ``Nice=`` in its systemd unit);
- the bot marks the time it is generating in a small file under the data folder
  (``ChatFirst.replying``);
- the worker asks ``ChatFirst.wait`` before every training step, around every decoder
  layer and frozen projection in the forward and the backward pass (``common.JobCallback``)
  and before every check question, and waits while a reply is being written. It gives way
  within a millisecond or two of work, so a reply's first token hardly waits, and a job
  slows by about the time chat took.

The mark is a deadline on the machine's monotonic clock (8 bytes), refreshed while a reply
streams, so a bot that dies mid-reply holds the worker back for ``HOLD_S`` at most. A
worker on another machine (a second host, a Ray cluster) never sees the file and never
waits: it shares no cores with this chat. Every read and write is one ``pread``/``pwrite``;
nothing here allocates or locks across processes.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "chat-busy"
HOLD_S = 15.0  # a mark not refreshed for this long is stale (its bot stopped mid-reply)
POLL_S = 0.02  # how often a waiting worker looks again
MAX_WAIT_S = 120.0  # one wait at most: with chat never quiet, training still creeps forward
_FORMAT = struct.Struct("<d")


def path_for(data_dir: Path) -> Path:
    """Where the bot and the worker meet: one file per data folder."""
    return data_dir / FILE_NAME


class ChatFirst:
    """The mark one data folder's bot processes set and its workers read."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._active = 0  # replies being written in this process

    def _file(self) -> int | None:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
            except OSError as exc:  # a read-only data folder: chat still answers, the worker just does not wait
                log.warning("cannot open %s (%s); training will not pause for chat", self.path, exc)
                return None
        return self._fd

    def _write(self, deadline: float) -> None:
        fd = self._file()
        if fd is not None:
            os.pwrite(fd, _FORMAT.pack(deadline), 0)

    # ---------------------------------------------------------------- the bot's side
    @contextmanager
    def replying(self) -> Iterator[Callable[[], None]]:
        """Mark chat busy for the block; the callable it yields refreshes the mark (call it
        as the reply streams). The mark is cleared when the last reply in this process ends."""
        with self._lock:
            self._active += 1
            self._write(self._clock() + HOLD_S)
        try:
            yield self.refresh
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self._write(0.0)

    def refresh(self) -> None:
        with self._lock:
            if self._active:
                self._write(self._clock() + HOLD_S)

    # ------------------------------------------------------------- the worker's side
    def busy(self) -> bool:
        """Whether a reply is being written now (by any bot process on this data folder)."""
        if self._fd is None and not self.path.exists():  # no bot has marked it yet: nothing to open
            return False
        fd = self._file()
        if fd is None:
            return False
        raw = os.pread(fd, _FORMAT.size, 0)
        return len(raw) == _FORMAT.size and _FORMAT.unpack(raw)[0] > self._clock()

    def wait(self, max_s: float = MAX_WAIT_S) -> float:
        """Wait while chat is busy (at most ``max_s``); returns the seconds waited."""
        if not self.busy():
            return 0.0
        start = self._clock()
        while self.busy() and self._clock() - start < max_s:
            time.sleep(POLL_S)
        return self._clock() - start

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def lower_priority(nice: int) -> int:
    """Run this process (and the threads and children it starts next) at CPU priority
    ``nice`` at least; never raises it back. Returns the niceness now in force."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as exc:  # a sandbox that forbids it: training still runs, at the same priority
            log.warning("could not lower the worker's CPU priority to %d: %s", nice, exc)
            return current
    return max(nice, current)
