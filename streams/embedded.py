"""The embedded runtime: poll → match → deliver in one asyncio loop, state in SQLite.

It is the single-machine default. The same ``match`` (newswatch.rules.matcher) and ``deliver``
(newswatch.streams.pipeline) run here and in the Kafka runtime; this module only wires them to the
poller and keeps the current rule set (reloaded by ``RuleSource``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from newswatch.core.article import Article
from newswatch.core.config import Config
from newswatch.core.state import Database
from newswatch.monitor.poller import ArticleSink, Poller
from newswatch.rules.matcher import Matcher, RuleMatch
from newswatch.streams.alerts import Match
from newswatch.streams.decide import Verdict
from newswatch.streams.notifiers import Notifier
from newswatch.streams.pipeline import DecisionLog, Pipeline
from newswatch.streams.silences import SilenceStore, configured_silences

log = logging.getLogger("newswatch.embedded")

RESUME_EVERY = 60.0  # seconds between re-queueing what is left in the outbox
TICK = 2.0  # seconds between checks for due digests and requested DLQ replays
GRACE = 10.0  # seconds sends in flight may take to finish at shutdown


class MatchMetrics(Protocol):
    """Where the match stage reports (``newswatch.core.metrics.Metrics`` implements it)."""

    def observe_match(self, *, seconds: float, matches: int) -> None: ...


def to_match(found: RuleMatch, article: Article) -> Match:
    """The delivery-stage value of a rule match: everything deliver needs, frozen."""
    rule = found.rule
    return Match(
        rule_id=rule.id,
        title=rule.title,
        severity=rule.severity,
        receivers=rule.notify,
        article=article,
        evidence=found.evidence,
        dedup_window=rule.dedup.window,
        max_per_hour=rule.dedup.max_per_hour,
        digest_interval=rule.dedup.digest_interval,
    )


def make_pipeline(
    config: Config, db: Database, notifiers: Mapping[str, Notifier], *,
    audit: DecisionLog | None = None,
) -> Pipeline:
    """The delivery pipeline over the SQLite state, as ``newswatch run`` and ``dlq replay``
    use it: the config's silences plus those stored by ``silence add``, the dedup state,
    the DLQ and the decision log (``audit`` replaces ``db`` as the log: ``run`` passes a
    metered one)."""
    silences = SilenceStore(db.mapping("silences"), configured_silences(config.silences))
    return Pipeline(
        notifiers=notifiers, state=db.mapping("rules"), dlq=db.mapping("dlq"),
        audit=audit if audit is not None else db, silences=silences.active,
        meta=db.mapping("meta"),
    )


@dataclass
class Counters:
    """What one runtime has done since it started (also exported as metrics)."""

    articles: int = 0
    matches: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)


class EmbeddedRuntime:
    """Wires a poller to the matcher and the delivery pipeline.

    ``matcher`` is a callable returning the current Matcher, so a rules reload swaps it
    between articles without touching matches in flight (a Match carries all it needs).
    """

    def __init__(
        self, *, poller_factory: Callable[[ArticleSink], Poller],
        matcher: Callable[[], Matcher], pipeline: Pipeline,
        metrics: MatchMetrics | None = None,
    ) -> None:
        self._matcher = matcher
        self._metrics = metrics
        self.pipeline = pipeline
        self.grace = GRACE
        self.counters = Counters()
        self.poller = poller_factory(self.take)

    async def take(self, articles: Sequence[Article]) -> None:
        """The poller's sink: match and deliver each article before it is marked seen."""
        matcher = self._matcher()
        for article in articles:
            self.counters.articles += 1
            started = time.perf_counter()
            matched = matcher.match(article)
            if self._metrics is not None:
                self._metrics.observe_match(seconds=time.perf_counter() - started,
                                            matches=len(matched))
            for found in matched:
                self.counters.matches += 1
                verdict: Verdict = await self.pipeline.deliver(to_match(found, article))
                self.counters.verdicts[verdict.kind] = self.counters.verdicts.get(
                    verdict.kind, 0) + 1
                log.info(
                    "rule %s: %s (%s) — %s", found.rule.id, verdict.kind, verdict.reason,
                    article.title[:120],
                    extra={"rule_id": found.rule.id, "article_id": article.id,
                           "verdict": verdict.kind, "feed": article.feed},
                )

    async def run_once(self) -> None:
        """Queue what a crash left pending, poll every feed once, send due digests, wait
        until every lane has delivered (or dead-lettered) what was queued, return."""
        await self.pipeline.resume()
        await self.pipeline.replay_requested()
        await self.poller.poll_all()
        await self.pipeline.flush_digests()
        await self.pipeline.drain()
        await self.pipeline.aclose(self.grace)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on schedule until ``stop`` is set; then sends in flight finish (up to
        ``grace`` seconds) and whatever is still queued stays in the outbox for the next
        start."""
        await self.pipeline.resume()
        ticker = asyncio.create_task(self._tick(stop))
        try:
            await self.poller.run(stop)
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            await self.pipeline.aclose(self.grace)

    async def _tick(self, stop: asyncio.Event) -> None:
        """Send due digests and requested replays every ``TICK`` seconds; re-queue what is
        left in the outbox every ``RESUME_EVERY`` seconds."""
        since_resume = 0.0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=TICK)
            except TimeoutError:
                try:
                    await self.pipeline.flush_digests()
                    await self.pipeline.replay_requested()
                    since_resume += TICK
                    if since_resume >= RESUME_EVERY:
                        since_resume = 0.0
                        await self.pipeline.resume()
                except Exception:  # state trouble: log, keep ticking
                    log.exception("delivery tick failed")
