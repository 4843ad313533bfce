"""Time for tests: a manual clock and a virtual-time scheduler.

``ManualTime``: ``sleep(d)`` records ``d`` and moves the clock on at once (one task waits at a
time, e.g. one lane). ``VirtualTime``: sleepers wake in deadline order; ``run(aw)`` drives
the clock until ``aw`` is done, advancing to the next deadline only when every task has
yielded (several lanes waiting concurrently keep their own schedules).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class ManualTime:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


class VirtualTime:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._order), future))
        await future

    async def _settle(self) -> None:
        for _ in range(50):  # let every ready task run until it waits again
            await asyncio.sleep(0)

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` while advancing virtual time whenever all else waits."""
        task = asyncio.ensure_future(awaitable)
        while not task.done():
            await self._settle()
            if task.done():
                break
            if not self._sleepers:
                await asyncio.wait({task}, timeout=5.0)  # real I/O, if any
                if not task.done() and not self._sleepers:
                    raise RuntimeError("virtual time: nothing is sleeping and nothing moves")
                continue
            when, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            if not future.done():
                future.set_result(None)
        return task.result()
