"""Per-lane pacing: at most one message per ``interval`` in a lane (a Slack channel), and
pauses after a rate limit that hold that lane only.

Slack allows about one ``chat.postMessage`` per second per channel, and answers 429 with a
``Retry-After`` beyond that; a 429 means the *channel* is over its limit, so every message
for it waits, while other channels carry on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Pacer:
    """Spacing and pauses per lane. ``clock`` is monotonic seconds, ``sleep`` awaits a
    delay (both injectable; tests pass a manual clock whose sleep advances it)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}
        self._paused: dict[str, float] = {}

    def ready_at(self, lane: str) -> float:
        """Monotonic time from which ``lane`` may send."""
        return max(self._next.get(lane, 0.0), self._paused.get(lane, 0.0))

    async def acquire(self, lane: str, interval: float, *, post: bool = True) -> float:
        """Wait until ``lane`` may send; when ``post``, the next send of the lane must then
        wait ``interval`` seconds. Returns the seconds waited."""
        waited = 0.0
        while (delay := self.ready_at(lane) - self._clock()) > 0:
            await self._sleep(delay)
            waited += delay
        if post:
            self._next[lane] = self._clock() + interval
        return waited

    def pause(self, lane: str, seconds: float) -> None:
        """Hold ``lane`` for ``seconds`` from now (a Retry-After); never shortens a pause."""
        self._paused[lane] = max(self._paused.get(lane, 0.0), self._clock() + seconds)
