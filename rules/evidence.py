"""Evidence: why a rule matched, clause by clause, pointing back into the original text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from newswatch.core.article import Field

Clause = Literal["country", "phrase", "person"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """One satisfied item of a rule.

    ``term`` is what the rule asked for (a country code such as ``MA``, a phrase such as
    ``accord militaire``, a person's name such as ``Kaïs Saïed``); ``field`` where it was
    found; ``start``/``end`` the character span (end exclusive) in that field's plain text;
    ``text`` the original text of the span; ``matched`` the normalised words that matched;
    ``score`` the rapidfuzz similarity (0-100) for people, None otherwise; ``how`` says
    which comparison found a person: None for the spelling, ``transliterated`` for the
    consonant skeleton across scripts and spellings (docs/rules.md, "People").
    """

    clause: Clause
    term: str
    field: Field
    start: int
    end: int
    text: str
    matched: str
    score: float | None = None
    how: str | None = None

    def explain(self) -> str:
        """One short human line, e.g. ``Kaiis Saied ≈ Kaïs Saïed (95)`` or ``Maroc → MA``."""
        if self.clause == "country":
            return f"{self.text} → {self.term}"
        if self.clause == "person":
            score = f" ({self.score:.0f})" if self.score is not None else ""
            if self.how is not None and self.score is not None:
                score = f" ({self.how}, {self.score:.0f})"
            if self.text.casefold() == self.term.casefold():
                return f"{self.text}{score}"
            return f"{self.text} ≈ {self.term}{score}"
        return f"{self.text} ⇐ “{self.term}”"

    def to_json(self) -> dict[str, Any]:
        return {
            "clause": self.clause,
            "term": self.term,
            "field": self.field,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "matched": self.matched,
            "score": self.score,
            **({"how": self.how} if self.how is not None else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evidence:
        return cls(
            clause=data["clause"],
            term=str(data["term"]),
            field=data["field"],
            start=int(data["start"]),
            end=int(data["end"]),
            text=str(data["text"]),
            matched=str(data["matched"]),
            score=None if data.get("score") is None else float(data["score"]),
            how=None if data.get("how") is None else str(data["how"]),
        )
