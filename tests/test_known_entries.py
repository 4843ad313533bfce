"""Skipping known entries: a changed feed is parsed for its new entries only, with the same
articles as a full parse would give (the poller's seen-set does the rest)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from newswatch.core.article import Article
from newswatch.core.config import FeedConfig
from newswatch.core.state import FetchEvent
from newswatch.monitor.feedparse import parse_feed
from newswatch.monitor.fetch import Fetcher, FetchLimits
from newswatch.monitor.poller import Poller
from tests.fakes.feed_server import FeedServer, rss

FEEDS = Path(__file__).parent / "data" / "feeds"
HEADERS = {"content-type": "application/rss+xml"}


def parse(body: bytes, known: Sequence[str] = (), max_entries: int = 200) -> tuple[
        list[str], tuple[str, ...], int]:
    parsed = parse_feed(body, feed="f", headers=HEADERS, language=None, known=frozenset(known),
                        max_entries=max_entries)
    return [a.title for a in parsed.articles], parsed.entry_keys, parsed.skipped


def items(*titles: str) -> list[dict[str, str]]:
    return [{"title": t, "guid": f"g-{t}", "description": f"About {t}"} for t in titles]


def test_unchanged_entries_are_skipped_and_new_ones_parsed() -> None:
    titles, keys, skipped = parse(rss(items("b", "a")))
    assert titles == ["b", "a"] and len(keys) == 2 and skipped == 0
    titles, keys2, skipped = parse(rss(items("c", "b", "a"), title="renamed"), keys)
    assert titles == ["c"] and skipped == 2
    assert set(keys) < set(keys2) and len(keys2) == 3


def test_all_entries_known_is_nothing_new_even_when_feedparser_complains() -> None:
    body = (FEEDS / "rss2_undeclared_latin1.xml").read_bytes()  # has an encoding warning
    first = parse_feed(body, feed="f", headers=HEADERS, language=None)
    # 10 entries, 9 articles: the entry that gave none is remembered (and skipped) too
    assert first.warning and len(first.articles) == 9 and len(first.entry_keys) == 10
    again = parse_feed(body, feed="f", headers=HEADERS, language=None,
                       known=frozenset(first.entry_keys))
    assert again.articles == () and again.skipped == 10
    assert again.entry_keys == first.entry_keys


def test_an_edited_entry_is_parsed_again() -> None:
    _, keys, _ = parse(rss(items("a", "b")))
    edited = items("a", "b")
    edited[1]["description"] = "About b, corrected"
    titles, _, skipped = parse(rss(edited), keys)
    assert titles == ["b"] and skipped == 1  # same id: the poller's seen-set drops it


def test_a_long_feed_does_not_reach_past_the_cap_through_skipping() -> None:
    old = [f"old {n}" for n in range(300)]
    titles, keys, _ = parse(rss(items(*old)), max_entries=100)
    assert titles == old[:100] and len(keys) == 100
    titles, _, skipped = parse(rss(items("new", *old)), keys, max_entries=100)
    assert titles == ["new"] and skipped == 99  # not "old 100".."old 198"


def test_entries_that_cannot_be_delimited_are_never_skipped() -> None:
    tricky = items("a", "b")
    tricky[0]["description"] = "see </item> here"  # escaped by rss(): fine
    body = rss(tricky).replace(b"see &lt;/item&gt; here", b"<![CDATA[see </item> here]]>")
    titles, keys, _ = parse(body)
    assert titles == ["a", "b"] and keys == ()
    titles, keys, skipped = parse(body, ("whatever",))
    assert titles == ["a", "b"] and skipped == 0


class Log:
    def __init__(self) -> None:
        self.events: list[FetchEvent] = []

    def log_fetch(self, e: FetchEvent, *, keep: int = 100) -> None:
        self.events.append(e)


async def test_entries_are_remembered_only_after_the_sink_accepted_them() -> None:
    accepted: list[Article] = []
    failing = [True]

    async def sink(articles: Sequence[Article]) -> None:
        if failing[0]:
            raise RuntimeError("delivery stage down")
        accepted.extend(articles)

    entries: dict[str, list[str]] = {}
    async with FeedServer() as server, Fetcher(FetchLimits(total=2.0),
                                                allow=[server.allow]) as fetcher:
        feed = FeedConfig("f", server.url("/f.xml"))
        poller = Poller([feed], fetcher, health={}, seen={}, fetch_log=Log(), sink=sink,
                        rng=random.Random(1), entries=entries)
        server.serve("/f.xml", rss(items("b", "a")))
        await poller.poll(feed)
        assert entries == {} and accepted == []
        failing[0] = False
        server.serve("/f.xml", rss(items("b", "a"), title="same items, other bytes"))
        await poller.poll(feed)
        assert [a.title for a in accepted] == ["b", "a"] and len(entries["f"]) == 2
        server.serve("/f.xml", rss(items("c", "b", "a")))
        await poller.poll(feed)
    assert [a.title for a in accepted] == ["b", "a", "c"]
    assert len(entries["f"]) == 3
