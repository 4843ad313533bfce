"""The Kafka runtime's topics and the messages they carry, defined once.

Every topic and group name is prefixed by ``KafkaSettings.prefix`` (``settings.topic(name)``):

==================  =============  =======================================================
topic               key            value
==================  =============  =======================================================
``articles``        article id     ``ArticleMessage``: the Article JSON (pollers → match)
``matches``         rule id        ``MatchMessage`` | ``TickMessage`` | ``ReplayMessage``
                                   | ``ResumeMessage`` | ``ClickMessage`` (match agent,
                                   tick timer, ``dlq replay``, the poller holding the Slack
                                   socket → deliver agent; keyed by rule id, so a rule's
                                   events and its table partitions live in one partition)
``alerts-dlq``      the event's    ``PoisonRecord``: an event an agent could not process
                    key
``feeds``           —              empty registry; its partitions are what pollers own
``feed-health``     feed name      compacted; the feed's health
``feed-state``      feed name      compacted; the feed's poll cursor and seen ids
``ledger``          ``article/…``  compacted; work outstanding: a pending entry with the
                    ``match/…``    record to publish again, a tombstone once done
                                   (``newswatch.streams.kafka.ledger``)
``rules-status``    ``rules``      compacted; the workers' rule set: how many, loaded
                                   when, the last reload's difference or rejection (the
                                   ``rules`` entry ``newswatch status`` shows)
``pages``           canonical URL  compacted, and deleted after ``PAGE_TTL`` (30 days):
                    ``request…``   the pollers' page cache, one article page's outcome
                                   (main text or failure) each (``monitor/pages.py``); and
                                   pages handed to their site's poller, until handled
                                   (``newswatch.streams.kafka.pagehosts``); each record
                                   in its site's partition
``silences``        silence id     compacted; the stored silences (``Silence`` JSON):
                                   mutes from Slack, ``silence add --kafka``; every worker
                                   reads all of it (``newswatch.streams.kafka.silences``)
==================  =============  =======================================================

``feed-health`` also holds, under ``<feed>/pages``, the feed's page counters
(``monitor/pagestats.py``; a feed name holds no ``/``).

An article whose page came after its teaser was published is published again, with its
``body``, under the same key: the articles topic holds both versions (the ledger tells
them apart, ``newswatch.streams.kafka.ledger``).

The articles topic is also the Kafka runtime's article archive: its retention is
``archive.days`` (``newswatch.streams.kafka.archive``).

The worker is the faust app ``<prefix>worker`` (also its consumer group); faust names a
table's changelog ``<app id>-<table>-changelog``, so the dedup, dead-letter and feedback
tables are read from any machine at ``changelog(DEDUP_TABLE)``,
``changelog(DEAD_LETTERS_TABLE)`` and ``changelog(FEEDBACK_TABLE)``.

Wire formats. Every message of the matches topic is a JSON object with a ``kind``. Decoding
also accepts what workers before the typed envelopes wrote (no ``kind``: a bare Match JSON,
``{"resume": true}``, ``{"replay": [ids]}``), so a topic written before an upgrade still
reads, and the fields those workers look for are still written (a Match's own fields at the
top level, ``resume``, ``replay``), so a worker not yet upgraded reads the new messages too
(a tick, to it, is a resume). The articles topic carries the Article JSON itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from newswatch.core.article import Article
from newswatch.streams.alerts import Match
from newswatch.streams.feedback import Click

ARTICLES = "articles"
MATCHES = "matches"
ALERTS_DLQ = "alerts-dlq"
FEEDS = "feeds"
FEED_HEALTH = "feed-health"
FEED_STATE = "feed-state"
LEDGER = "ledger"
RULES_STATUS = "rules-status"
PAGES = "pages"
SILENCES = "silences"
DECISIONS = "decisions"
#: Topics the worker's agents stream (their offsets are committed by the worker group).
STREAMED = (ARTICLES, MATCHES)
#: Topics that keep the latest value per key.
COMPACTED = (FEED_HEALTH, FEED_STATE, LEDGER, RULES_STATUS, PAGES, SILENCES)
#: Every topic ``ensure_topics`` creates, in that order.
ALL = (ARTICLES, MATCHES, ALERTS_DLQ, FEEDS, FEED_HEALTH, FEED_STATE, LEDGER, RULES_STATUS,
       PAGES, SILENCES, DECISIONS)

WORKER_APP = "worker"  # the faust app id and consumer group of `newswatch worker`
POLLER_GROUP = "pollers"  # the consumer group of `newswatch poll` on FEEDS
LEDGER_GROUP = "ledger-reconcilers"  # the workers' reconcilers on LEDGER
DEDUP_TABLE = "dedup"  # rule id → the rule's delivery state
DEAD_LETTERS_TABLE = "dead-letters"  # dead letter id → entry
FEEDBACK_TABLE = "feedback"  # click/<key> → record, lines/<channel>/<ts> → answer lines

Stage = Literal["match", "deliver"]
#: The topic an agent's events come from, by the agent's stage (a poison event replays there).
SOURCE_TOPICS: dict[str, str] = {"match": ARTICLES, "deliver": MATCHES}


def changelog(table: str) -> str:
    """The changelog topic faust writes for a worker table (before the prefix)."""
    return f"{WORKER_APP}-{table}-changelog"


class MessageError(ValueError):
    """A record that is not a message of its topic (the worker dead-letters it)."""


def _object(raw: bytes | None) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError) as error:
        raise MessageError(f"not JSON: {error}") from error
    if not isinstance(data, dict):
        raise MessageError(f"not a JSON object: {type(data).__name__}")
    return data


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


# ----------------------------------------------------------------------------- articles


@dataclass(frozen=True, slots=True)
class ArticleMessage:
    """An article on the articles topic, keyed by its id."""

    article: Article
    kind: Literal["article"] = field(default="article", init=False)

    def key(self) -> bytes:
        return self.article.id.encode()

    def to_bytes(self) -> bytes:
        return _dumps(self.article.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> ArticleMessage:
        """Raises ``MessageError`` (a ValueError) for anything but an Article JSON."""
        data = _object(raw)
        try:
            return cls(Article.from_json(data))
        except (KeyError, TypeError, ValueError) as error:
            raise MessageError(f"not an article: {error!r}") from error


# ------------------------------------------------------------------------------ matches


@dataclass(frozen=True, slots=True)
class MatchMessage:
    """A rule match for the deliver agent, keyed by its rule id."""

    match: Match
    kind: Literal["match"] = field(default="match", init=False)

    def key(self) -> bytes:
        return self.match.rule_id.encode()

    def to_bytes(self) -> bytes:
        return _dumps({"kind": self.kind, **self.match.to_json()})


@dataclass(frozen=True, slots=True)
class TickMessage:
    """The maintenance tick of one rule: seal its due digests, send its outbox. Sent by
    any worker's tick timer through the matches topic, keyed by the rule id, so it runs in
    the worker owning the rule's table partition, inside an event (where faust allows
    table writes)."""

    rule_id: str
    kind: Literal["tick"] = field(default="tick", init=False)

    def key(self) -> bytes:
        return self.rule_id.encode()

    def to_bytes(self) -> bytes:
        # "resume": a worker from before the tick reads it as a resume, its nearest meaning
        return _dumps({"kind": self.kind, "resume": True})


@dataclass(frozen=True, slots=True)
class ResumeMessage:
    """Send what one rule's outbox holds. Written by workers before the tick (which does
    this and more); still read from the topic."""

    rule_id: str
    kind: Literal["resume"] = field(default="resume", init=False)

    def key(self) -> bytes:
        return self.rule_id.encode()

    def to_bytes(self) -> bytes:
        return _dumps({"kind": self.kind, "resume": True})


@dataclass(frozen=True, slots=True)
class ReplayMessage:
    """Replay these dead letters of one rule through its dedup state (``newswatch dlq
    replay --kafka``)."""

    rule_id: str
    ids: tuple[str, ...]
    kind: Literal["replay"] = field(default="replay", init=False)

    def key(self) -> bytes:
        return self.rule_id.encode()

    def to_bytes(self) -> bytes:
        return _dumps({"kind": self.kind, "replay": list(self.ids)})


@dataclass(frozen=True, slots=True)
class ClickMessage:
    """An analyst's verified click on an alert's buttons, from the poller holding the
    Slack socket to the worker owning the alert's rule, keyed by the rule id."""

    click: Click
    kind: Literal["click"] = field(default="click", init=False)

    def key(self) -> bytes:
        return self.click.alert.rule_id.encode()

    def to_bytes(self) -> bytes:
        return _dumps({"kind": self.kind, "click": self.click.to_json()})


MatchesMessage = MatchMessage | TickMessage | ResumeMessage | ReplayMessage | ClickMessage


def decode_matches(key: bytes | None, raw: bytes | None) -> MatchesMessage:
    """A record of the matches topic, from its key (the rule id) and value, in today's
    format or the one before (no ``kind``). Raises ``MessageError`` for anything else."""
    data = _object(raw)
    kind = data.get("kind")
    if kind is None:  # written before the typed envelopes: told apart by their keys
        kind = "resume" if data.get("resume") else "replay" if "replay" in data else "match"
    try:
        if kind == "match":
            return MatchMessage(Match.from_json(data))
        rule_id = (key or b"").decode()
        if not rule_id:
            raise MessageError(f"a {kind} message needs the rule id as its key")
        if kind == "tick":
            return TickMessage(rule_id)
        if kind == "resume":
            return ResumeMessage(rule_id)
        if kind == "replay":
            return ReplayMessage(rule_id, tuple(str(i) for i in data["replay"]))
        if kind == "click":
            click = ClickMessage(Click.from_json(data["click"]))
            if click.key() != key:  # the key places it with the rule's table partitions
                raise MessageError(f"a click on rule {click.click.alert.rule_id} keyed "
                                   f"{rule_id!r}")
            return click
    except MessageError:
        raise
    except (KeyError, TypeError, ValueError) as error:  # ClickRefused is a ValueError
        raise MessageError(f"not a {kind} message: {error!r}") from error
    raise MessageError(f"unknown message kind {kind!r}")


# --------------------------------------------------------------------------- alerts-dlq


@dataclass(frozen=True, slots=True)
class PoisonRecord:
    """An event an agent could not process, on the alerts-dlq topic with the event's own
    key: the stage that failed, the error, when (Unix time), and the event as the worker
    kept it (decoded as UTF-8, invalid bytes replaced, cut at ``EVENT_CHARS``)."""

    EVENT_CHARS = 100_000
    MESSAGE_CHARS = 2000

    stage: str
    reason: str
    message: str
    at: float
    event: str
    kind: Literal["poison"] = field(default="poison", init=False)

    @classmethod
    def of(cls, stage: Stage, error: BaseException, value: bytes | None,
           at: float) -> PoisonRecord:
        """The record for ``value`` whose processing by ``stage`` raised ``error``; the
        reason names the error a ``MessageError`` wraps (e.g. ``JSONDecodeError``)."""
        cause = error.__cause__ if isinstance(error, MessageError) else None
        return cls(stage=stage, reason=type(cause or error).__name__,
                   message=str(error)[:cls.MESSAGE_CHARS], at=at,
                   event=(value or b"").decode("utf-8", "replace")[:cls.EVENT_CHARS])

    def to_bytes(self) -> bytes:
        return json.dumps({"stage": self.stage, "reason": self.reason,
                           "message": self.message, "at": self.at,
                           "event": self.event}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> PoisonRecord:
        """Raises ``MessageError`` (a ValueError) for a record no worker wrote."""
        data = _object(raw)
        try:
            return cls(stage=str(data.get("stage", "")), reason=str(data.get("reason", "")),
                       message=str(data.get("message", "")), at=float(data.get("at") or 0.0),
                       event=str(data.get("event", "")))
        except (TypeError, ValueError) as error:
            raise MessageError(f"not a dead-letter record: {error!r}") from error
