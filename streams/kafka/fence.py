"""Fencing a Kafka worker that was frozen: no send and no state write after a freeze long
enough for the group to have given its partitions away (docs/reliability.md A11, the zombie).

A process stopped (SIGSTOP, a paused VM, a swap storm) for longer than the group's session
timeout has been replaced: another worker owns its partitions, read them again from the
committed offset and is sending their alerts. When the frozen worker wakes, whatever it had
in hand (a paced send, a retry, the next event already fetched) would reach Slack a second
time, and its table writes would overwrite the new owner's dedup state in the changelog.
Kafka fences its commits (the member is unknown), but nothing fences a Slack post.

So a ``FreezeFence`` notes the time every ``every`` seconds from its own thread (a busy
event loop does not delay it; only a frozen process does), and ``check()``, called before
every send and every state write, calls ``on_frozen`` when the last note is older than
``limit`` seconds. The worker's ``on_frozen`` exits at once (crash-only: the supervisor
restarts it and it rejoins the group as a new member, recovering the state from the
changelog); deliveries it left pending are resumed by the partition's owner, which asks
Slack first whether the message is already there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any


class FreezeFence:
    """``limit``: seconds without a note after which the process counts as frozen (below
    the group session timeout); ``every``: seconds between notes; ``on_frozen`` gets the
    length of the freeze in seconds and must not return normally for the fence to hold
    (the worker's exits the process)."""

    def __init__(self, *, limit: float, on_frozen: Callable[[float], None],
                 every: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        if every >= limit:
            raise ValueError(f"note interval {every}s must be shorter than the limit {limit}s")
        self.limit = limit
        self.every = every
        self._on_frozen = on_frozen
        self._clock = clock
        self._last = clock()

    def note(self) -> None:
        """Record that the process is running; a late note is itself a detected freeze."""
        self.check()
        self._last = self._clock()

    def check(self) -> None:
        """Call ``on_frozen`` if the process was frozen for longer than ``limit``."""
        gap = self._clock() - self._last
        if gap > self.limit:
            self._on_frozen(gap)

    def start(self) -> FreezeFence:
        """Note the time from a daemon thread for as long as the process runs."""
        def run() -> None:
            while True:
                time.sleep(self.every)
                self.note()

        self._last = self._clock()
        threading.Thread(target=run, name="newswatch-freeze-fence", daemon=True).start()
        return self


class FencedMapping(MutableMapping[str, Any]):
    """``inner`` with ``fence()`` called before every write and delete."""

    def __init__(self, inner: MutableMapping[str, Any], fence: Callable[[], None]) -> None:
        self._inner = inner
        self._fence = fence

    def __getitem__(self, key: str) -> Any:
        return self._inner[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._fence()
        self._inner[key] = value

    def __delitem__(self, key: str) -> None:
        self._fence()
        del self._inner[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)

    def __contains__(self, key: object) -> bool:
        return key in self._inner

    def get(self, key: str, default: Any = None) -> Any:
        return self._inner.get(key, default)
