"""The Kafka runtime's message envelopes (streams/kafka/topics.py), no broker needed: each
round-trips through bytes, the matches topic still reads what workers before the typed
envelopes wrote, and what they read of the new messages is what they expect."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from newswatch.core.article import Article
from newswatch.rules.evidence import Evidence
from newswatch.rules.matcher import Matcher
from newswatch.rules.model import RuleSet
from newswatch.streams.alerts import Match
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings
from newswatch.streams.kafka.topics import (
    ArticleMessage,
    ClickMessage,
    MatchMessage,
    MessageError,
    PoisonRecord,
    ReplayMessage,
    ResumeMessage,
    TickMessage,
    decode_matches,
)
from newswatch.streams.kafka.worker import build_app
from tests.test_feedback import click

ARTICLE = Article(id="a-1", feed="wire", title="Accord militaire signé à Rabat",
                  url="https://news.example/a-1", summary="Le Maroc et les États-Unis…",
                  language="fr", published=datetime(2026, 11, 29, 8, 30, tzinfo=UTC))
MATCH = Match(rule_id="us-maghreb", title="US military agreements", severity="high",
              receivers=("desk",), article=ARTICLE,
              evidence=(Evidence("phrase", "accord militaire", "title", 0, 16,
                                 "Accord militaire", "accord militaire"),),
              max_per_hour=20, digest_interval=60.0)


def test_every_message_round_trips_through_bytes() -> None:
    assert ArticleMessage.from_bytes(ArticleMessage(ARTICLE).to_bytes()).article == ARTICLE
    for message in (MatchMessage(MATCH), TickMessage("r1"), ResumeMessage("r1"),
                    ReplayMessage("r1", ("d-1", "d-2")), ClickMessage(click("mute_story"))):
        assert decode_matches(message.key(), message.to_bytes()) == message
    poison = PoisonRecord.of("match", ValueError("bad"), b"\xff{cut", at=1.5)
    assert PoisonRecord.from_bytes(poison.to_bytes()) == poison
    assert (poison.reason, poison.event) == ("ValueError", "\ufffd{cut")


def test_a_poison_record_names_the_error_under_a_message_error() -> None:
    with pytest.raises(MessageError) as refused:
        ArticleMessage.from_bytes(b'{"id": "cut')
    assert PoisonRecord.of("match", refused.value, b"", at=0.0).reason == "JSONDecodeError"
    unknown = MessageError("unknown message kind 'gossip'")
    assert PoisonRecord.of("deliver", unknown, b"", at=0.0).reason == "MessageError"


def test_the_matches_topic_reads_what_the_previous_version_wrote() -> None:
    """Before the typed envelopes: a bare Match JSON, {"resume": true}, {"replay": [...]}."""
    legacy_match = json.dumps(MATCH.to_json()).encode()
    assert decode_matches(b"us-maghreb", legacy_match) == MatchMessage(MATCH)
    assert decode_matches(b"r1", b'{"resume": true}') == ResumeMessage("r1")
    assert decode_matches(b"r1", b'{"replay": ["d-1", 7]}') == ReplayMessage("r1",
                                                                            ("d-1", "7"))


def test_a_worker_of_the_previous_version_reads_the_new_messages() -> None:
    """What it looked at: the Match fields at the top level, then "resume", "replay"."""
    data = json.loads(MatchMessage(MATCH).to_bytes())
    assert Match.from_json(data) == MATCH and not data.get("resume")
    assert json.loads(TickMessage("r1").to_bytes())["resume"] is True  # a resume, to it
    assert json.loads(ReplayMessage("r1", ("d-1",)).to_bytes())["replay"] == ["d-1"]


@pytest.mark.parametrize(("key", "value", "error"), [
    (b"r1", b"[1, 2]", "not a JSON object"),
    (b"r1", b'{"id": "cut', "not JSON"),
    (b"r1", b'{"kind": "gossip"}', "unknown message kind 'gossip'"),
    (None, b'{"kind": "tick"}', "needs the rule id as its key"),
    (b"r1", b'{"rule_id": "r1"}', "not a match message"),
    (b"r1", b'{"kind": "replay"}', "not a replay message"),
    (b"r1", b'{"kind": "click", "click": {"action": "useful"}}', "not a click message"),
    (b"another-rule", ClickMessage(click()).to_bytes(),
     "a click on rule us-maghreb-military keyed 'another-rule'"),
])
def test_anything_else_on_the_matches_topic_is_refused(key: bytes | None, value: bytes,
                                                       error: str) -> None:
    with pytest.raises(MessageError, match=error):
        decode_matches(key, value)


def test_an_article_record_that_is_not_an_article_is_refused() -> None:
    with pytest.raises(MessageError, match="not an article"):
        ArticleMessage.from_bytes(b'{"title": "no id"}')


def test_the_changelog_names_are_those_faust_writes() -> None:
    """The DLQ reader and the tests read the worker's tables from these topics."""
    settings = KafkaSettings(bootstrap="127.0.0.1:9", prefix="nw.")
    app = build_app(settings, matcher=lambda: Matcher(RuleSet(())), notifiers={})
    for table in (topics.DEDUP_TABLE, topics.DEAD_LETTERS_TABLE, topics.FEEDBACK_TABLE):
        written = app.tables[table].changelog_topic.get_topic_name()
        assert written == settings.topic(topics.changelog(table))
    assert app.conf.id == settings.topic(topics.WORKER_APP)
