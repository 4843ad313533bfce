"""Operational notices (rule reload rejected, feed failing or recovered) as ordinary
matches, so they travel the normal delivery path: rendered, retried, recorded, and
deduplicated — the same notice text alerts once, not once per poll."""

from __future__ import annotations

import hashlib

from monitor.article import Article
from streams.alerts import Match, Severity

NOTICE_WINDOW = 24 * 3600.0  # the same notice is not repeated within a day


def ops_notice(
    kind: str, title: str, text: str, *, receiver: str, severity: Severity = "high",
    key: str | None = None,
) -> Match:
    """A notice for the ops receiver. ``key`` identifies the situation for dedup (by
    default the text itself: the same problem notifies once)."""
    ident = hashlib.sha256(f"{kind}\x1f{key or text}".encode()).hexdigest()[:24]
    article = Article(id=ident, feed="newswatch", title=title, content=text)
    return Match(
        rule_id=f"newswatch-{kind}",
        title=f"newswatch: {kind.replace('-', ' ')}",
        severity=severity,
        receivers=(receiver,),
        article=article,
        evidence=(),
        dedup_window=NOTICE_WINDOW,
    )
