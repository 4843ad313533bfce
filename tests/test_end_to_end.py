"""Issue acceptance, as a user runs it: the real `newswatch` CLI in a subprocess against a
real feed server, a Slack-API-compatible server and an aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import SLACK_TEST_TOKEN, slack_api, smtp_sink  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.smtp_sink import SMTPSink

SEED = Path(__file__).parent / "data" / "seed_fr.txt"
TITLE = "Le Maroc et les États-Unis signent un accord de coopération militaire"

RULES = """
rules:
  - id: us-maghreb-military
    title: US military agreements in the Maghreb
    severity: high
    countries: {all: [US, MA]}
    phrases: ["accord militaire"]
    people: ["Mark Esper"]
    notify: [desk, duty]
"""


def seed_item(link: str, guid: str) -> dict[str, str]:
    return {"title": TITLE, "link": link, "guid": guid,
            "description": SEED.read_text(encoding="utf-8"),
            "pubDate": "Fri, 02 Oct 2020 10:00:00 GMT"}


def write_config(tmp: Path, feeds: FeedServer, slack: FakeSlackAPI, smtp: SMTPSink,
                 paths: list[str]) -> Path:
    (tmp / "rules.yaml").write_text(RULES, encoding="utf-8")
    feed_lines = "".join(
        f"  - name: feed{i}\n    url: {feeds.url(p)}\n    language: fr\n"
        for i, p in enumerate(paths)
    )
    config = tmp / "config.yaml"
    config.write_text(
        f"state: ./state.db\nrules: [rules.yaml]\nfeeds:\n{feed_lines}"
        f"receivers:\n"
        f"  desk:\n    slack:\n      channel: '#maghreb'\n      base_url: {slack.base_url}\n"
        f"  duty:\n    email:\n      to: [desk@example.org]\n      from: nw@example.org\n"
        f"      host: 127.0.0.1\n      port: {smtp.port}\n      starttls: false\n"
        f"fetch:\n  allow: ['{feeds.allow}']\n",
        encoding="utf-8",
    )
    return config


async def newswatch(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "SLACK_BOT_TOKEN": SLACK_TEST_TOKEN}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "newswatch", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_seed_article_alerts_once_across_runs_and_syndicating_feeds(
    tmp_path: Path, slack_api: FakeSlackAPI, smtp_sink: SMTPSink  # noqa: F811
) -> None:
    async with FeedServer() as feeds:
        feeds.serve("/a.xml", rss([seed_item("https://news.example/maroc-usa", "seed-1")]))
        config = write_config(tmp_path, feeds, slack_api, smtp_sink, ["/a.xml"])

        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        assert len(slack_api.calls_to("chat.postMessage")) == 1
        assert len(smtp_sink.messages) == 1
        posted = slack_api.calls_to("chat.postMessage")[0].payload
        assert "Mark Esper" in json.dumps(posted, ensure_ascii=False)

        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        assert len(slack_api.calls_to("chat.postMessage")) == 1
        assert len(smtp_sink.messages) == 1

        # A second feed syndicates the same article, with tracking parameters and its own GUID.
        feeds.serve("/b.xml", rss([seed_item(
            "https://news.example/maroc-usa?utm_source=rss&utm_medium=feed&xtor=RSS-3",
            "other-guid-77")]))
        config = write_config(tmp_path, feeds, slack_api, smtp_sink, ["/a.xml", "/b.xml"])
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        assert feeds.hits["/b.xml"] == 1
        assert len(slack_api.calls_to("chat.postMessage")) == 1
        assert len(smtp_sink.messages) == 1

        code, out, _ = await newswatch("status", "--config", str(config), "--json")
        rows = json.loads(out)
        assert code == 0
        assert {r["feed"]: r["status"] for r in rows} == {"feed0": "ok", "feed1": "ok"}
        assert {r["feed"]: r["articles_seen"] for r in rows} == {"feed0": 1, "feed1": 1}

        code, out, _ = await newswatch("alerts", "--config", str(config), "--json")
        verdicts = sorted({(d["receiver"], d["verdict"], d["result"]) for d in json.loads(out)})
        assert ("desk", "send", "sent") in verdicts
        assert ("desk", "same_article", "skipped") in verdicts


async def test_status_reports_failing_feed_and_exits_1(
    tmp_path: Path, slack_api: FakeSlackAPI, smtp_sink: SMTPSink  # noqa: F811
) -> None:
    async with FeedServer() as feeds:
        feeds.serve("/a.xml", b"<html><body>Not a feed</body></html>",
                    {"Content-Type": "text/html"})
        config = write_config(tmp_path, feeds, slack_api, smtp_sink, ["/a.xml", "/missing.xml"])
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        code, out, _ = await newswatch("status", "--config", str(config), "--json")
        assert code == 1
        rows = {r["feed"]: r for r in json.loads(out)}
        assert rows["feed0"]["status"] == "failing"
        assert rows["feed0"]["error_kind"] == "not_a_feed"
        assert rows["feed1"]["error_kind"] == "http_4xx"
        assert rows["feed1"]["consecutive_failures"] == 1


async def test_broken_config_exits_2_with_path_and_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("rules: [r.yaml]\nfeeds:\n  - name: a\n    url: http://x/\n"
                      "    intervall: 5m\n", encoding="utf-8")
    (tmp_path / "r.yaml").write_text("rules: []\n", encoding="utf-8")
    code, _out, err = await newswatch("run", "--once", "--config", str(config))
    assert code == 2
    assert f"{config}:5: feeds[0]: unknown key 'intervall' (did you mean 'interval'?)" in err
    assert "Traceback" not in err


async def test_broken_rule_file_exits_2_with_path_and_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("rules: [r.yaml]\nfeeds: []\n", encoding="utf-8")
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - id: x\n    title: X\n    countries: [ZQ]\n", encoding="utf-8")
    code, _, err = await newswatch("run", "--once", "--config", str(config))
    assert code == 2
    assert "r.yaml:4: error: countries: unknown country code 'ZQ'" in err
    assert "[x]" in err and "Traceback" not in err
