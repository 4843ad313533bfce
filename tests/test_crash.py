"""Crash safety (docs/reliability.md A1/B1/B5 on the embedded tier): a real `newswatch run`
process, killed with SIGKILL 20 times at random moments while 500 matching articles stream
into 20 feeds, restarted each time; then a ledger of what the fake Slack workspace holds.

Every article matches exactly one rule (one per feed) that alerts one channel (one per
rule), at Slack's real pace of one message per second per channel. Figures printed:
lost (expected alerts never delivered), duplicated (deliveries beyond the first),
unexpected, kills, sends avoided by reconciliation, SQLite integrity.

``NEWSWATCH_CRASH_RECONCILE=0`` runs the same test without reconciliation (receivers get
``reconcile: false``) to measure what the lookup saves; ``NEWSWATCH_CRASH_SEED`` fixes the
kill schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from newswatch.core.state import Database
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import SLACK_TEST_TOKEN, slack_api  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.stories import distinct_title

ARTICLES = 500
FEEDS = 20
KILLS = 20
BATCH = 10  # articles added to the feeds at a time
BATCH_EVERY = 0.3  # seconds between batches: 500 articles stream in over ~15 s
_NUMBER = re.compile(r"n°(\d+)")


def article(i: int) -> dict[str, str]:
    return {"title": f"Accord militaire n°{i} {distinct_title(i)}",
            "link": f"https://wire.example/{i}", "guid": f"art-{i}",
            "description": "Le Maroc signe un accord militaire.",
            "pubDate": "Fri, 02 Oct 2020 10:00:00 GMT"}


def write_config(tmp: Path, feeds: FeedServer, slack: FakeSlackAPI, reconcile: bool) -> Path:
    rules = ["rules:"]
    for k in range(FEEDS):
        rules += [f"  - id: r{k}", f"    title: Wire {k}", "    phrases: [accord militaire]",
                  f"    feeds: [feed{k}]", f"    notify: [ch{k}]",
                  "    dedup: {max_per_hour: 1000}"]
    (tmp / "rules.yaml").write_text("\n".join(rules) + "\n", encoding="utf-8")
    lines = ["state: ./state.db", "rules: [rules.yaml]", "feeds:"]
    for k in range(FEEDS):
        lines += [f"  - name: feed{k}", f"    url: {feeds.url(f'/f{k}.xml')}",
                  "    interval: 10s", "    language: fr"]
    lines.append("receivers:")
    for k in range(FEEDS):
        lines += [f"  ch{k}:", "    slack:", f"      channel: '#ch{k}'",
                  f"      base_url: {slack.base_url}",
                  f"      reconcile: {'true' if reconcile else 'false'}"]
    lines += ["fetch:", f"  allow: ['{feeds.allow}']"]
    config = tmp / "config.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


async def stream(feeds: FeedServer) -> None:
    """Publish the articles progressively, as a wire would."""
    items: dict[int, list[dict[str, str]]] = {k: [] for k in range(FEEDS)}
    for start in range(0, ARTICLES, BATCH):
        for i in range(start, min(start + BATCH, ARTICLES)):
            items[i % FEEDS].append(article(i))
        for k in range(FEEDS):
            feeds.serve(f"/f{k}.xml", rss(items[k], title=f"Wire {k}"))
        await asyncio.sleep(BATCH_EVERY)  # pacing of the publisher, not synchronisation


async def start(config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "newswatch", "run", "--config", str(config),
            env={**os.environ, "SLACK_BOT_TOKEN": SLACK_TEST_TOKEN},
            stdout=asyncio.subprocess.DEVNULL, stderr=out)


def ledger(slack: FakeSlackAPI) -> Counter[tuple[str, int]]:
    """(channel id, article number) → deliveries the workspace holds."""
    held: Counter[tuple[str, int]] = Counter()
    for message in slack.messages:
        found = _NUMBER.search(str(message.payload.get("text", "")))
        if found:
            held[(message.channel, int(found.group(1)))] += 1
    return held


async def test_kill_9_twenty_times_while_500_articles_stream_in(
    tmp_path: Path, slack_api: FakeSlackAPI  # noqa: F811
) -> None:
    reconcile = os.environ.get("NEWSWATCH_CRASH_RECONCILE", "1") != "0"
    seed = int(os.environ.get("NEWSWATCH_CRASH_SEED", str(time.time_ns() % 10**6)))
    rng = random.Random(seed)
    expected = {(FakeSlackAPI._channel_id(f"#ch{i % FEEDS}"), i) for i in range(ARTICLES)}
    began = time.monotonic()
    async with FeedServer() as feeds:
        config = write_config(tmp_path, feeds, slack_api, reconcile)
        publisher = asyncio.create_task(stream(feeds))
        kills = 0
        delays = []
        for n in range(KILLS):
            proc = await start(config, tmp_path / f"run-{n:02d}.log")
            delay = rng.uniform(0.5, 3.0)
            delays.append(delay)
            await asyncio.sleep(delay)  # a random point in the run (allowed: not a sync)
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            await proc.wait()
        await publisher
        killed_for = time.monotonic() - began

        final = await start(config, tmp_path / "run-final.log")
        try:
            await slack_api.wait_until(lambda: expected <= set(ledger(slack_api)),
                                       timeout=75)
        except TimeoutError:
            pass  # the figures below say what is missing
        finally:
            final.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(final.wait(), timeout=20)
            if final.returncode is None:
                final.kill()
                await final.wait()
        total = time.monotonic() - began

    held = ledger(slack_api)
    lost = len(expected - set(held))
    duplicated = sum(count - 1 for key, count in held.items() if key in expected)
    unexpected = sum(count for key, count in held.items() if key not in expected)
    db = Database.open(tmp_path / "state.db", readonly=True)
    try:
        integrity = db.integrity_ok()
        results = Counter(d.result for d in db.decisions(limit=100_000))
    finally:
        db.close()
    print(f"\nA1 embedded, kill -9 ×{kills} (seed {seed}, reconciliation "
          f"{'on' if reconcile else 'off'}): lost {lost} of {ARTICLES}, duplicated "
          f"{duplicated}, unexpected {unexpected}, reconciled {results['sent:reconciled']}, "
          f"integrity {'ok' if integrity else 'FAILED'}; kill phase {killed_for:.0f}s, "
          f"total {total:.0f}s")
    assert kills == KILLS, delays
    assert lost == 0
    assert duplicated <= kills
    assert unexpected == 0
    assert integrity
