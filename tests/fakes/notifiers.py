"""An in-memory notifier for pipeline tests: records every call with the (fake) time,
fails as scripted, and can be asked what it holds (reconciliation), like Slack can."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from newswatch.core.errors import DeliveryError
from newswatch.streams.alerts import Digest, Match
from newswatch.streams.notifiers import Receipt


@dataclass(frozen=True, slots=True)
class Sent:
    at: float
    kind: str  # alert, reply, update, digest
    title: str
    ident: str | None
    ref: str


class RecordingNotifier:
    """``script`` queues outcomes for the next posting calls: an exception to raise, or
    ``"store-then-fail"`` (keep the message, then raise a 500: ambiguous)."""

    def __init__(
        self, name: str, clock: Callable[[], float], *, lane: str | None = None,
        min_interval: float = 1.0, threads: bool = True, searchable: bool = True,
    ) -> None:
        self.name = name
        self.lane = lane or f"rec:{name}"
        self.min_interval = min_interval
        self.threads = threads
        self.searchable = searchable
        self._clock = clock
        self.calls: list[tuple[float, str]] = []
        self.sent: list[Sent] = []
        self.updates: list[int] = []
        self.script: deque[DeliveryError | str] = deque()

    def _post(self, kind: str, title: str, ident: str | None) -> Receipt:
        self.calls.append((self._clock(), kind))
        step = self.script.popleft() if self.script else None
        ref = f"{len(self.sent) + 1}"
        if step == "store-then-fail":
            self.sent.append(Sent(self._clock(), kind, title, ident, ref))
            raise DeliveryError("http_5xx", "stored, then 500", retryable=True)
        if isinstance(step, DeliveryError):
            raise step
        self.sent.append(Sent(self._clock(), kind, title, ident, ref))
        return Receipt(receiver=self.name, ref=ref, channel="CREC")

    async def send(self, match: Match, ident: str | None = None) -> Receipt:
        return self._post("alert", match.article.title, ident)

    async def reply(self, match: Match, parent: Receipt, ident: str | None = None) -> Receipt:
        return self._post("reply", match.article.title, ident)

    async def digest(self, digest: Digest, ident: str | None = None) -> Receipt:
        return self._post("digest", f"{digest.count} match(es)", ident)

    async def update_sources(self, parent: Receipt, match: Match, sources: int) -> None:
        self.calls.append((self._clock(), "update"))
        self.updates.append(sources)

    async def find(self, ident: str, *, since: float, where: Receipt | None,
                   in_thread: bool = False) -> Receipt | None:
        if not self.searchable:
            return None
        for sent in self.sent:
            if sent.ident == ident:
                return Receipt(receiver=self.name, ref=sent.ref, channel="CREC")
        return None

    async def aclose(self) -> None:
        pass

    def titles(self, kind: str = "alert") -> list[str]:
        return [s.title for s in self.sent if s.kind == kind]
