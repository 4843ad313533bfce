"""Silences: "do not alert about this until then, because …".

A :class:`Silence` has matchers on the rule id, a country code, a person, a story id or a
feed name (every matcher given must hold; at least one is required), an expiry and a
reason. Silences come from the config file (``silences:``) and from ``newswatch silence
add``, which stores them in the state (mapping ``silences``: id → JSON). Matching is pure:
:func:`silenced_by` returns the first active silence that covers a match, and the delivery
decision turns it into the ``silenced`` verdict with the silence's id and reason.

Matchers compare with what the match *shows*: ``country`` and ``person`` look at the match's
evidence (a country the rule did not need is not evidence), ``person`` compares normalised
names (accents, case, spelling within rapidfuzz ``ratio`` 90), ``story`` the story id shown
by ``newswatch alerts --json`` (``story`` field of the decision log).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

from newswatch.core.config import Config, SilenceConfig
from newswatch.core.state import Database
from newswatch.rules.text import normalize
from newswatch.streams.alerts import Match

__all__ = ["MATCHERS", "Silence", "SilenceStore", "configured_silences", "new_silence",
           "silenced_by"]

MATCHERS = ("rule", "country", "person", "story", "feed")
PERSON_SIMILARITY = 90.0


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence. Times are Unix seconds; ``origin`` is ``state`` for silences added
    with the CLI or from Slack, ``path:line`` for those written in the config file;
    ``creator`` who added it (the login name of ``silence add``, ``slack:<user id> (<name>)``
    for a mute button), when known."""

    id: str
    reason: str
    expires: float
    created: float = 0.0
    rule: str | None = None
    country: str | None = None
    person: str | None = None
    story: str | None = None
    feed: str | None = None
    origin: str = "state"
    creator: str | None = None

    def matchers(self) -> dict[str, str]:
        """The matchers that are set, in :data:`MATCHERS` order."""
        values = (self.rule, self.country, self.person, self.story, self.feed)
        return {k: v for k, v in zip(MATCHERS, values, strict=True) if v is not None}

    def describe(self) -> str:
        """``rule=us-maghreb country=MA``."""
        return " ".join(f"{k}={v}" for k, v in self.matchers().items())

    def active(self, now: float) -> bool:
        return now < self.expires

    def covers(self, match: Match, story: str | None = None) -> bool:
        """Whether every matcher of this silence holds for ``match`` (in ``story``)."""
        matchers = self.matchers()
        if not matchers:
            return False  # an empty silence would silence everything: never
        if self.rule is not None and match.rule_id != self.rule:
            return False
        if self.feed is not None and match.article.feed != self.feed:
            return False
        if self.story is not None and story != self.story:
            return False
        if self.country is not None and not any(
            e.clause == "country" and e.term.upper() == self.country.upper()
            for e in match.evidence
        ):
            return False
        if self.person is not None:
            wanted = normalize(self.person)
            if not any(
                e.clause == "person"
                and fuzz.ratio(normalize(e.term), wanted) >= PERSON_SIMILARITY
                for e in match.evidence
            ):
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "expires": self.expires,
            "created": self.created,
            **self.matchers(),
            "origin": self.origin,
            **({"creator": self.creator} if self.creator is not None else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Silence:
        def opt(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        return cls(
            id=str(data["id"]),
            reason=str(data.get("reason", "")),
            expires=float(data["expires"]),
            created=float(data.get("created", 0.0)),
            rule=opt("rule"),
            country=opt("country"),
            person=opt("person"),
            story=opt("story"),
            feed=opt("feed"),
            origin=str(data.get("origin", "state")),
            creator=opt("creator"),
        )


def silence_id(matchers: dict[str, str], created: float, reason: str) -> str:
    """A short id, stable for the same content (so a config silence keeps its id)."""
    text = "\x1f".join([*(f"{k}={v}" for k, v in sorted(matchers.items())),
                        f"{created:.3f}", reason])
    return "s-" + hashlib.sha256(text.encode()).hexdigest()[:8]


def new_silence(
    *, reason: str, now: float, duration: float, rule: str | None = None,
    country: str | None = None, person: str | None = None, story: str | None = None,
    feed: str | None = None, origin: str = "state", creator: str | None = None,
) -> Silence:
    """A silence starting ``now`` for ``duration`` seconds. Raises ValueError without a
    matcher, without a reason, or with a duration that is not positive."""
    if not reason.strip():
        raise ValueError("a silence needs a reason")
    if duration <= 0:
        raise ValueError("a silence needs a positive duration")
    matchers = {k: v for k, v in (("rule", rule), ("country", country), ("person", person),
                                  ("story", story), ("feed", feed)) if v}
    if not matchers:
        raise ValueError("a silence needs at least one of rule, country, person, story, feed")
    if "country" in matchers:
        matchers["country"] = matchers["country"].upper()
    return Silence(
        id=silence_id(matchers, now, reason), reason=reason, expires=now + duration,
        created=now, origin=origin, creator=creator, **matchers,
    )


def configured_silences(items: Iterable[SilenceConfig]) -> list[Silence]:
    """The config file's ``silences:`` as Silence values (ids stable across restarts)."""
    out = []
    for s in items:
        matchers = {k: v for k, v in (("rule", s.rule), ("country", s.country),
                                      ("person", s.person), ("story", s.story),
                                      ("feed", s.feed)) if v is not None}
        out.append(Silence(id=silence_id(matchers, s.until, s.reason), reason=s.reason,
                           expires=s.until, origin=f"config line {s.line}", rule=s.rule,
                           country=s.country, person=s.person, story=s.story, feed=s.feed))
    return out


def silenced_by(
    match: Match, silences: Iterable[Silence], now: float, *, story: str | None = None
) -> Silence | None:
    """The first active silence covering ``match`` (in ``story``), else None."""
    for silence in silences:
        if silence.active(now) and silence.covers(match, story):
            return silence
    return None


class SilenceStore:
    """Config silences plus those stored in a mapping (id → JSON), read fresh on each call
    so a silence added by ``newswatch silence add`` applies to the next match."""

    def __init__(
        self, stored: MutableMapping[str, Any], configured: Sequence[Silence] = ()
    ) -> None:
        self._stored = stored
        self._configured = tuple(configured)

    @classmethod
    def of(cls, config: Config, db: Database) -> SilenceStore:
        """The config's silences and those stored in the state file."""
        return cls(db.mapping("silences"), configured_silences(config.silences))

    def all(self) -> list[Silence]:
        """Every silence, config first, then stored ones by creation time."""
        stored = [Silence.from_json(v) for v in self._stored.values()]
        return [*self._configured, *sorted(stored, key=lambda s: (s.created, s.id))]

    def active(self, now: float) -> list[Silence]:
        return [s for s in self.all() if s.active(now)]

    def add(self, silence: Silence) -> None:
        self._stored[silence.id] = silence.to_json()

    def expire(self, silence_id: str, now: float) -> Silence:
        """End a stored silence now; KeyError when there is none with that id, ValueError
        for a config silence (it is removed from the config file instead)."""
        for configured in self._configured:
            if configured.id == silence_id:
                raise ValueError(
                    f"silence {silence_id} is defined in the config ({configured.origin}); "
                    "remove it there")
        data = self._stored.get(silence_id)
        if data is None:
            raise KeyError(silence_id)
        silence = Silence.from_json(data)
        if silence.expires > now:
            silence = Silence.from_json({**data, "expires": now})
            self._stored[silence_id] = silence.to_json()
        return silence
