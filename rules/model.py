"""Watch-rules as frozen values.

A rule's condition is always a tree: the flat form (``countries``/``phrases``/``people``
groups) is loaded as ``AllOf`` of its groups, the advanced ``match:`` form as written.
Leaves hold a ``Group``: every item of ``all`` and, when ``any`` is not empty, at least one
item of ``any``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from newswatch.core.article import FIELDS, Field

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
DEFAULT_NEAR = 3
DEFAULT_MIN_SCORE = 90.0
DEFAULT_DEDUP_WINDOW = 24 * 3600.0
DEFAULT_MAX_PER_HOUR = 20
DEFAULT_DIGEST_INTERVAL = 3600.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Location:
    """Where something was written: file path and 1-based line."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Group(Generic[T]):
    """``all`` items are all required; of ``any`` items one is required (when given)."""

    all: tuple[T, ...] = ()
    any: tuple[T, ...] = ()

    def items(self) -> tuple[T, ...]:
        return self.all + self.any


@dataclass(frozen=True, slots=True)
class Person:
    """A named person; ``min_score`` is the rapidfuzz ratio threshold (0-100)."""

    name: str
    aliases: tuple[str, ...] = ()
    min_score: float = DEFAULT_MIN_SCORE


@dataclass(frozen=True, slots=True)
class Countries:
    group: Group[str]  # ISO 3166-1 alpha-2 codes, upper case


@dataclass(frozen=True, slots=True)
class Phrases:
    group: Group[str]  # phrases as written by the rule author


@dataclass(frozen=True, slots=True)
class People:
    group: Group[Person]


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Condition


Leaf = Countries | Phrases | People
Condition = AllOf | AnyOf | Not | Countries | Phrases | People


@dataclass(frozen=True, slots=True)
class Examples:
    match: tuple[str, ...] = ()
    no_match: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DedupPolicy:
    """Dedup and noise control of one rule.

    ``window`` in seconds: later copies of the same story inside it do not alert again.
    ``max_per_hour``: alerts per receiver in any hour; beyond it matches are queued for a
    digest sent every ``digest_interval`` seconds (0 sends every match to the digest).
    """

    window: float = DEFAULT_DEDUP_WINDOW
    max_per_hour: int = DEFAULT_MAX_PER_HOUR
    digest_interval: float = DEFAULT_DIGEST_INTERVAL


@dataclass(frozen=True, slots=True)
class Escalation:
    """When a story of the rule has grown: reported by ``sources`` distinct feeds or more,
    in ``languages`` distinct languages or more. Then its first alert says so, one thread
    reply says so, and the ``notify`` receivers get one alert (docs/delivery.md)."""

    sources: int
    languages: int = 1
    notify: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    condition: Condition
    severity: Severity = "medium"
    exclude: tuple[str, ...] = ()
    languages: frozenset[str] | None = None  # None: every language
    feeds: frozenset[str] | None = None  # None: every feed
    fields: tuple[Field, ...] = FIELDS
    near: int = DEFAULT_NEAR
    capitals: bool = False
    notify: tuple[str, ...] = ()
    dedup: DedupPolicy = field(default_factory=DedupPolicy)
    escalate: Escalation | None = None
    examples: Examples = field(default_factory=Examples)
    location: Location = field(default_factory=lambda: Location("<memory>", 0))


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Rules loaded together; ``aliases`` (code → extra names) apply to all of them."""

    rules: tuple[Rule, ...]
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def by_id(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def leaves(condition: Condition) -> list[Leaf]:
    """Every leaf of a condition tree, depth first."""
    if isinstance(condition, AllOf | AnyOf):
        out: list[Leaf] = []
        for child in condition.children:
            out.extend(leaves(child))
        return out
    if isinstance(condition, Not):
        return leaves(condition.child)
    return [condition]
