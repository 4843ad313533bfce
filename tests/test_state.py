"""The SQLite state: pragmas, JSON mapping semantics, pruning of old seen ids."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from newswatch.core.config import FeedConfig
from newswatch.core.errors import StateError
from newswatch.core.feedback import FeedbackRecord
from newswatch.core.state import SCHEMA_VERSION, Database
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


def test_a_state_file_carries_its_schema_version_and_a_newer_one_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    Database.open(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for readonly in (False, True):
        with pytest.raises(StateError, match=rf"^{re.escape(str(path))}: written by a newer "
                                             rf"newswatch \(state schema {SCHEMA_VERSION + 1}"):
            Database.open(path, readonly=readonly)


def test_a_file_from_before_versions_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the tables as the first versions wrote them
        conn.execute("CREATE TABLE kv (space TEXT NOT NULL, key TEXT NOT NULL, value TEXT "
                     "NOT NULL, PRIMARY KEY (space, key)) WITHOUT ROWID")
        conn.execute("INSERT INTO kv VALUES ('rules', 'r', '{\"v\": 2}')")
        conn.execute("CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL, "
                      "rule_id TEXT, article TEXT, title TEXT, receiver TEXT, verdict TEXT, "
                      "reason TEXT, result TEXT, ref TEXT)")
    db = Database.open(path)
    try:
        assert db.pragma("user_version") == SCHEMA_VERSION
        assert db.mapping("rules")["r"] == {"v": 2}
        assert db.decisions() == []
    finally:
        db.close()


def test_a_version_2_file_gains_the_feedback_table_and_a_click_is_stored_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v2.db"
    Database.open(path).close()
    with sqlite3.connect(path) as conn:  # as version 2 left it: no feedback table
        conn.execute("DROP TABLE feedback")
        conn.execute("PRAGMA user_version = 2")
    old = Database.open(path, readonly=True)
    try:
        assert list(old.feedback().records()) == []  # read-only: nothing created
    finally:
        old.close()
    db = Database.open(path)
    try:
        assert db.pragma("user_version") == SCHEMA_VERSION == 3
        click = FeedbackRecord(key="k1", at=1.0, action="useful", user_id="U1",
                               user_name="alice", rule_id="r", story="s", article="a",
                               receiver="desk", channel="C1", ts="1.000100", title="t",
                               evidence="e", line="Marked useful by <@U1>")
        feedback = db.feedback()
        assert feedback.add(click) and not feedback.add(click)
        muted = replace(click, key="k2", at=2.0, action="mute_story", line="Muted", silence="s-1")
        assert feedback.add(muted) and feedback.add(replace(click, key="k3", at=3.0))
        assert list(feedback.records()) == [click, muted, replace(click, key="k3", at=3.0)]
        assert feedback.lines("C1", "1.000100") == ["Muted", "Marked useful by <@U1>"]
        assert feedback.lines("C1", "9.0") == []
    finally:
        db.close()


@pytest.mark.parametrize("content", [b"", b"SQLite format 3\x00" + b"\x00" * 80,
                                     bytes(range(256)) * 64])
def test_a_file_that_is_not_a_state_is_one_line_in_status_and_alerts(
    tmp_path: Path, content: bytes,
) -> None:
    """Issue 15: a truncated, empty or random-bytes state file crashed ``status`` and
    ``alerts`` with a traceback."""
    (tmp_path / "state.db").write_bytes(content)
    config = tmp_path / "config.yaml"
    config.write_text("state: ./state.db\nrules: []\nfeeds: []\n", encoding="utf-8")
    for command in ("status", "alerts"):
        done = subprocess.run([sys.executable, "-m", "newswatch", command, "--config",
                               str(config)], capture_output=True, text=True, cwd=tmp_path,
                              timeout=60, check=False)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines() == [
            done.stderr.strip()] and "state.db" in done.stderr


def test_a_full_disk_is_a_state_error_naming_the_file_and_nothing_half_written(
    tmp_path: Path,
) -> None:
    """Issue 15: a failed COMMIT was followed by a ROLLBACK that raised "no transaction is
    active", hiding the StateError. SQLite's page limit fills the file as a full disk
    would."""
    path = tmp_path / "s.db"
    db = Database.open(path)
    try:
        state = db.mapping("rules")
        state["kept"] = {"n": 1}
        limit = db.pragma("page_count") + 2
        db.pragma(f"max_page_count = {limit}")
        with pytest.raises(StateError, match=rf"^{re.escape(str(path))}: cannot write "
                                             r"state: database or disk is full"):
            for n in range(100):
                state[f"k{n}"] = "x" * 3000
        assert state["kept"] == {"n": 1}  # what was written stays readable
        db.pragma(f"max_page_count = {limit + 1000}")  # space again
        state["after"] = {"n": 2}
        assert state["after"] == {"n": 2} and db.integrity_ok()
    finally:
        db.close()
