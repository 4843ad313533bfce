"""The embedded runtime's state stops taking writes mid-delivery (issue 15: a full or a
read-only file system). The real state file refuses every write (``PRAGMA query_only``, as
a file system that refuses them would; tests/test_state.py fills a file with SQLite's page
limit for the "disk is full" error itself). Delivery stops at the first write that fails,
so at most the send in flight per lane was made without being recorded; once writes work
again, nothing is lost and each lane sends at most one alert twice."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from newswatch.core.errors import StateError
from newswatch.core.state import Database
from newswatch.streams.alerts import Match
from newswatch.streams.notifiers import Receipt
from newswatch.streams.pipeline import Pipeline
from tests.fakes.notifiers import RecordingNotifier
from tests.test_pipeline import story, with_receivers


class FillsTheDisk(RecordingNotifier):
    """Receives its first alert, then the state refuses writes."""

    def __init__(self, name: str, db: Database) -> None:
        super().__init__(name, time.time, min_interval=0, searchable=False)
        self._db = db

    async def send(self, match: Match, ident: str | None = None) -> Receipt:
        receipt = await super().send(match, ident)
        if len(self.sent) == 1:
            self._db.pragma("query_only = ON")
        return receipt


def pipeline(db: Database, notifiers: dict[str, RecordingNotifier]) -> Pipeline:
    return Pipeline(notifiers=notifiers, state=db.mapping("rules"), dlq=db.mapping("dlq"),
                    audit=db, meta=db.mapping("meta"))


async def test_a_state_that_refuses_writes_stops_delivery_and_loses_nothing(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "state.db")
    try:
        desk = FillsTheDisk("desk", db)
        mail = RecordingNotifier("mail", time.time, min_interval=0, searchable=False)
        notifiers: dict[str, RecordingNotifier] = {"desk": desk, "mail": mail}
        first = pipeline(db, notifiers)
        matches = [with_receivers(story(n), "desk", "mail") for n in range(6)]
        for m in matches[:3]:  # decided and recorded; the lanes then send, and the first
            await first.deliver(m)  # alert received fills the disk
        await first.failed.wait()
        assert isinstance(first.failure, StateError)
        assert "attempt to write a readonly database" in str(first.failure)
        with pytest.raises(StateError):
            await first.deliver(matches[3])  # cannot be recorded: not decided, not sent
        await first.aclose(1.0)
        # delivery stopped at the failed write: not the two other recorded alerts
        assert len(desk.sent) == 1 and len(mail.sent) <= 1

        db.pragma("query_only = OFF")  # writes work again; the process restarts
        second = pipeline(db, notifiers)
        assert await second.resume() >= 1  # what was decided and not recorded as sent
        for m in matches[3:]:  # the poller offers again what was not recorded
            await second.deliver(m)
        await second.drain()
        await second.aclose(1.0)
        assert second.failure is None
        for receiver in notifiers.values():
            titles = Counter(s.title for s in receiver.sent)
            assert set(titles) == {m.article.title for m in matches}  # lost 0
            assert sum(titles.values()) - len(titles) <= 1  # at most the one in flight
        assert db.integrity_ok()
    finally:
        db.close()
