"""The match stage both runtimes run: an article against the current rules, with metrics,
as the frozen ``Match`` values delivery needs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from newswatch.core.article import Article
from newswatch.rules.matcher import Matcher, RuleMatch
from newswatch.streams.alerts import Match


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
        escalate=rule.escalate,
    )


class Matching:
    """Matches articles against ``matcher()``, called per article so a rules reload swaps
    the rules between articles (a Match carries all delivery needs, so matches in flight
    are not touched), and reports each match's duration (seconds) to ``metrics``."""

    def __init__(self, matcher: Callable[[], Matcher],
                 metrics: MatchMetrics | None = None) -> None:
        self._matcher = matcher
        self._metrics = metrics

    def __call__(self, article: Article) -> list[Match]:
        started = time.perf_counter()
        found = self._matcher().match(article)
        if self._metrics is not None:
            self._metrics.observe_match(seconds=time.perf_counter() - started,
                                        matches=len(found))
        return [to_match(f, article) for f in found]
