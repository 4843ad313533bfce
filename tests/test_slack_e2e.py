"""Issue 18 acceptance, embedded runtime, as a user runs it: a real `newswatch run` process
with an interactive Slack receiver, the feed server, the fake Slack Web API and a local
Socket Mode server. "Mute story" clicked in Slack silences the story's next copy."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import (  # noqa: F401
    SLACK_APP_TEST_TOKEN,
    SLACK_TEST_TOKEN,
    slack_api,
    slack_socket,
)
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_socket import FakeSocketMode, block_actions
from tests.test_end_to_end import RULES, seed_item
from tests.test_reload import read_until

COPY_TITLE = "Maroc : les États-Unis signent un accord de coopération militaire"
ENV = {**os.environ, "SLACK_BOT_TOKEN": SLACK_TEST_TOKEN, "SLACK_APP_TOKEN": SLACK_APP_TEST_TOKEN}


def write_config(tmp: Path, feeds: FeedServer, slack: FakeSlackAPI, extra: str = "") -> Path:
    """The embedded runtime's config; ``extra`` is appended (tests/test_kafka_clicks.py:
    the ``kafka:`` section)."""
    (tmp / "rules.yaml").write_text(RULES.replace("notify: [desk, duty]", "notify: [desk]"),
                                    encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        "state: ./state.db\nrules: [rules.yaml]\nfeeds:\n"
        f"  - name: wire\n    url: {feeds.url('/a.xml')}\n    interval: 10s\n"
        "    language: fr\n"
        "receivers:\n  desk:\n    slack:\n      channel: '#maghreb'\n"
        f"      base_url: {slack.base_url}\n      interactive: true\n      mute_story: 2h\n"
        f"fetch:\n  allow: ['{feeds.allow}']\n{extra}", encoding="utf-8")
    return config


async def newswatch(*args: str, env: dict[str, str] = ENV) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "newswatch", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_mute_story_clicked_in_slack_silences_the_next_copy_of_the_story(
    tmp_path: Path, slack_api: FakeSlackAPI, slack_socket: FakeSocketMode,  # noqa: F811
) -> None:
    async with FeedServer() as feeds:
        first = seed_item("https://news.example/maroc-usa", "seed-1")
        feeds.serve("/a.xml", rss([first]))
        config = write_config(tmp_path, feeds, slack_api)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "newswatch", "run", "--config", str(config), env=ENV,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None
        try:
            await read_until(proc.stderr, "running:", 60)
            await slack_socket.wait_connected()
            await slack_api.wait_until(lambda: len(slack_api.messages) == 1, timeout=30)
            (alert,) = slack_api.messages
            blocks = json.dumps(alert.payload["blocks"], ensure_ascii=False)
            assert all(label in blocks for label in ("Useful", "Not relevant", "Mute story",
                                                     "Mute rule 24 h"))

            envelope = await slack_socket.send(block_actions(alert, "mute_story"))
            await slack_socket.wait_ack(envelope)
            await slack_api.wait_until(lambda: alert.edits == 1)
            (update,) = slack_api.calls_to("chat.update")
            assert update.at >= slack_socket.acks[0].at  # acknowledged first
            assert "Muted by <@U0ALICE01> until " in json.dumps(alert.payload["blocks"])

            code, out, err = await newswatch("silence", "list", "--config", str(config),
                                             "--json")
            assert code == 0, err
            (silence,) = json.loads(out)
            assert (silence["creator"], silence["reason"], silence["rule"], silence["active"]) \
                == ("slack:U0ALICE01 (alice)", "muted from Slack", "us-maghreb-military", True)
            assert silence["expires"] - silence["created"] == 7200  # the receiver's mute_story
            code, out, _ = await newswatch("silence", "list", "--config", str(config))
            assert "by slack:U0ALICE01 (alice)" in out

            # Another outlet's copy of the story, at the feed's next poll: silenced.
            copy = {**seed_item("https://outlet2.example/maroc-usa", "copy-2"),
                    "title": COPY_TITLE}
            feeds.serve("/a.xml", rss([first, copy]))
            await read_until(proc.stderr, "silenced", 60)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, rest = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 0, rest.decode()

    decisions = await alerts(config)
    (muted,) = [d for d in decisions if d["verdict"] == "silenced"]
    assert muted["title"] == COPY_TITLE and muted["story"] == silence["story"]
    assert f"silenced by {silence['id']}" in str(muted["reason"])
    assert "muted from Slack" in str(muted["reason"])
    assert len(slack_api.messages) == 1  # no thread reply
    assert len(slack_api.calls_to("chat.update")) == 1  # nor a source count update


async def alerts(config: Path) -> list[dict[str, Any]]:
    code, out, err = await newswatch("alerts", "--config", str(config), "--json")
    assert code == 0, err
    data: list[dict[str, Any]] = json.loads(out)
    return data


@pytest.mark.parametrize("command", [("run", "--once"), ("poll",)])
async def test_an_interactive_receiver_without_the_app_token_stops_run_and_poll_with_exit_2(
    tmp_path: Path, slack_api: FakeSlackAPI, command: tuple[str, ...],  # noqa: F811
) -> None:
    """``run`` holds the socket; so may any Kafka poller (docs/kafka.md)."""
    async with FeedServer() as feeds:
        config = write_config(tmp_path, feeds, slack_api)
        env = {k: v for k, v in ENV.items() if k != "SLACK_APP_TOKEN"}
        code, _, err = await newswatch(*command, "--config", str(config), env=env)
    assert code == 2 and "Traceback" not in err
    assert "receivers.desk: the Slack token must be in the SLACK_APP_TOKEN environment " \
           "variable" in err
    assert slack_api.calls == []
