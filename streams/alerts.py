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
from newswatch.rules.model import Escalation

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class Escalated:
    """What a story had grown to when it escalated: ``sources`` distinct feeds, in
    ``languages`` (their codes, sorted; articles without one are not counted)."""

    sources: int
    languages: tuple[str, ...] = ()

    def summary(self) -> str:
        """``6 sources, fr + ar``."""
        text = f"{self.sources} sources"
        return f"{text}, {' + '.join(self.languages)}" if self.languages else text

    def describe(self) -> str:
        """``escalated: 6 sources, fr + ar``."""
        return f"escalated: {self.summary()}"

    def to_json(self) -> dict[str, Any]:
        return {"sources": self.sources, "languages": list(self.languages)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Escalated:
        return cls(sources=int(data.get("sources", 0)),
                   languages=tuple(str(x) for x in data.get("languages", ())))


def escalation_to_json(policy: Escalation) -> dict[str, Any]:
    return {"sources": policy.sources, "languages": policy.languages,
            "notify": list(policy.notify)}


def escalation_from_json(data: dict[str, Any]) -> Escalation:
    return Escalation(sources=int(data["sources"]), languages=int(data.get("languages", 1)),
                      notify=tuple(str(r) for r in data.get("notify", ())))


@dataclass(frozen=True, slots=True)
class Match:
    """An article matched a rule. ``dedup_window`` and ``digest_interval`` are in seconds;
    ``max_per_hour`` alerts per receiver, beyond which matches wait for the digest.
    ``escalate`` is the rule's escalation policy (None: the rule has none); ``escalation``
    is set only on the messages that announce a story's escalation (and on its first
    alert re-rendered after it)."""

    rule_id: str
    title: str
    severity: Severity
    receivers: tuple[str, ...]
    article: Article
    evidence: tuple[Evidence, ...]
    dedup_window: float = 24 * 3600.0
    max_per_hour: int = 20
    digest_interval: float = 3600.0
    escalate: Escalation | None = None
    escalation: Escalated | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
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
        if self.escalate is not None:
            data["escalate"] = escalation_to_json(self.escalate)
        if self.escalation is not None:
            data["escalation"] = self.escalation.to_json()
        return data

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
            escalate=escalation_from_json(data["escalate"]) if data.get("escalate") else None,
            escalation=(Escalated.from_json(data["escalation"]) if data.get("escalation")
                        else None),
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
