"""The runtime contract: every obligation between an article and a receiver.

Both runtimes meet it: the embedded one (``newswatch.streams.embedded``: one process,
SQLite state) and the Kafka one (``newswatch.streams.kafka.runtime``: pollers and workers
around a broker). Each obligation is an abstract method, so a runtime missing one cannot be
built, and mypy says so where the CLI builds it ("Cannot instantiate abstract class"):
adding an obligation here fails type-checking until both runtimes meet it. The same
acceptance scenarios run against both (tests/test_scenarios.py).

What both share is not here but in the stages they call: ``newswatch.streams.matching``
(article → matches) and ``newswatch.streams.pipeline`` (match → receiver).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from newswatch.core.article import Article
from newswatch.streams.alerts import Match
from newswatch.streams.feedback import Click


class Runtime(ABC):
    """What a runtime does with what the pollers and the rule reloader hand it."""

    @abstractmethod
    async def take(self, articles: Sequence[Article]) -> None:
        """The poller's sink: match every article against the current rules and deliver
        every match (sent, threaded, digested, silenced or dead-lettered, each with its
        reason). Returns once the articles are durably in the runtime's hands (decided and
        recorded; in Kafka, acknowledged by the articles topic), so the poller may then
        mark them seen: an article is never lost between the two."""

    @abstractmethod
    async def notify(self, notice: Match) -> None:
        """Deliver an ops notice (a feed-health transition, a rejected rule edit) through
        the same pipeline as alerts; returns once it is durable. Callers decide each
        notice once (``monitor.health.settle_notice``; one per rejected edit); handed over
        by several processes (pollers, workers), it still reaches ops once."""

    @abstractmethod
    async def tick(self) -> None:
        """One maintenance round, run every few seconds: due digests sealed and sent,
        deliveries left pending (by a crash, a failure, a previous owner) sent, dead-letter
        replays requested by ``newswatch dlq replay`` run. In Kafka each rule's round runs
        in the worker owning the rule's partition. Trouble with one rule's state is logged
        and retried by a later round; it never stops the others."""

    @abstractmethod
    async def click(self, click: Click) -> None:
        """Apply an analyst's verified click on an alert's buttons (docs/slack.md) with
        ``ClickHandler`` (streams/interactive.py): recorded once however often it is
        handed over, answered under the alert, a mute stored as a silence that every later
        match of every process sees. Returns once the click is durably in the runtime's
        hands: applied (embedded), or acknowledged by the matches topic, keyed by its rule
        id, for the worker owning the rule to apply (Kafka)."""
