"""Pure outbox transitions: what sending (or failing to send) an outbox item does to the rule
state, and what a replayed dead letter puts back. Like streams/decide.py: no I/O, no clock
(time is passed in); every function returns new values.

- :func:`mark_sent`: the item leaves the outbox; a first alert's receiver becomes its
  thread parent (``sent`` with the receipt); an ``update`` records the source count shown.
- :func:`mark_dead`: the item leaves the outbox; a first alert's parent becomes ``dead``
  (later copies then go to the digest); :func:`dead_letter` is the dead-letter entry.
- :func:`reply_to_digest`: a reply whose first alert was not delivered goes to the digest.
- :func:`source_update`: what an ``update`` item must show, or None (nothing to do).
- :func:`revive`: a dead letter back in the outbox, unless its alert meanwhile arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from newswatch.core.errors import DeliveryError
from newswatch.streams.alerts import Match
from newswatch.streams.decide import add_to_digest, compact, digest_entry
from newswatch.streams.notifiers import Receipt
from newswatch.streams.rulestate import DeadLetter, OutboxItem, Parent, RuleState, Story

Revived = Literal["queued", "already delivered"]


def drop(state: RuleState, ident: str) -> RuleState:
    """The state without outbox item ``ident``."""
    return replace(state, outbox={k: v for k, v in state.outbox.items() if k != ident})


def with_parent(state: RuleState, story: str | None, receiver: str, parent: Parent) -> RuleState:
    """The state with ``receiver``'s parent of ``story`` set to ``parent``."""
    return replace(state, stories=tuple(
        replace(s, parents={**s.parents, receiver: parent}) if s.id == story else s
        for s in state.stories))


def parent_receipt(state: RuleState, item: OutboxItem) -> Receipt | None:
    """Where ``item`` threads: the receipt of its story's first alert to its receiver, when
    that alert was delivered."""
    story = state.story(item.story)
    parent = story.parent(item.receiver) if story is not None else None
    return parent.delivered if parent is not None else None


def _settle(
    state: RuleState, ident: str, parent: Parent
) -> tuple[RuleState, OutboxItem | None]:
    """The state without item ``ident`` (and the item; None when it was no longer in the
    outbox); when it was a story's first alert, its receiver's parent becomes ``parent``."""
    item = state.outbox.get(ident)
    if item is None:
        return state, None
    state = drop(state, ident)
    if item.kind == "alert" and not item.recipients:
        state = with_parent(state, item.story, item.receiver, parent)
    return state, item


def mark_sent(
    state: RuleState, ident: str, receipt: Receipt
) -> tuple[RuleState, OutboxItem | None]:
    """The state once the receiver accepted item ``ident``, and the item (or None)."""
    state, item = _settle(state, ident, Parent(state="sent", receipt=receipt, shown=1))
    if item is not None and item.kind == "update":
        story = state.story(item.story)
        parent = story.parent(item.receiver) if story is not None else None
        if story is not None and parent is not None:
            state = with_parent(state, story.id, item.receiver, replace(
                parent, shown=story.sources, escalated=story.escalated is not None))
    return state, item


def mark_dead(
    state: RuleState, ident: str, reason: str
) -> tuple[RuleState, OutboxItem | None]:
    """The state once item ``ident`` was given up, and the item (or None)."""
    return _settle(state, ident, Parent(state="dead", reason=reason))


def dead_letter(
    item: OutboxItem, rule_id: str, error: DeliveryError, *, now: float,
    ident: str | None = None, recipients: Sequence[str] | None = None,
) -> DeadLetter:
    """The dead-letter entry of ``item`` (``ident``: its id in the store, when not the
    item's: a refused recipient's own entry)."""
    title: str | None = None
    if item.match is not None:
        title = item.match.article.title[:300]
    if item.digest is not None:
        title = f"digest of {item.digest.count} match(es)"
    return DeadLetter(
        id=ident or item.id, at=now, rule_id=rule_id, receiver=item.receiver, kind=item.kind,
        story=item.story, reason=error.reason, message=error.message, title=title,
        match=item.match, digest=item.digest,
        recipients=tuple(recipients) if recipients else None)


def reply_to_digest(state: RuleState, item: OutboxItem, *, now: float) -> RuleState:
    """A reply whose first alert was not delivered: its match goes to the receiver's digest
    instead, and the item leaves the outbox."""
    match = require_match(item)
    entry = digest_entry(match, "same_story", item.story, now)
    return drop(add_to_digest(state, match, item.receiver, entry, now=now), item.id)


@dataclass(frozen=True, slots=True)
class SourceUpdate:
    """Rewrite the first alert (``parent``) of ``match``'s story to show ``sources`` (and
    the story's escalation, when ``match.escalation`` is set)."""

    parent: Receipt
    match: Match
    sources: int


def source_update(state: RuleState, item: OutboxItem) -> SourceUpdate | None:
    """What an ``update`` item must do: None when its first alert was not delivered, the
    story is gone, or the message already shows as many sources and the escalation."""
    story = state.story(item.story)
    parent = story.parent(item.receiver) if story is not None else None
    receipt = parent.delivered if parent is not None else None
    if story is None or parent is None or receipt is None or story.match is None:
        return None
    more = story.sources > (1 if parent.shown is None else parent.shown)
    if not more and (story.escalated is None or parent.escalated):
        return None
    return SourceUpdate(receipt, replace(story.match, escalation=story.escalated),
                        story.sources)


def require_match(item: OutboxItem | DeadLetter) -> Match:
    if item.match is None:
        raise ValueError(f"{item.kind} {item.id} carries no match")
    return item.match


def revive(
    state: RuleState, letter: DeadLetter, *, now: float, seq: int
) -> tuple[RuleState, Revived]:
    """The state with ``letter`` back in the outbox (``queued``), or unchanged when the
    receiver meanwhile got the alert (``already delivered``). A reply whose first alert is
    not delivered, or whose story was pruned since, is sent as an alert; an escalation's
    thread note with no first alert to thread under, as an escalation alert."""
    reason = f"replay of dead letter ({letter.reason})"
    base = OutboxItem(id=letter.id, kind=letter.kind, receiver=letter.receiver, story=None,
                      seq=seq, created=now, verdict="send", reason=reason,
                      recipients=letter.recipients or None)
    if letter.kind == "digest":
        item = replace(base, verdict="throttled", digest=letter.digest, recipients=None)
        return replace(state, outbox={**state.outbox, letter.id: item}), "queued"
    match = require_match(letter)
    story = state.story(letter.story) or next(
        (s for s in state.stories if match.article.key in s.keys), None)
    kind = letter.kind
    if story is not None and kind == "alert" and not letter.recipients:
        parent = story.parent(letter.receiver)
        if parent is not None and parent.state == "sent":
            return state, "already delivered"
    stories = state.stories
    announces = kind in ("escalation", "note")
    if story is None:  # pruned since: the replay starts the story again
        story = Story(id=letter.story or letter.id, keys=(match.article.key,),
                      ids=(match.article.id,), first=now, last=now,
                      feeds=(match.article.feed,), match=compact(match))
        stories = (*stories, story)
        kind = "escalation" if announces else "alert"
    parent = story.parent(letter.receiver)
    if kind in ("reply", "note") and (parent is None or parent.state != "sent"):
        # nothing to thread under: send it as a message of its own
        kind = "escalation" if announces else "alert"
    item = replace(base, kind=kind, story=story.id, match=match)
    if kind == "alert" and not letter.recipients:
        story = replace(story, parents={**story.parents,
                                        letter.receiver: Parent(state="pending", shown=1)})
    stories = tuple(story if s.id == story.id else s for s in stories)
    return replace(state, stories=stories, outbox={**state.outbox, letter.id: item}), "queued"
