"""The alert model: what the match stage hands to the delivery stage.

A ``Match`` carries everything delivery needs (rule id, title, severity, receivers, dedup
policy, the article and the evidence), so a rules reload between the two stages cannot
split a decision, and it serialises to JSON for Kafka and for the pending-alert record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from newswatch.core.article import Article
from newswatch.rules.evidence import Evidence

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class Match:
    """An article matched a rule. ``dedup_window`` and ``digest_interval`` are in seconds;
    ``max_per_hour`` alerts per receiver, beyond which matches wait for the digest."""

    rule_id: str
    title: str
    severity: Severity
    receivers: tuple[str, ...]
    article: Article
    evidence: tuple[Evidence, ...]
    dedup_window: float = 24 * 3600.0
    max_per_hour: int = 20
    digest_interval: float = 3600.0

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": self.severity,
            "receivers": list(self.receivers),
            "article": self.article.to_json(),
            "evidence": [e.to_json() for e in self.evidence],
            "dedup_window": self.dedup_window,
            "max_per_hour": self.max_per_hour,
            "digest_interval": self.digest_interval,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Match:
        return cls(
            rule_id=str(data["rule_id"]),
            title=str(data["title"]),
            severity=data["severity"],
            receivers=tuple(data["receivers"]),
            article=Article.from_json(data["article"]),
            evidence=tuple(Evidence.from_json(e) for e in data["evidence"]),
            dedup_window=float(data.get("dedup_window", 24 * 3600.0)),
            max_per_hour=int(data.get("max_per_hour", 20)),
            digest_interval=float(data.get("digest_interval", 3600.0)),
        )


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One match waiting in a digest: ``kind`` is ``throttled`` (over ``max_per_hour``)
    or ``same_story`` (a later report of a story, for receivers without threads)."""

    kind: str
    title: str
    url: str
    feed: str
    published: datetime | None = None
    story: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DigestEntry:
        published = data.get("published")
        return cls(
            kind=str(data.get("kind", "throttled")),
            title=str(data.get("title") or ""),
            url=str(data.get("url") or ""),
            feed=str(data.get("feed") or ""),
            published=datetime.fromisoformat(published) if published else None,
            story=None if data.get("story") is None else str(data["story"]),
        )


@dataclass(frozen=True, slots=True)
class Digest:
    """One digest message for one rule and receiver: the matches queued between
    ``opened`` and ``closed`` (Unix seconds); ``more`` counts entries beyond the cap."""

    rule_id: str
    rule_title: str
    severity: Severity
    opened: float
    closed: float
    entries: tuple[DigestEntry, ...]
    more: int = 0

    @property
    def count(self) -> int:
        return len(self.entries) + self.more

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Digest:
        severity = data.get("severity", "medium")
        return cls(
            rule_id=str(data.get("rule_id", "")),
            rule_title=str(data.get("rule_title", "")),
            severity=severity if severity in SEVERITIES else "medium",
            opened=float(data.get("opened", 0.0)),
            closed=float(data.get("closed", data.get("due", 0.0))),
            entries=tuple(DigestEntry.from_json(e) for e in data.get("entries", [])),
            more=int(data.get("more", 0)),
        )
