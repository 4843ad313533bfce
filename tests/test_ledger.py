"""The completion ledger's pure parts (streams/kafka/ledger.py): entries and their bytes,
and which pending entries a reconciler re-drives when."""

from __future__ import annotations

from newswatch.core.article import Article
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.ledger import (
    Outstanding,
    Pending,
    article_key,
    pending_article,
    pending_match,
)
from tests.fakes.samples import sample_match


def test_an_entry_carries_the_record_to_publish_again() -> None:
    message = topics.ArticleMessage(Article(id="a-1", feed="wire", title="Rabat"))
    key, entry = pending_article(message, at=100.0)
    assert key == article_key("a-1") == b"article/a-1"
    back = Pending.from_bytes(entry.to_bytes())
    assert back == entry
    assert (back.stage, back.topic, back.key) == ("match", topics.ARTICLES, b"a-1")
    assert topics.ArticleMessage.from_bytes(back.value) == message

    match = topics.MatchMessage(sample_match())
    key, entry = pending_match(match, at=100.0)
    assert key == f"match/{match.match.rule_id}/{match.match.article.id}".encode()
    assert (entry.stage, entry.topic, entry.key) == ("deliver", topics.MATCHES,
                                                     match.key())


def test_what_stays_pending_past_the_bound_is_due_once_per_bound() -> None:
    outstanding = Outstanding(after=60.0)
    entries = {n: pending_article(topics.ArticleMessage(
        Article(id=f"a-{n}", feed="wire", title="t")), at=100.0) for n in range(3)}
    for n, (key, entry) in entries.items():
        outstanding.apply(n % 2, key, entry.to_bytes(), at=entry.at)
    outstanding.apply(0, entries[0][0], None, at=101.0)  # a-0 done
    assert outstanding.due(159.0) == []
    due = outstanding.due(160.0)
    assert sorted(k for k, _ in due) == [b"article/a-1", b"article/a-2"]
    assert outstanding.due(200.0) == []  # re-driven at 160: next at 220
    assert len(outstanding.due(220.0)) == 2
    assert [k for k, _ in outstanding.due(280.0, partitions={1})] == [b"article/a-1"]
    outstanding.forget([1])  # partition 1 (a-1) revoked
    assert [k for k, _ in outstanding.due(280.0)] == [b"article/a-2"]
    outstanding.apply(0, b"article/a-2", None, at=281.0)
    assert len(outstanding) == 0


def test_a_record_that_is_not_an_entry_is_dropped_when_due() -> None:
    outstanding = Outstanding(after=1.0)
    outstanding.apply(0, b"article/x", b"{not json", at=0.0)
    outstanding.apply(0, b"article/y", b'{"kind": "other"}', at=0.0)
    assert outstanding.due(0.5) == [] and len(outstanding) == 2
    assert outstanding.due(2.0) == [] and len(outstanding) == 0
