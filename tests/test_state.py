"""The SQLite state: pragmas, JSON mapping semantics, pruning of old seen ids."""

from __future__ import annotations

from pathlib import Path

from newswatch.core.config import FeedConfig
from newswatch.core.state import Database
from newswatch.monitor.poller import SEEN_TTL, Poller


def test_wal_and_full_sync(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "s.db")
    try:
        assert db.pragma("journal_mode") == "wal"
        assert db.pragma("synchronous") == 2  # FULL: a committed alert survives power loss
        assert db.integrity_ok()
    finally:
        db.close()


def test_mapping_copies_values_in_and_out(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "s.db")
    try:
        m = db.mapping("rules")
        value = {"stories": [1]}
        m["r"] = value
        value["stories"].append(2)  # not written back: the stored copy is unchanged
        assert m["r"] == {"stories": [1]}
        assert "r" in m and len(m) == 1 and list(m) == ["r"]
        del m["r"]
        assert "r" not in m
    finally:
        db.close()


class _NoFetch:
    async def fetch(self, url: str, **kw: object) -> object:
        raise AssertionError("not called")


async def _sink(articles: object) -> None:
    return None


def test_poller_forgets_seen_ids_older_than_the_ttl(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "s.db")
    try:
        seen = db.mapping("seen")
        now = 10 * SEEN_TTL
        seen.set_many({"f\x1fold": now - SEEN_TTL - 1, "f\x1fnew": now - 10})
        poller = Poller([FeedConfig("f", "http://x/")], _NoFetch(),  # type: ignore[arg-type]
                        health=db.mapping("health"), seen=seen, fetch_log=db, sink=_sink)
        assert poller.forget_old(now) == 1
        assert list(seen) == ["f\x1fnew"]
    finally:
        db.close()
