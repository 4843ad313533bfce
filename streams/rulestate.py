"""The per-rule delivery state and the dead letters, typed: frozen values with their JSON form.

Rule state is stored as one JSON object per rule (in a mapping keyed by rule id: SQLite in
the embedded runtime, a faust Table in the Kafka runtime) and written back whole after
every change, so one decision is one write. Its JSON shape (version 2)::

    {"v": 2,
     "stories": [Story: {"id", "keys": [article keys], "ids": [article ids],
                         "title": normalised, "lead": SimHash hex or null, "first", "last",
                         "sources", "feeds", "languages"?, "escalated"? (Escalated),
                         "match": the first match (compact),
                         "parents": {receiver: Parent: {"state": "pending|sent|dead|digest",
                                                        "receipt"?, "shown"?, "reason"?,
                                                        "escalated"?}}}],
     "outbox": {item id: OutboxItem: {"id", "kind": "alert|reply|update|digest|escalation|
                                               note", "receiver",
                                      "story", "seq", "created", "verdict", "reason",
                                      "match"? (compact) | "digest"?, "recipients"?}},
     "alerts": {receiver: [decision times of alerts in the last hour]},
     "digests": {receiver: DigestDraft: {"opened", "due", "rule_id", "rule_title",
                                         "severity", "entries": [DraftEntry], "more",
                                         "closed"? (once sealed into an outbox item)}},
     "activity"?: RuleActivity (streams/blindness.py: the hours and feeds of its matches,
                  what ops were told about its blindness)}

A dead letter (id → JSON, :class:`DeadLetter`) is an outbox item that could not be
delivered, with the reason. Every value here is immutable: transitions (streams/decide.py,
streams/outbox.py) return new values. ``X.from_json(x.to_json()) == x`` for each type, and
``to_json`` writes exactly the JSON the version before the typed state wrote (absent
top-level keys of a rule state come back as empty containers). ``RuleState.from_json`` also
reads version 1 (before the outbox: ``deliveries``/``replies`` inside each story), turning
its pending deliveries into outbox items so nothing is lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from newswatch.streams.alerts import SEVERITIES, Digest, DigestEntry, Escalated, Match, Severity
from newswatch.streams.blindness import RuleActivity
from newswatch.streams.notifiers import Receipt

VERSION = 2

VerdictKind = Literal["send", "same_article", "same_story", "throttled", "silenced"]
ItemKind = Literal["alert", "reply", "update", "digest", "escalation", "note"]
ParentState = Literal["pending", "sent", "dead", "digest"]
LetterState = Literal["dead", "requested", "replaying"]
VERDICTS: tuple[VerdictKind, ...] = ("send", "same_article", "same_story", "throttled",
                                     "silenced")
ITEM_KINDS: tuple[ItemKind, ...] = ("alert", "reply", "update", "digest", "escalation",
                                     "note")
PARENT_STATES: tuple[ParentState, ...] = ("pending", "sent", "dead", "digest")
LETTER_STATES: tuple[LetterState, ...] = ("dead", "requested", "replaying")

_L = TypeVar("_L", bound=str)


def _choice(value: object, allowed: tuple[_L, ...], default: _L | None = None) -> _L:
    """``value`` as one of the ``allowed`` literals; ``default`` for anything else (or a
    ValueError without one)."""
    for option in allowed:
        if value == option:
            return option
    if default is None:
        raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
    return default


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def stable_hash(*parts: str) -> str:
    """SHA-256 hex of ``parts`` joined by the unit separator (ids that survive restarts)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def item_id(kind: ItemKind, rule_id: str, receiver: str, *parts: str) -> str:
    """Stable id of one outbox item (also the Slack metadata id used to reconcile)."""
    return f"{kind[0]}-" + stable_hash(kind, rule_id, receiver, *parts)[:20]


# --------------------------------------------------------------------------- stories


@dataclass(frozen=True, slots=True, kw_only=True)
class Parent:
    """What became of one receiver's first alert of a story: ``pending`` (in the outbox),
    ``sent`` (with the receipt to thread under), ``dead`` (with the reason) or ``digest``
    (throttled: no message to thread under). ``shown`` is the source count the message
    shows; ``escalated``, whether it shows the story's escalation."""

    state: ParentState
    receipt: Receipt | None = None
    shown: int | None = None
    reason: str | None = None
    escalated: bool = False

    @property
    def delivered(self) -> Receipt | None:
        """The receipt of the first alert when it was delivered, else None."""
        return self.receipt if self.state == "sent" else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"state": self.state}
        if self.receipt is not None or self.state == "sent":
            data["receipt"] = None if self.receipt is None else self.receipt.to_json()
        if self.shown is not None:
            data["shown"] = self.shown
        if self.reason is not None:
            data["reason"] = self.reason
        if self.escalated:
            data["escalated"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Parent:
        receipt = data.get("receipt")
        shown = data.get("shown")
        return cls(state=_choice(data.get("state"), PARENT_STATES, "dead"),
                   receipt=Receipt.from_json(receipt) if receipt else None,
                   shown=None if shown is None else int(shown),
                   reason=_optional_str(data.get("reason")),
                   escalated=bool(data.get("escalated", False)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Story:
    """One story of a rule: the articles (keys and ids) seen as the same story, its
    normalised title and lead SimHash (to recognise copies), when it was first and last
    seen, by how many sources and feeds, in which languages, its first match (to
    re-render the source count), per receiver what became of its first alert, and what it
    had grown to when it escalated (None: not escalated)."""

    id: str
    keys: tuple[str, ...]
    ids: tuple[str, ...] = ()
    title: str = ""
    lead: str | None = None
    first: float
    last: float
    sources: int = 1
    feeds: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    match: Match | None = None
    parents: Mapping[str, Parent] = field(default_factory=dict)
    escalated: Escalated | None = None

    def parent(self, receiver: str) -> Parent | None:
        return self.parents.get(receiver)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "keys": list(self.keys), "ids": list(self.ids),
            "title": self.title, "lead": self.lead, "first": self.first, "last": self.last,
            "sources": self.sources, "feeds": list(self.feeds),
        }
        if self.languages:
            data["languages"] = list(self.languages)
        if self.escalated is not None:
            data["escalated"] = self.escalated.to_json()
        if self.match is not None:
            data["match"] = self.match.to_json()
        data["parents"] = {r: p.to_json() for r, p in self.parents.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Story:
        match, escalated = data.get("match"), data.get("escalated")
        return cls(
            id=str(data["id"]), keys=tuple(str(k) for k in data["keys"]),
            ids=tuple(str(i) for i in data.get("ids", ())), title=str(data.get("title", "")),
            lead=_optional_str(data.get("lead")), first=float(data["first"]),
            last=float(data["last"]), sources=int(data.get("sources", 1)),
            feeds=tuple(str(f) for f in data.get("feeds", ())),
            languages=tuple(str(x) for x in data.get("languages", ())),
            escalated=None if escalated is None else Escalated.from_json(escalated),
            match=None if match is None else Match.from_json(match),
            parents={str(r): Parent.from_json(p)
                     for r, p in (data.get("parents") or {}).items()},
        )


# --------------------------------------------------------------------------- digests


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftEntry:
    """One match waiting in an open digest: ``kind`` is the receiver's verdict
    (``throttled``, or ``same_story`` for a copy that could not be threaded)."""

    kind: VerdictKind
    story: str | None
    title: str
    url: str
    feed: str
    key: str
    at: float
    published: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "story": self.story, "title": self.title, "url": self.url,
                "feed": self.feed, "key": self.key, "at": self.at,
                "published": self.published.isoformat() if self.published else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DraftEntry:
        published = data.get("published")
        return cls(kind=_choice(data.get("kind"), VERDICTS, "throttled"),
                   story=_optional_str(data.get("story")), title=str(data.get("title") or ""),
                   url=str(data.get("url") or ""), feed=str(data.get("feed") or ""),
                   key=str(data.get("key") or ""), at=float(data.get("at") or 0.0),
                   published=datetime.fromisoformat(published) if published else None)

    def to_entry(self) -> DigestEntry:
        return DigestEntry(kind=self.kind, title=self.title, url=self.url, feed=self.feed,
                           published=self.published, story=self.story)


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestDraft:
    """A receiver's digest of one rule: open (collecting entries until ``due``), or sealed
    into an outbox item (``closed`` set). ``more`` counts entries beyond the cap."""

    opened: float
    due: float
    rule_id: str
    rule_title: str
    severity: Severity
    entries: tuple[DraftEntry, ...] = ()
    more: int = 0
    closed: float | None = None

    @property
    def count(self) -> int:
        return len(self.entries) + self.more

    def to_digest(self) -> Digest:
        """The digest message to render."""
        return Digest(rule_id=self.rule_id, rule_title=self.rule_title,
                      severity=self.severity, opened=self.opened,
                      closed=self.due if self.closed is None else self.closed,
                      entries=tuple(e.to_entry() for e in self.entries), more=self.more)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "opened": self.opened, "due": self.due, "rule_id": self.rule_id,
            "rule_title": self.rule_title, "severity": self.severity,
            "entries": [e.to_json() for e in self.entries], "more": self.more,
        }
        if self.closed is not None:
            data["closed"] = self.closed
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DigestDraft:
        closed = data.get("closed")
        opened = float(data.get("opened", 0.0))
        return cls(opened=opened, due=float(data.get("due", opened)),
                   rule_id=str(data.get("rule_id", "")),
                   rule_title=str(data.get("rule_title", "")),
                   severity=_choice(data.get("severity"), SEVERITIES, "medium"),
                   entries=tuple(DraftEntry.from_json(e) for e in data.get("entries", ())),
                   more=int(data.get("more", 0)),
                   closed=None if closed is None else float(closed))


# --------------------------------------------------------------------------- outbox


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    """One message still to send (the durable *pending* record): a new ``alert`` (with the
    whole match), a thread ``reply`` (with the copy's match), a source-count ``update`` of
    the first alert, or a sealed ``digest``. ``seq`` orders a lane; ``created`` is when it
    was decided (retries give up ``RetryPolicy.max_age`` after); ``verdict`` and ``reason``
    are the decision's, for the audit line of the outcome. ``recipients``: a replay to
    some e-mail addresses only."""

    id: str
    kind: ItemKind
    receiver: str
    story: str | None
    seq: int
    created: float
    verdict: VerdictKind
    reason: str
    match: Match | None = None
    digest: DigestDraft | None = None
    recipients: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "receiver": self.receiver, "story": self.story,
            "seq": self.seq, "created": self.created, "verdict": self.verdict,
            "reason": self.reason,
        }
        if self.match is not None:
            data["match"] = self.match.to_json()
        if self.digest is not None:
            data["digest"] = self.digest.to_json()
        if self.recipients is not None:
            data["recipients"] = list(self.recipients)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutboxItem:
        match, digest, recipients = data.get("match"), data.get("digest"), data.get("recipients")
        return cls(
            id=str(data["id"]), kind=_choice(data.get("kind"), ITEM_KINDS),
            receiver=str(data["receiver"]), story=_optional_str(data.get("story")),
            seq=int(data.get("seq", 0)), created=float(data["created"]),
            verdict=_choice(data.get("verdict"), VERDICTS, "send"),
            reason=str(data.get("reason", "")),
            match=None if match is None else Match.from_json(match),
            digest=None if digest is None else DigestDraft.from_json(digest),
            recipients=None if recipients is None else tuple(str(r) for r in recipients),
        )


# --------------------------------------------------------------------------- rule state


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleState:
    """Everything delivery keeps for one rule: its stories (inside the dedup window, or
    still referred to by the outbox), the outbox, the alert times of the last hour per
    receiver (for ``max_per_hour``), the open digests per receiver, and its activity (what
    it matched lately, for the blind-rule warnings)."""

    stories: tuple[Story, ...] = ()
    outbox: Mapping[str, OutboxItem] = field(default_factory=dict)
    alerts: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    digests: Mapping[str, DigestDraft] = field(default_factory=dict)
    activity: RuleActivity = field(default_factory=RuleActivity)

    def story(self, ident: str | None) -> Story | None:
        for story in self.stories:
            if story.id == ident:
                return story
        return None

    def pending(self) -> list[OutboxItem]:
        """The outbox in sending order (sequence number, then id)."""
        return sorted(self.outbox.values(), key=lambda i: (i.seq, i.id))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": VERSION,
            "stories": [s.to_json() for s in self.stories],
            "outbox": {k: i.to_json() for k, i in self.outbox.items()},
            "alerts": {r: list(t) for r, t in self.alerts.items()},
            "digests": {r: d.to_json() for r, d in self.digests.items()},
        }
        if self.activity != RuleActivity():
            data["activity"] = self.activity.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleState:
        """A stored rule state, version 2 or 1 (upgraded); ``{}`` is the empty state."""
        if data.get("v") != VERSION and data.get("stories"):
            data = _upgrade_v1(data)
        return cls(
            stories=tuple(Story.from_json(s) for s in data.get("stories") or ()),
            outbox={str(k): OutboxItem.from_json(i)
                    for k, i in (data.get("outbox") or {}).items()},
            alerts={str(r): tuple(float(t) for t in times)
                    for r, times in (data.get("alerts") or {}).items()},
            digests={str(r): DigestDraft.from_json(d)
                     for r, d in (data.get("digests") or {}).items()},
            activity=RuleActivity.from_json(data.get("activity") or {}),
        )


def _v1_item(kind: ItemKind, ident: str, receiver: str, story: str, *, verdict: VerdictKind,
             reason: str, now: float, seq: int, match: Any) -> dict[str, Any]:
    return {"id": ident, "kind": kind, "receiver": receiver, "story": story, "seq": seq,
            "created": now, "verdict": verdict, "reason": reason, "match": match}


def _upgrade_v1(state: Mapping[str, Any]) -> dict[str, Any]:
    """Version 1 (``deliveries``/``replies`` inside each story) as version 2 JSON; pending
    deliveries and replies become outbox items so an upgrade loses nothing."""
    outbox = dict(state.get("outbox") or {})
    stories = []
    for old in state["stories"]:
        story = {k: v for k, v in old.items() if k not in ("deliveries", "replies")}
        story.setdefault("lead", None)
        parents: dict[str, Any] = {}
        first = old.get("match")
        rule_id = str((first or {}).get("rule_id", ""))
        for receiver, d in old.get("deliveries", {}).items():
            if d.get("state") == "sent":
                parents[receiver] = {"state": "sent", "receipt": d.get("receipt"),
                                     "shown": old.get("sources", 1)}
            elif d.get("state") == "pending" and first is not None:
                ident = item_id("alert", rule_id, receiver, old["id"])
                outbox[ident] = _v1_item("alert", ident, receiver, old["id"], verdict="send",
                                         reason="new story", now=float(old["first"]), seq=0,
                                         match=first)
                parents[receiver] = {"state": "pending", "shown": 1}
            else:
                parents[receiver] = {"state": "dead"}
        for key, reply in old.get("replies", {}).items():
            if reply.get("state") == "pending" and "match" in reply:
                receiver = str(reply["receiver"])
                ident = item_id("reply", rule_id, receiver, old["id"], key)
                outbox[ident] = _v1_item("reply", ident, receiver, old["id"],
                                         verdict="same_story", reason="thread reply",
                                         now=float(old["last"]), seq=1, match=reply["match"])
        story["parents"] = parents
        stories.append(story)
    return {**state, "v": VERSION, "stories": stories, "outbox": outbox}


# --------------------------------------------------------------------------- dead letters


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """An outbox item that could not be delivered (``reason``, ``message``), kept with what
    a replay needs (the match or the digest). ``state``: ``dead``; ``requested`` (by
    ``newswatch dlq replay`` while a monitor runs); ``replaying`` (back in the outbox since
    ``replayed``). ``title`` is for listings."""

    id: str
    at: float
    rule_id: str
    receiver: str
    kind: ItemKind
    story: str | None
    reason: str
    message: str
    state: LetterState = "dead"
    title: str | None = None
    match: Match | None = None
    digest: DigestDraft | None = None
    recipients: tuple[str, ...] | None = None
    replayed: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "at": self.at, "rule_id": self.rule_id, "receiver": self.receiver,
            "kind": self.kind, "story": self.story, "reason": self.reason,
            "message": self.message, "state": self.state,
        }
        optional: dict[str, Any] = {
            "match": None if self.match is None else self.match.to_json(),
            "digest": None if self.digest is None else self.digest.to_json(),
            "title": self.title,
            "recipients": None if self.recipients is None else list(self.recipients),
            "replayed": self.replayed,
        }
        data.update((k, v) for k, v in optional.items() if v is not None)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeadLetter:
        match, digest, recipients = data.get("match"), data.get("digest"), data.get("recipients")
        replayed = data.get("replayed")
        return cls(
            id=str(data["id"]), at=float(data["at"]), rule_id=str(data["rule_id"]),
            receiver=str(data["receiver"]), kind=_choice(data.get("kind"), ITEM_KINDS, "alert"),
            story=_optional_str(data.get("story")), reason=str(data.get("reason", "")),
            message=str(data.get("message", "")),
            state=_choice(data.get("state"), LETTER_STATES, "dead"),
            title=_optional_str(data.get("title")),
            match=None if match is None else Match.from_json(match),
            digest=None if digest is None else DigestDraft.from_json(digest),
            recipients=None if recipients is None else tuple(str(r) for r in recipients),
            replayed=None if replayed is None else float(replayed),
        )
