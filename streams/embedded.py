"""The embedded runtime: poll → match → deliver in one asyncio loop, state in SQLite.

It is the single-machine default. It meets the runtime contract (newswatch.streams.runtime)
with the same match stage (newswatch.streams.matching) and delivery pipeline
(newswatch.streams.pipeline) as the Kafka runtime; this module only wires them to the poller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from newswatch.core.archive import Archive
from newswatch.core.article import Article
from newswatch.core.config import Config
from newswatch.core.errors import StateError
from newswatch.core.state import Database
from newswatch.monitor.poller import Poller
from newswatch.rules.matcher import Matcher
from newswatch.streams.alerts import Match
from newswatch.streams.blindwatch import CHECK_EVERY, BlindWatch
from newswatch.streams.feedback import Click
from newswatch.streams.fulltext import FullText
from newswatch.streams.interactive import ClickHandler, ClickSource
from newswatch.streams.matching import Matching, MatchMetrics
from newswatch.streams.notices import FEED_NOTICE_PREFIX
from newswatch.streams.notifiers import Notifier
from newswatch.streams.pipeline import DecisionLog, Pipeline
from newswatch.streams.receivers import mute_durations, slack_answers
from newswatch.streams.runtime import Runtime
from newswatch.streams.silences import SilenceStore

log = logging.getLogger("newswatch.embedded")

RESUME_EVERY = 60.0  # seconds between re-queueing what is left in the outbox
TICK = 2.0  # seconds between checks for due digests and requested DLQ replays
GRACE = 10.0  # seconds sends in flight may take to finish at shutdown


def make_pipeline(
    config: Config, db: Database, notifiers: Mapping[str, Notifier], *,
    audit: DecisionLog | None = None,
) -> Pipeline:
    """The delivery pipeline over the SQLite state, as ``newswatch run`` and ``dlq replay``
    use it: the config's silences plus those stored by ``silence add``, the dedup state,
    the DLQ and the decision log (``audit`` replaces ``db`` as the log: ``run`` passes a
    metered one)."""
    silences = SilenceStore.of(config, db)
    return Pipeline(
        notifiers=notifiers, state=db.mapping("rules"), dlq=db.mapping("dlq"),
        audit=audit if audit is not None else db, silences=silences.active,
        meta=db.mapping("meta"),
    )


def make_click_handler(
    config: Config, db: Database, notifiers: Mapping[str, Notifier], *,
    rules: Callable[[], Matcher],
) -> ClickHandler:
    """What ``newswatch run`` does with a click on an alert's buttons: mutes stored with
    the other silences of the state file, records in its ``feedback`` table, answers
    through the interactive Slack notifiers (streams/interactive.py); a click counts for
    a rule only while ``rules`` (the rules in force) has it."""
    def rule_exists(rule_id: str) -> bool:
        return any(rule.id == rule_id for rule in rules().rules)

    return ClickHandler(rule_exists=rule_exists, mutes=mute_durations(config),
                        silences=SilenceStore.of(config, db), feedback=db.feedback(),
                        answers=slack_answers(notifiers))


@dataclass
class Counters:
    """What one runtime has done since it started (also exported as metrics)."""

    articles: int = 0
    bodies: int = 0  # articles matched (again) with their page's main text
    matches: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)


class EmbeddedRuntime(Runtime):
    """The runtime contract (``newswatch.streams.runtime``) in one process: the poller's
    articles are matched and delivered here, ops notices go straight to the pipeline, and
    ``tick`` runs every ``TICK`` seconds beside the poller.

    ``poller_factory`` builds the poller from the runtime (its sink is ``take``, its
    feed-health notices go to ``notify``). ``clicks`` (with ``on_click``) brings analysts'
    clicks on alert buttons in while ``run`` runs; each goes to ``click``. ``full_text``,
    when given, fetches the pages of the articles whose feed wants them
    (``streams/fulltext.py``). ``blind``, when given, checks every rule for blindness every
    ``CHECK_EVERY`` seconds of ``tick`` (streams/blindwatch.py)."""

    def __init__(
        self, *, poller_factory: Callable[[Runtime], Poller],
        matcher: Callable[[], Matcher], pipeline: Pipeline,
        metrics: MatchMetrics | None = None, clock: Callable[[], float] = time.monotonic,
        archive: Archive | None = None, clicks: ClickSource | None = None,
        on_click: Callable[[Click], Awaitable[Any]] | None = None,
        full_text: FullText | None = None, blind: BlindWatch | None = None,
    ) -> None:
        self._matcher = matcher
        self._matching = Matching(matcher, metrics)
        self._blind = blind
        self._blind_at: float | None = None
        self._clicks = clicks if on_click is not None else None
        self._on_click = on_click
        self._full_text = full_text
        self._archive = archive
        self._clock = clock
        self._resumed_at: float | None = None
        self.pipeline = pipeline
        self.grace = GRACE
        self.counters = Counters()
        self.poller = poller_factory(self)

    async def take(self, articles: Sequence[Article]) -> None:
        """Archive the articles (when the archive is on), then match and deliver each:
        returns once every decision is recorded (the poller marks the articles seen after
        that). With full text, an article whose page is awaited is delivered on its teaser
        by then at the latest, and again with its body when the page comes."""
        if self._archive is not None and articles:
            try:
                self._archive.keep(articles)
            except StateError as error:
                self.pipeline.fail(error)
                raise
        self.counters.articles += len(articles)
        if self._full_text is not None:
            await self._full_text.take(articles, self._deliver_all)
            return
        await self._deliver_all(articles)

    async def _deliver_all(self, articles: Sequence[Article]) -> None:
        for article in articles:
            await self._deliver_article(article)

    async def _deliver_article(self, article: Article) -> None:
        """Match one article and deliver each match; raises what the state raises. An
        article with its page's body replaces its teaser in the archive first (so a
        backtest or a reload's replay sees what was matched)."""
        if article.body:
            self.counters.bodies += 1
            if self._archive is not None:
                try:
                    self._archive.revise([article])
                except StateError as error:
                    self.pipeline.fail(error)
                    raise
        for match in self._matching(article):
            self.counters.matches += 1
            if self.pipeline.failure is not None:
                raise self.pipeline.failure  # not seen: polled again after a restart
            try:
                verdict = await self.pipeline.deliver(match)
            except StateError as error:
                self.pipeline.fail(error)
                raise
            self.counters.verdicts[verdict.kind] = self.counters.verdicts.get(
                verdict.kind, 0) + 1
            log.info(
                "rule %s: %s (%s) — %s", match.rule_id, verdict.kind, verdict.reason,
                article.title[:120],
                extra={"rule_id": match.rule_id, "article_id": article.id,
                       "verdict": verdict.kind, "feed": article.feed},
            )

    async def notify(self, notice: Match) -> None:
        """Deliver an ops notice (the poller's feed-health transitions, the reloader's
        rejected edits: both in this process, each decided once)."""
        verdict = await self.pipeline.deliver(notice)
        if notice.rule_id.startswith(FEED_NOTICE_PREFIX):
            self._blind_at = None  # a feed changed: rules that depend on it, at the next tick
        log.info("ops notice %s: %s (%s) — %s", notice.rule_id, verdict.kind, verdict.reason,
                 notice.article.title[:120],
                 extra={"rule_id": notice.rule_id, "verdict": verdict.kind})

    async def click(self, click: Click) -> None:
        """Apply a verified click on an alert's buttons (streams/interactive.py): recorded,
        answered, a mute stored as a silence that the next match sees."""
        if self._on_click is not None:
            await self._on_click(click)

    async def tick(self) -> None:
        """On the first round and every ``RESUME_EVERY`` seconds, queue what is left in
        the outbox (first after a start: what a crash left); then seal and queue due
        digests, and run requested replays; on the first round and every ``CHECK_EVERY``
        seconds, check every rule for blindness."""
        now = self._clock()
        if self._resumed_at is None or now - self._resumed_at >= RESUME_EVERY:
            self._resumed_at = now
            await self.pipeline.resume()
        await self.pipeline.flush_digests()
        await self.pipeline.replay_requested()
        if self._full_text is not None:
            self._full_text.start_retries(self._deliver_all)
        if self._blind is not None and (self._blind_at is None
                                        or now - self._blind_at >= CHECK_EVERY):
            self._blind_at = now
            await self._blind.check_all(self._matcher().rules)

    async def run_once(self) -> None:
        """Queue what a crash left pending, poll every feed once, check the rules for
        blindness, send due digests, wait until every lane has delivered (or
        dead-lettered) what was queued, return."""
        await self.tick()
        await self.poller.poll_all()
        if self._blind is not None:
            await self._blind.check_all(self._matcher().rules)
        if self._full_text is not None:
            await self._full_text.retry_due(self._deliver_all, force=True)
            await self._full_text.drain()
        await self.pipeline.flush_digests()
        await self.pipeline.drain()
        await self.pipeline.aclose(self.grace)
        if self.pipeline.failure is not None:
            raise self.pipeline.failure

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on schedule until ``stop`` is set; then sends in flight finish (up to
        ``grace`` seconds) and whatever is still queued stays in the outbox for the next
        start."""
        await self.tick()
        tasks = [asyncio.create_task(self._ticks(stop)),
                 asyncio.create_task(self._stop_on_failure(stop))]
        closing = asyncio.Event()  # the click source's own stop: it closes its socket itself
        clicks = (asyncio.create_task(self._clicks.run(self.click, closing))
                  if self._clicks is not None else None)
        try:
            await self.poller.run(stop)
        finally:
            for task in tasks:
                task.cancel()
            closing.set()
            if clicks is not None and not (await asyncio.wait({clicks}, timeout=self.grace))[0]:
                clicks.cancel()
            await asyncio.gather(*tasks, *([clicks] if clicks else []), return_exceptions=True)
            if self._full_text is not None:
                await self._full_text.close()
            await self.pipeline.aclose(self.grace)
        if self.pipeline.failure is not None:
            raise self.pipeline.failure

    async def _stop_on_failure(self, stop: asyncio.Event) -> None:
        """A state that cannot be written stops the process (StateError from ``run``)."""
        await self.pipeline.failed.wait()
        stop.set()

    async def _ticks(self, stop: asyncio.Event) -> None:
        """``tick`` every ``TICK`` seconds until ``stop``."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=TICK)
            except TimeoutError:
                try:
                    await self.tick()
                except StateError as error:
                    self.pipeline.fail(error)
                except Exception:  # a bug: log, keep ticking
                    log.exception("delivery tick failed")
