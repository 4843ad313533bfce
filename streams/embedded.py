"""The embedded runtime: poll → match → deliver in one asyncio loop, state in SQLite.

It is the single-machine default. The same ``match`` (rules.matcher) and ``deliver``
(streams.pipeline) run here and in the Kafka runtime; this module only wires them to the
poller and keeps the current rule set (reloaded by ``RuleSource``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from monitor.article import Article
from monitor.poller import ArticleSink, Poller
from rules.matcher import Matcher, RuleMatch
from streams.alerts import Match
from streams.decide import Verdict
from streams.pipeline import Pipeline

log = logging.getLogger("newswatch.embedded")

RESUME_EVERY = 60.0  # seconds between retries of deliveries left pending


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
    ) -> None:
        self._matcher = matcher
        self.pipeline = pipeline
        self.counters = Counters()
        self.poller = poller_factory(self.take)

    async def take(self, articles: Sequence[Article]) -> None:
        """The poller's sink: match and deliver each article before it is marked seen."""
        matcher = self._matcher()
        for article in articles:
            self.counters.articles += 1
            for found in matcher.match(article):
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
        """Deliver what a crash left pending, poll every feed once, deliver, return."""
        await self.pipeline.resume()
        await self.poller.poll_all()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on schedule until ``stop`` is set; in-flight polls and deliveries finish."""
        await self.pipeline.resume()
        resumer = asyncio.create_task(self._resume_periodically(stop))
        try:
            await self.poller.run(stop)
        finally:
            resumer.cancel()
            await asyncio.gather(resumer, return_exceptions=True)

    async def _resume_periodically(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=RESUME_EVERY)
            except TimeoutError:
                await self.pipeline.resume()
