"""Slack answers 429 for a whole minute, then recovers (docs/reliability.md H1/H2), with the
real `newswatch run --once` process: every alert arrives, in order per channel, none twice;
every Retry-After is waited; the storm pauses its own channel only (the other channel gets
its alerts during the storm at one per second).

``NEWSWATCH_STORM_SECONDS`` shortens the storm for a quick local run (default: the issue's
60 s).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections import Counter
from pathlib import Path

from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import slack_api  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.stories import distinct_title
from tests.test_end_to_end import newswatch

STORM_SECONDS = float(os.environ.get("NEWSWATCH_STORM_SECONDS", "60"))
ALERTS = 8
_NUMBER = re.compile(r"n°(\d+)")


def write_config(tmp: Path, feeds: FeedServer, slack: FakeSlackAPI) -> Path:
    (tmp / "rules.yaml").write_text(
        "rules:\n  - id: wire\n    title: Wire\n    phrases: [accord militaire]\n"
        "    notify: [stormy, calm]\n", encoding="utf-8")
    receivers = "".join(
        f"  {name}:\n    slack:\n      channel: '#{name}'\n      base_url: {slack.base_url}\n"
        for name in ("stormy", "calm"))
    config = tmp / "config.yaml"
    config.write_text(
        f"state: ./state.db\nrules: [rules.yaml]\nfeeds:\n"
        f"  - name: wire\n    url: {feeds.url('/wire.xml')}\n    language: fr\n"
        f"receivers:\n{receivers}fetch:\n  allow: ['{feeds.allow}']\n", encoding="utf-8")
    return config


def numbers(slack: FakeSlackAPI, channel: str) -> list[int]:
    wanted = FakeSlackAPI._channel_id(channel)
    out = []
    for message in slack.messages:
        found = _NUMBER.search(str(message.payload.get("text", "")))
        if message.channel == wanted and found:
            out.append(int(found.group(1)))
    return out


async def test_a_minute_of_429_then_recovery_delivers_all_in_order_none_twice(
    tmp_path: Path, slack_api: FakeSlackAPI  # noqa: F811
) -> None:
    items = [{"title": f"Accord militaire n°{i} {distinct_title(i)}",
              "link": f"https://wire.example/{i}", "guid": f"w-{i}",
              "description": "Le Maroc signe un accord militaire."} for i in range(ALERTS)]
    async with FeedServer() as feeds:
        feeds.serve("/wire.xml", rss(items))
        config = write_config(tmp_path, feeds, slack_api)
        began = time.monotonic()
        slack_api.storm(STORM_SECONDS, channel="#stormy", retry_after=(1, 5))
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        took = time.monotonic() - began
    assert code == 0, err

    stormy, calm = numbers(slack_api, "#stormy"), numbers(slack_api, "#calm")
    posts = slack_api.calls_to("chat.postMessage")
    by_channel = {name: [c for c in posts if c.payload["channel"] == f"#{name}"]
                  for name in ("stormy", "calm")}
    ok_at = {name: [c.at for c in calls if c.status == 200]
             for name, calls in by_channel.items()}
    limited = slack_api.rate_limited
    # Each 429 was honoured: the channel's next call came at least Retry-After later
    # (the answered call itself is recorded a moment after its 429 was decided).
    calls_at = [c.at for c in by_channel["stormy"]]
    waits_ok = sum(
        1 for at, _, wait in limited
        if (later := [t for t in calls_at if t > at + 0.05]) and later[0] - at >= wait)
    print(f"\nH1/H2 429 storm {STORM_SECONDS:.0f}s: stormy {len(stormy)} of {ALERTS} "
          f"delivered, duplicated {len(stormy) - len(set(stormy))}, order violations "
          f"{sum(1 for a, b in itertools.pairwise(stormy) if a > b)}; calm {len(calm)} of "
          f"{ALERTS} during the storm; 429s {len(limited)}, Retry-After honoured "
          f"{waits_ok} of {len(limited)}; drain "
          f"{max(ok_at['stormy']) - began - STORM_SECONDS:.1f}s after the storm; "
          f"run took {took:.0f}s")
    assert stormy == list(range(ALERTS))  # all, in order, none twice
    assert calm == list(range(ALERTS))
    assert Counter(c.status for c in by_channel["calm"]) == {200: ALERTS}
    # The calm channel went at its own pace, not after the storm: every calm alert was in
    # before the stormy channel took its first (an order of events, not a duration).
    assert max(ok_at["calm"]) < min(ok_at["stormy"])
    assert min(ok_at["stormy"]) - began >= STORM_SECONDS - 0.5
    assert len(limited) >= 2
    assert waits_ok == len(limited)  # every Retry-After waited, before the next call
    for times in ok_at.values():  # one message a second per channel, as paced
        # (the fake server stamps arrivals: a late arrival shortens the gap after it, so
        # the pace is checked over the run, and no two arrivals are bunched)
        assert times[-1] - times[0] >= 0.95 * (len(times) - 1), times
        assert all(b - a >= 0.5 for a, b in itertools.pairwise(times)), times
