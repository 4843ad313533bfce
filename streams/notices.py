"""Operational notices (rule reload rejected, feed failing or recovered) as ordinary
matches, so they travel the normal delivery path: rendered, retried, recorded, and
deduplicated — the same notice text alerts once, not once per poll."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

from newswatch.core.article import Article
from newswatch.monitor.health import Transition, articles_last_24h
from newswatch.streams.alerts import Match, Severity
from newswatch.streams.blindness import DAYS, RuleActivity

NOTICE_WINDOW = 24 * 3600.0  # the same notice is not repeated within a day
NOTICE_PREFIX = "newswatch-"  # rule ids of notices; a rule's alert carries evidence
FEED_NOTICE_PREFIX = f"{NOTICE_PREFIX}feed-"  # then the feed's name


def is_notice(match: Match) -> bool:
    """Whether ``match`` is an ops notice rather than a rule's alert."""
    return match.rule_id.startswith(NOTICE_PREFIX) and not match.evidence


def ops_notice(
    kind: str, title: str, text: str, *, receiver: str, severity: Severity = "high",
    key: str | None = None,
) -> Match:
    """A notice for the ops receiver. ``key`` identifies the situation for dedup (by
    default the text itself: the same problem notifies once)."""
    ident = hashlib.sha256(f"{kind}\x1f{key or text}".encode()).hexdigest()[:24]
    article = Article(id=ident, feed="newswatch", title=title, content=text)
    return Match(
        rule_id=f"{NOTICE_PREFIX}{kind}",
        title=f"newswatch: {kind.replace('-', ' ')}",
        severity=severity,
        receivers=(receiver,),
        article=article,
        evidence=(),
        dedup_window=NOTICE_WINDOW,
    )


# Feed-health notices are decided once per transition (monitor.health.settle_notice, on the
# persisted announced state), so they need no dedup window, and each feed has its own rule
# id: the story dedup compares titles and leads within a rule, and "Feed a is failing" would
# otherwise be threaded under (or, for e-mail, folded into the digest of) "Feed b is
# failing" — measured: 24 of 25 notices of a burst, while the first was still queued.
FEED_NOTICE_WINDOW = 0.0
_FEED_SEVERITY: dict[str, Severity] = {
    "failing": "high", "disabled": "high", "stale": "medium", "recovered": "low",
}


def _when(t: float | None) -> str:
    if t is None:
        return "never"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def feed_notice(t: Transition, *, receiver: str) -> Match:
    """The ops notice for one feed-health transition (failing, stale, disabled, recovered).

    Rule id ``newswatch-feed-<feed name>``, title ``newswatch: feed <kind>``; the article id
    is derived from the transition's key (feed, from, to, time), so each transition is its
    own article."""
    h = t.health
    url = h.url or h.configured_url or ""
    if t.kind == "failing":
        title = f"Feed {t.feed} is failing ({h.error_kind})"
        lines = [f"{h.consecutive_failures} consecutive failed polls; last error "
                 f"{h.error_kind}: {h.error_message}.",
                 f"Last success: {_when(h.last_success)}. "
                 f"It is retried with backoff; next poll {_when(h.next_poll)}."]
    elif t.kind == "disabled":
        title = f"Feed {t.feed} is disabled (410 Gone)"
        lines = [f"{h.error_message}.",
                 "It is no longer polled; change its url in the config to poll it again."]
    elif t.kind == "stale":
        silent = t.at - h.last_new_article if h.last_new_article is not None else 0.0
        gap = f"{_span(h.usual_gap)}" if h.usual_gap is not None else "unknown"
        title = f"Feed {t.feed} is stale (nothing new for {_span(silent)})"
        lines = [f"No new article since {_when(h.last_new_article)}; it usually publishes "
                 f"every {gap}. The server still answers (last HTTP status "
                 f"{h.last_status}); the feed may have moved or died silently."]
    else:
        title = f"Feed {t.feed} recovered"
        lines = [f"Was {t.old}; polled successfully at {_when(h.last_success)} "
                 f"({articles_last_24h(h, t.at)} new article(s) in the last 24 h)."]
    text = "\n".join([*lines, f"URL: {url}"])
    match = ops_notice(f"feed-{t.kind}", title, text, receiver=receiver,
                       severity=_FEED_SEVERITY.get(t.kind, "high"), key=t.key)
    return replace(match, rule_id=f"{FEED_NOTICE_PREFIX}{t.feed}",
                   dedup_window=FEED_NOTICE_WINDOW)


def blind_notice(rule_id: str, title: str, activity: RuleActivity, *,
                 receiver: str) -> Match:
    """The ops notice of a rule's blindness change (``activity`` as settled: ``announced``
    says which). Rule id ``newswatch-rule-<rule id>``; the article id is derived from the
    rule and its count of changes, so the same change handed over twice is one notice."""
    name = f"{rule_id} ({title})" if title else rule_id
    severity: Severity
    if activity.announced == "blind":
        kind, severity = "rule-blind", "high"
        head = f"Rule {name} is blind"
        lines = [f"Why: {'; '.join(activity.reasons)}.",
                 "Its alerts may be missing until this is fixed; newswatch status shows its "
                 "feeds."]
    else:
        kind, severity = "rule-recovered", "low"
        head = f"Rule {name} sees again"
        lines = ["The feeds it depends on answer again, and its matches are as usual "
                 f"(over the last {DAYS} days)."]
    text = "\n".join([*lines, f"Since {_when(activity.since)}."])
    match = ops_notice(kind, head, text, receiver=receiver, severity=severity,
                       key=f"{rule_id}\x1f{activity.changes}")
    return replace(match, rule_id=f"{NOTICE_PREFIX}rule-{rule_id}",
                   dedup_window=FEED_NOTICE_WINDOW)


def transition_notifier(
    deliver: Callable[[Match], Awaitable[object]], receiver: str | None,
    count: Callable[[str], None] | None = None,
) -> Callable[[Transition], Awaitable[None]]:
    """The poller's ``on_transition`` for a runtime: each feed-health transition becomes a
    ``feed_notice`` delivered through ``deliver`` (the normal pipeline) to ``receiver``, the
    config's ``ops``; with no ops receiver, transitions are only logged by the poller.
    ``count`` is told the notice kind (metrics)."""

    async def on_transition(transition: Transition) -> None:
        if receiver is None:
            return
        await deliver(feed_notice(transition, receiver=receiver))
        if count is not None:
            count(transition.kind)

    return on_transition


def rejection_notifier(
    deliver: Callable[[Match], Awaitable[object]], receiver: str | None
) -> Callable[[str], Awaitable[None]]:
    """The rule reloader's ``on_rejected`` for a runtime: the problems of a rejected edit
    become an ops notice delivered through ``deliver`` to ``receiver``, the config's
    ``ops`` (nothing with no ops receiver: the reloader has logged them). The notice's
    article id is derived from the text, so the same rejection reported twice (by two
    Kafka workers) is one notice once deduplicated."""

    async def notify(text: str) -> None:
        if receiver is not None:
            await deliver(ops_notice(
                "rules-rejected", "Rule reload rejected: the previous rules stay in force",
                text, receiver=receiver))

    return notify
