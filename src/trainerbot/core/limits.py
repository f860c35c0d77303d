"""Per-user rate limits, bounded in memory (the oldest users are forgotten first)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from trainerbot.errors import Busy


class RateLimiter:
    """At most ``per_minute`` actions per key in any ``window``-second window (60 unless said)."""

    def __init__(self, per_minute: int, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic,
                 window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, key: str) -> None:
        """Count one action for ``key``, or raise ``Busy`` saying when to try again."""
        now = self._clock()
        events = self._events.pop(key, None) or deque()
        while events and now - events[0] >= self.window:
            events.popleft()
        if len(events) >= self.per_minute:
            self._events[key] = events
            retry = self.window - (now - events[0])
            raise Busy(f"You're going fast — try again in {max(1, round(retry))} s.", retry_after=retry)
        events.append(now)
        self._events[key] = events
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)
