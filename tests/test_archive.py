"""The article archive (issue 17): what was handed to matching is kept for ``archive.days``,
read back oldest first as the same articles, pruned daily; `newswatch run` keeps it in the
state file."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newswatch.core.archive import DAY, Archive, ArchivedArticle
from newswatch.core.article import Article
from newswatch.core.state import SCHEMA_VERSION, Database
from tests.fakes.clock import ManualTime
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import slack_api, smtp_sink  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.smtp_sink import SMTPSink
from tests.test_end_to_end import newswatch, seed_item, write_config

START = 1_796_000_000.0  # a Unix time in 2026


def article(n: int, **fields: object) -> Article:
    values: dict[str, object] = {
        "id": f"a{n:05d}", "feed": f"feed{n % 3}", "title": f"Titre {n} : accord militaire",
        "url": f"https://news.example/{n}", "content": "Le Maroc et les États-Unis … " * 20,
        "language": "fr", "published": datetime(2026, 12, 1, 8, n % 60, tzinfo=UTC)}
    values.update(fields)
    return Article(**values)  # type: ignore[arg-type]


def open_archive(tmp_path: Path, clock: ManualTime, days: int = 30) -> tuple[Database, Archive]:
    db = Database.open(tmp_path / "state.db")
    return db, Archive(db.archive(), days, clock=clock)


def test_kept_articles_read_back_equal_oldest_first_within_the_bounds(tmp_path: Path) -> None:
    clock = ManualTime(START)
    db, archive = open_archive(tmp_path, clock)
    try:
        assert archive.keep([article(1), article(2)]) == 2
        clock.now += 60
        assert archive.keep([article(3), article(1, title="changed")]) == 1  # a1: kept once
        everything = list(archive.read(START))
        assert [(a.article.id, a.seen_at) for a in everything] == [
            ("a00001", START), ("a00002", START), ("a00003", START + 60)]
        assert everything[0].article == article(1)  # the first version, every field
        assert everything[2].article.published == article(3).published
        assert [a.article.id for a in archive.read(START + 1)] == ["a00003"]
        assert [a.article.id for a in archive.read(START, START + 60)] == ["a00001", "a00002"]
    finally:
        db.close()


def test_reading_streams_across_batches_of_articles_seen_at_the_same_second(
    tmp_path: Path,
) -> None:
    clock = ManualTime(START)
    db, archive = open_archive(tmp_path, clock)
    try:
        archive.keep([article(n) for n in range(1_203)])  # one second, more than 2 batches
        clock.now += 1
        archive.keep([article(n) for n in range(1_203, 1_210)])
        read = [a.article.id for a in archive.read(START)]
        assert read == [f"a{n:05d}" for n in range(1_210)]
    finally:
        db.close()


def test_articles_older_than_the_days_kept_are_pruned_once_a_day(tmp_path: Path) -> None:
    clock = ManualTime(START)
    db, archive = open_archive(tmp_path, clock, days=2)
    store = db.archive()
    try:
        archive.keep([article(1)])
        clock.now += 1.5 * DAY
        archive.keep([article(2)])  # 2 days not over for a1: both kept
        assert store.count() == 2
        clock.now += DAY  # a1 is 2.5 days old; the last prune was 1.5 days ago
        archive.keep([article(3)])
        assert [a.article.id for a in archive.read(0)] == ["a00002", "a00003"]
        clock.now += 0.9 * DAY  # a2 is now older than 2 days, but no prune is due
        archive.keep([article(4)])
        assert store.count() == 3
    finally:
        db.close()


def test_an_archive_keeps_at_least_a_day(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "state.db")
    try:
        with pytest.raises(ValueError):
            Archive(db.archive(), 0)
    finally:
        db.close()


def test_a_state_file_of_the_previous_schema_gains_the_archive(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Database.open(path).close()
    with sqlite3.connect(path) as conn:  # as version 1 left it: no archive table
        conn.execute("DROP TABLE archive")
        conn.execute("PRAGMA user_version = 1")
    db = Database.open(path)
    try:
        assert db.pragma("user_version") == SCHEMA_VERSION  # every step since 1 ran
        Archive(db.archive(), 30).keep([article(1)])
        assert [a.article.id for a in db.archive().read(0, 2e9)] == ["a00001"]
    finally:
        db.close()


async def test_run_archives_what_it_matched_and_archive_days_0_keeps_nothing(
    tmp_path: Path, slack_api: FakeSlackAPI, smtp_sink: SMTPSink  # noqa: F811
) -> None:
    async with FeedServer() as feeds:
        feeds.serve("/a.xml", rss([seed_item("https://news.example/maroc-usa", "seed-1"),
                                   {"title": "Rien à voir", "link": "https://news.example/x",
                                    "guid": "x-1"}]))
        config = write_config(tmp_path, feeds, slack_api, smtp_sink, ["/a.xml"])
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        db = Database.open(tmp_path / "state.db", readonly=True)
        try:
            kept: list[ArchivedArticle] = list(db.archive().read(0, 2e9))
        finally:
            db.close()
        assert sorted(a.article.url for a in kept) == ["https://news.example/maroc-usa",
                                                       "https://news.example/x"]
        assert all(a.article.feed == "feed0" and a.article.language == "fr" for a in kept)
        seed = next(a.article for a in kept if "maroc" in a.article.url)
        assert "Bourita" in seed.content or "Bourita" in seed.summary

        off = tmp_path / "off"
        off.mkdir()
        (off / "rules.yaml").write_text((tmp_path / "rules.yaml").read_text("utf-8"), "utf-8")
        (off / "config.yaml").write_text(
            config.read_text("utf-8") + "archive:\n  days: 0\n", encoding="utf-8")
        code, _, err = await newswatch("run", "--once", "--config", str(off / "config.yaml"))
        assert code == 0, err
        db = Database.open(off / "state.db", readonly=True)
        try:
            assert db.archive().count() == 0
        finally:
            db.close()
