"""Stalled-partition detection for the Kafka worker (faust's livelock, made visible and
repaired).

A stream partition is *stalled* when it has lag (records after the group's committed
offset) while its committed offset has not moved for ``after`` seconds and no event of its
topic was in flight during that time. A healthy partition cannot look like that: an idle
agent takes the next buffered event at once, and acked events are committed every few
seconds. faust can get there after a rebalance (records it fetched and then dropped are
never read again; an event lost between the fetcher and the agent leaves a gap the commit
never passes), and the cure is to read the partition again from its committed offset:
deliveries are deduplicated, so a re-read costs work, never a second alert.

``StallGuard`` is pure: the worker hands it a snapshot of its partitions every few seconds
and rewinds what it returns. It also keeps the two figures docs/reliability.md I1 asks for: lag
and commit-offset age (how long the committed offset has not moved while lagging).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Progress:
    """One partition as the consumer sees it. Offsets follow Kafka's convention (the next
    offset to write or read); ``committed`` is None when the group never committed."""

    end: int
    committed: int | None

    @property
    def lag(self) -> int:
        """Records after the committed offset (0 or more)."""
        return max(self.end - (self.committed or 0), 0)


@dataclass
class _Seen:
    committed: int | None
    moved: float  # when the committed offset last moved (or the lag was 0)
    idle: float  # since when no event of the topic was in flight (and no move)


class StallGuard(Generic[K]):
    """Finds stalled partitions; ``after`` in seconds, ``clock`` monotonic seconds."""

    def __init__(self, *, after: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.after = after
        self._clock = clock
        self._seen: dict[K, _Seen] = {}

    def check(self, partitions: Mapping[K, Progress], busy: Callable[[K], bool]) -> list[K]:
        """The partitions to read again from their committed offset. ``busy(k)`` says
        whether an event of ``k``'s topic is being processed right now (such a partition
        is making progress, however slowly). A partition returned is given another
        ``after`` seconds before it can be returned again."""
        now = self._clock()
        stalled: list[K] = []
        for key in list(self._seen):
            if key not in partitions:
                del self._seen[key]  # revoked
        for key, p in partitions.items():
            seen = self._seen.get(key)
            if p.lag == 0 or seen is None or seen.committed != p.committed:
                self._seen[key] = _Seen(p.committed, now, now)
            elif busy(key):
                seen.idle = now
            elif now - seen.idle >= self.after:
                stalled.append(key)
                seen.idle = now
        return stalled

    def commit_age(self, key: K) -> float:
        """Seconds the committed offset of ``key`` has not moved while it lagged (0 when
        it has no lag or is unknown), as of the last ``check``."""
        seen = self._seen.get(key)
        return 0.0 if seen is None else max(self._clock() - seen.moved, 0.0)

    def reset(self) -> None:
        """Forget everything (after a rebalance, offsets are re-read from the group)."""
        self._seen.clear()
