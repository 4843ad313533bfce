"""Feed-health notices through the real delivery pipeline, and end to end: the real
`newswatch run --once` in a subprocess, a feed server on 127.0.0.1 and the console as the
ops receiver. One notice when the feed turns failing (third consecutive failure), none while
it stays failing, one when it recovers."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from newswatch.core.state import Decision
from newswatch.monitor.health import FeedHealth, Transition
from newswatch.streams.channels.console import ConsoleNotifier
from newswatch.streams.notices import feed_notice
from newswatch.streams.pipeline import Pipeline
from tests.fakes.feed_server import FeedServer, rss


class Audit:
    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def log_decision(self, d: Decision) -> None:
        self.decisions.append(d)


async def test_a_burst_of_notices_is_one_message_each_never_threaded_together() -> None:
    """25 feeds fail and recover while the first notices are still queued: the story dedup
    must not take "Feed b is failing" for a copy of "Feed a is failing"."""
    out = io.StringIO()
    pipeline = Pipeline(notifiers={"ops": ConsoleNotifier("ops", out)}, state={}, dlq={},
                        audit=Audit())
    verdicts = []
    for i in range(25):
        failing = FeedHealth(feed=f"feed-{i}", status="failing", consecutive_failures=3,
                             error_kind="timeout", error_message="no answer within 20 s")
        ok = FeedHealth(feed=f"feed-{i}", status="ok", last_success=1_700_000_100.0)
        for t in (Transition(f"feed-{i}", "ok", "failing", 1_700_000_000.0, failing),
                  Transition(f"feed-{i}", "failing", "ok", 1_700_000_100.0, ok)):
            verdicts.append((await pipeline.deliver(feed_notice(t, receiver="ops"))).kind)
    await pipeline.drain()
    await pipeline.aclose(1.0)
    assert verdicts == ["send"] * 50
    text = out.getvalue()
    assert text.count("is failing (timeout)") == 25 and text.count("  Feed feed-7 recovered") == 1
    assert "also reported" not in text


async def run_once(config: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "newswatch", "run", "--once", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_ops_hear_once_that_a_feed_fails_and_once_that_it_recovered(
    tmp_path: Path,
) -> None:
    async with FeedServer() as feeds:
        (tmp_path / "rules.yaml").write_text("rules: []\n", encoding="utf-8")
        config = tmp_path / "config.yaml"
        config.write_text(
            f"state: ./state.db\nrules: [rules.yaml]\nfeeds:\n"
            f"  - name: wire\n    url: {feeds.url('/wire.xml')}\n"
            f"receivers:\n  duty:\n    console: {{}}\nops: duty\n"
            f"fetch:\n  allow: ['{feeds.allow}']\n", encoding="utf-8")
        outputs = [await run_once(config) for _ in range(4)]  # 404 four times
        feeds.serve("/wire.xml", rss([{"title": "Back", "guid": "b-1"}]))
        outputs.append(await run_once(config))
        outputs.append(await run_once(config))
    failing = [i for i, out in enumerate(outputs) if "Feed wire is failing (http_4xx)" in out]
    recovered = [i for i, out in enumerate(outputs) if "Feed wire recovered" in out]
    assert failing == [2] and recovered == [4]
    assert "newswatch: feed failing (newswatch-feed-wire)" in outputs[2]
    assert "3 consecutive failed polls" in outputs[2]
    assert [out.count("newswatch-feed-") for out in outputs] == [0, 0, 1, 0, 1, 0]
