"""`newswatch status`: the table (worst first), the summary line, --feed with the recent
fetches, --json and the exit code, over a state file written by the real Poller polling
real local servers."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from pathlib import Path

import pytest

from newswatch.cli import main
from newswatch.core.config import load_config
from newswatch.core.state import Database, FetchEvent
from newswatch.monitor.fetch import Fetcher, FetchLimits
from newswatch.monitor.health import FeedHealth
from newswatch.monitor.poller import Poller
from tests.fakes.feed_server import rss
from tests.fakes.hostile_server import LocalServer, feed, status

FEEDS = Path(__file__).parent / "data" / "feeds"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def write_state(tmp_path: Path, server: LocalServer) -> Path:
    """Five feeds: ok, failing (HTML page), disabled (410), stale (learned 2 h rhythm, then
    silent for days) and one never polled."""
    server.routes["/ok.xml"] = feed((FEEDS / "rss2_bbc.xml").read_bytes())
    server.routes["/page.html"] = feed(b"<html><body>[bold]Oops[/bold]</body></html>",
                                       "text/html")
    server.routes["/gone.xml"] = status(410, "gone")
    (tmp_path / "rules.yaml").write_text("rules: []\n", encoding="utf-8")
    names = {"ok-feed": "/ok.xml", "broken-feed": "/page.html", "gone-feed": "/gone.xml",
             "quiet-feed": "/quiet.xml", "new-feed": "/new.xml"}
    lines = "".join(f"  - name: {n}\n    url: {server.url(p)}\n" for n, p in names.items())
    config = tmp_path / "config.yaml"
    config.write_text(f"state: ./state.db\nrules: [rules.yaml]\nfeeds:\n{lines}"
                      f"fetch:\n  allow: ['{server.allow}']\n", encoding="utf-8")
    feeds = {f.name: f for f in load_config(config).feeds}
    db = Database.open(tmp_path / "state.db")
    clock = Clock(time.time() - 10 * 86400)

    async def sink(articles: object) -> None:
        pass

    try:
        async with Fetcher(FetchLimits(total=2.0), allow=[server.allow]) as fetcher:
            poller = Poller(list(feeds.values()), fetcher, health=db.mapping("health"),
                            seen=db.mapping("seen"), fetch_log=db, sink=sink, clock=clock,
                            rng=random.Random(3))
            items: list[dict[str, str]] = []
            for k in range(5):  # ten days ago: a new item every 2 h, then silence
                items.insert(0, {"title": f"Item {k}", "guid": f"q-{k}"})
                server.routes["/quiet.xml"] = feed(rss(items))
                await poller.poll(feeds["quiet-feed"])
                clock.now += 7200
            clock.now = time.time() - 60
            for name in ("ok-feed", "broken-feed", "broken-feed", "gone-feed"):
                await poller.poll(feeds[name])
    finally:
        db.close()
    return config


@pytest.fixture
async def config(tmp_path: Path) -> Path:
    async with LocalServer() as server:
        return await write_state(tmp_path, server)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["status", *args])
    return code, capsys.readouterr().out


def test_table_is_worst_first_with_a_summary_and_exit_1(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "--config", str(config))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["FEED", "STATUS", "LAST"]
    order = [line.split()[0] for line in lines[1:6]]
    assert order == ["broken-feed", "gone-feed", "quiet-feed", "new-feed", "ok-feed"]
    statuses = [line.split()[1] for line in lines[1:6]]
    assert statuses == ["failing", "disabled", "stale", "never_polled", "ok"]
    broken = lines[1]
    assert "not_a_feed: got an HTML page" in broken and " 2 " in broken  # 2 failures
    assert "410 Gone" in lines[2] and "never" in lines[2]
    assert "1 ok / 1 stale / 1 failing / 1 disabled / 1 never polled" in out


def test_feed_option_lists_its_recent_fetches(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "--config", str(config), "--feed", "broken-feed")
    assert code == 1
    assert "last 2 fetches of broken-feed" in out
    fetches = [line for line in out.splitlines() if "not_a_feed: got an HTML page" in line]
    assert len(fetches) == 3  # the table row and two fetch lines

    code, out = run(capsys, "--config", str(config), "--feed", "quiet-feed")
    assert "last 5 fetches of quiet-feed" in out and " 200 " in out


def test_json_has_the_contract_fields(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "--config", str(config), "--json")
    assert code == 1
    rows = {r["feed"]: r for r in json.loads(out)}
    assert list(rows) == ["broken-feed", "gone-feed", "quiet-feed", "new-feed", "ok-feed"]
    for r in rows.values():
        assert {"feed", "status", "error_kind", "consecutive_failures", "last_success",
                "articles_seen", "articles_24h", "usual_gap_s", "share_304", "latency_s",
                "last_status", "last_attempt", "next_poll"} <= set(r)
    assert rows["broken-feed"]["error_kind"] == "not_a_feed"
    assert rows["broken-feed"]["consecutive_failures"] == 2
    assert rows["gone-feed"]["status"] == "disabled"
    assert rows["gone-feed"]["next_poll"] is None
    quiet = rows["quiet-feed"]
    assert quiet["status"] == "stale" and quiet["usual_gap_s"] == 7200.0
    assert quiet["articles_seen"] == 5 and quiet["articles_24h"] == 0
    ok = rows["ok-feed"]
    assert ok["status"] == "ok" and ok["error_kind"] is None and ok["articles_seen"] == 1
    assert ok["articles_24h"] == 1 and ok["last_status"] == 200 and ok["share_304"] == 0.0
    assert ok["last_success"].endswith("+00:00")
    assert rows["new-feed"]["status"] == "never_polled" and rows["new-feed"]["polls"] == 0


def test_exit_0_when_every_feed_is_ok(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "--config", str(config), "--feed", "ok-feed")
    assert code == 0
    assert "1 ok / 0 stale / 0 failing / 0 disabled" in out


HOSTILE = "500 \x1b]0;PWNED\x07\x1b[31mRED \x1b[2J\n2026-12-02 16:30:00,000 ERROR forged"


def test_a_servers_reason_phrase_cannot_drive_the_terminal_or_split_a_row(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15: an HTTP reason phrase is stored as the feed's error and was printed raw
    (rich strips only a few control characters)."""
    db = Database.open(config.parent / "state.db")
    try:
        health = db.mapping("health")
        broken = FeedHealth.from_json(health["broken-feed"])
        health["broken-feed"] = replace(broken, error_kind="http_5xx",
                                        error_message=HOSTILE).to_json()
        db.log_fetch(FetchEvent(feed="broken-feed", at=time.time(), status=500, latency=0.1,
                                new=0, error=HOSTILE))
    finally:
        db.close()
    code, out = run(capsys, "--config", str(config), "--feed", "broken-feed")
    assert code == 1
    assert not any(c in out for c in "\x1b\x07\r")
    rows = [line for line in out.splitlines() if "PWNED" in line]
    assert len(rows) == 2  # the table row and the last fetch, each on one line
    assert all("\\x1b]0;PWNED\\x07" in row and "\\n2026-12-02" in row for row in rows)
