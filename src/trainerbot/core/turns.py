"""The line members wait in for a reply: as many replies at once as the model serves
(llama.cpp's slots, decoded in one batch), the rest waiting in order, a bounded number of them.

A member who has to wait is told their place as soon as they join the line (``ahead``: how
many wait before them), and the adapter shows it ("3 people are ahead of you"); past
``max_waiting`` a member is told plainly that the bot is busy (``Busy``), and nothing of
theirs or anyone else's is dropped or half-done. Runs on the event loop: nothing here
blocks, and a member whose request is cancelled while waiting leaves the line without
taking a turn.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from trainerbot.errors import Busy

BUSY = "I'm busy answering other people — try again in a minute."


def waiting_words(ahead: int) -> str:
    """What a waiting member is told."""
    if ahead <= 0:
        return "I'm answering other people right now; you're next."
    people = "1 person is" if ahead == 1 else f"{ahead} people are"
    return f"{people} ahead of you; I'll answer in turn."


class ReplyLine:
    """Replies being written now, and the members waiting for a turn, in order."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self.active = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def turn(self, slots: int, on_wait: Callable[[int], Awaitable[None]] | None = None) -> AsyncIterator[None]:
        """Hold one of ``slots`` turns for the block, waiting in line for it if they are all
        taken; ``on_wait(ahead)`` is awaited once when the caller has to wait."""
        if self.active < slots and not self._waiting:
            self.active += 1
        else:
            if len(self._waiting) >= self.max_waiting:
                raise Busy(BUSY, retry_after=60.0)
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append(granted)
            try:
                if on_wait is not None:
                    await on_wait(len(self._waiting) - 1)
                await granted
            except BaseException:
                if granted.done() and not granted.cancelled():
                    self._release()  # the turn came just as this request ended: pass it on
                else:
                    granted.cancel()
                    self._waiting.remove(granted)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        """The turn ends: it passes to the first member still waiting, else it is free."""
        while self._waiting:
            nxt = self._waiting.popleft()
            if not nxt.done():
                nxt.set_result(None)  # ``active`` stays: the turn changes hands
                return
        self.active -= 1
