"""The alert model: what the match stage hands to the delivery stage.

A ``Match`` carries everything delivery needs (rule id, title, severity, receivers, dedup
policy, the article and the evidence), so a rules reload between the two stages cannot
split a decision, and it serialises to JSON for Kafka and for the pending-alert record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from monitor.article import Article
from rules.evidence import Evidence

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class Match:
    """An article matched a rule. ``dedup_window`` is in seconds."""

    rule_id: str
    title: str
    severity: Severity
    receivers: tuple[str, ...]
    article: Article
    evidence: tuple[Evidence, ...]
    dedup_window: float = 24 * 3600.0

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": self.severity,
            "receivers": list(self.receivers),
            "article": self.article.to_json(),
            "evidence": [e.to_json() for e in self.evidence],
            "dedup_window": self.dedup_window,
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
        )
