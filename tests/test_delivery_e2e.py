"""Delivery acceptance, as a user runs it: the real `newswatch` CLI in a subprocess against
the feed server, the fake Slack Web API and the aiosmtpd sink (one story, one alert,
explained; silences; dead letters replayed without duplicates)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from newswatch.core.state import RuntimeLock
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import slack_api, smtp_sink  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.smtp_sink import SMTPSink
from tests.test_end_to_end import newswatch, seed_item, write_config

# The seed article as five outlets publish it: own URL, own GUID, lightly rewritten title.
TITLES = [
    "Le Maroc et les États-Unis signent un accord de coopération militaire",
    "Maroc : les États-Unis signent un accord de coopération militaire",
    "Accord de coopération militaire : le Maroc et les États-Unis signent",
    "Le Maroc et les Etats-Unis ont signé un accord de coopération militaire",
    "Le Maroc et les USA signent un accord de coopération militaire de dix ans",
]


def outlet(n: int) -> bytes:
    item = seed_item(f"https://outlet{n}.example/maroc-usa-{n}", f"outlet{n}-guid")
    return rss([{**item, "title": TITLES[n]}], title=f"Outlet {n}")


async def alerts_json(config: Path) -> list[dict[str, object]]:
    code, out, err = await newswatch("alerts", "--config", str(config), "--json",
                                     "--limit", "200")
    assert code == 0, err
    data: list[dict[str, object]] = json.loads(out)
    return data


async def test_seed_in_five_feeds_is_one_alert_four_replies_count_five_one_email(
    tmp_path: Path, slack_api: FakeSlackAPI, smtp_sink: SMTPSink  # noqa: F811
) -> None:
    async with FeedServer() as feeds:
        paths = [f"/outlet{n}.xml" for n in range(5)]
        for n, path in enumerate(paths):
            feeds.serve(path, outlet(n))
        config = write_config(tmp_path, feeds, slack_api, smtp_sink, paths)
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err

        top = [m for m in slack_api.messages if m.thread_ts is None]
        replies = [m for m in slack_api.messages if m.thread_ts is not None]
        assert len(top) == 1, [m.payload.get("text") for m in top]
        assert len(replies) == 4 and {r.thread_ts for r in replies} == {top[0].ts}
        assert all("Also reported by" in str(r.payload["text"]) for r in replies)
        updates = slack_api.calls_to("chat.update")
        assert updates and all(u.payload["ts"] == top[0].ts for u in updates)
        assert "Reported by 5 sources" in json.dumps(top[0].payload["blocks"],
                                                     ensure_ascii=False)
        assert len(smtp_sink.messages) == 1  # the copies wait for the e-mail digest
        assert slack_api.fired_mentions() == []

        decisions = await alerts_json(config)
        seen = Counter((d["receiver"], d["verdict"], d["result"]) for d in decisions)
        assert seen[("desk", "send", "sent")] == 1
        assert seen[("desk", "same_story", "sent")] == 4
        assert seen[("duty", "send", "sent")] == 1
        assert seen[("duty", "same_story", "digest")] == 4
        stories = {d["story"] for d in decisions}
        assert len(stories) == 1 and None not in stories
        reasons = [str(d["reason"]) for d in decisions if d["verdict"] == "same_story"]
        assert all("similar to a story first seen at" in r for r in reasons)

        # A second run finds nothing new and sends nothing.
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        assert len(slack_api.messages) == 5 and len(smtp_sink.messages) == 1


async def test_a_silence_added_from_the_cli_holds_until_expired(
    tmp_path: Path, slack_api: FakeSlackAPI, smtp_sink: SMTPSink  # noqa: F811
) -> None:
    async with FeedServer() as feeds:
        feeds.serve("/a.xml", outlet(0))
        config = write_config(tmp_path, feeds, slack_api, smtp_sink, ["/a.xml"])
        code, out, err = await newswatch(
            "silence", "add", "--config", str(config), "--rule", "us-maghreb-military",
            "--country", "ma", "--for", "2h", "--reason", "the Rabat desk covers the visit")
        assert code == 0, err
        silence_id = out.split()[0]
        assert "country=MA" in out and "rule=us-maghreb-military" in out

        code, out, _ = await newswatch("silence", "list", "--config", str(config), "--json")
        (listed,) = json.loads(out)
        assert (listed["id"], listed["active"]) == (silence_id, True)

        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        assert slack_api.messages == [] and smtp_sink.messages == []
        decisions = await alerts_json(config)
        assert {(d["verdict"], d["result"]) for d in decisions} == {("silenced", "skipped")}
        assert all(f"silenced by {silence_id}" in str(d["reason"]) and
                   "the Rabat desk covers the visit" in str(d["reason"]) for d in decisions)

        code, out, err = await newswatch("silence", "expire", "--config", str(config),
                                         silence_id)
        assert code == 0 and f"{silence_id} expired" in out, err
        code, out, _ = await newswatch("silence", "list", "--config", str(config))
        assert out.strip() == "no active silences"
        code, _, err = await newswatch("silence", "expire", "--config", str(config), "s-nope")
        assert code == 1 and "no silence with id 's-nope'" in err

        feeds.serve("/a.xml", rss([seed_item("https://other.example/x", "x-1") | {
            "title": "Rabat et Washington renforcent leur coopération militaire"}]))
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        # The silenced story was not recorded: its next report alerts like a new story.
        assert len(slack_api.messages) == 1 and len(smtp_sink.messages) == 1


async def test_dead_letters_are_listed_and_replayed_once_however_often_replay_runs(
    tmp_path: Path, slack_api: FakeSlackAPI, smtp_sink: SMTPSink  # noqa: F811
) -> None:
    async with FeedServer() as feeds:
        feeds.serve("/a.xml", outlet(0))
        config = write_config(tmp_path, feeds, slack_api, smtp_sink, ["/a.xml"])
        slack_api.script("chat.postMessage", ok=False, error="not_in_channel")
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        assert slack_api.messages == [] and len(smtp_sink.messages) == 1  # email unaffected

        code, out, _ = await newswatch("dlq", "list", "--config", str(config), "--json")
        (entry,) = json.loads(out)
        assert (entry["receiver"], entry["reason"], entry["kind"], entry["state"]) == (
            "desk", "not_in_channel", "alert", "dead")
        code, out, _ = await newswatch("dlq", "list", "--config", str(config))
        assert "not_in_channel" in out and entry["id"] in out

        code, out, err = await newswatch("dlq", "replay", "--config", str(config), "--all")
        assert code == 0, err
        assert out.strip() == f"{entry['id']}: delivered"
        code, out, err = await newswatch("dlq", "replay", "--config", str(config),
                                         "--id", entry["id"])
        assert code == 1 and out.strip() == f"{entry['id']}: not found"
        assert len(slack_api.messages) == 1 and len(smtp_sink.messages) == 1
        code, out, _ = await newswatch("dlq", "list", "--config", str(config))
        assert out.strip() == "no dead letters"
        decisions = await alerts_json(config)
        results = Counter((d["receiver"], d["result"]) for d in decisions)
        assert results[("desk", "dead:not_in_channel")] == 1
        assert results[("desk", "sent")] == 1


async def test_one_process_writes_the_delivery_state(
    tmp_path: Path, slack_api: FakeSlackAPI, smtp_sink: SMTPSink  # noqa: F811
) -> None:
    async with FeedServer() as feeds:
        feeds.serve("/a.xml", outlet(0))
        config = write_config(tmp_path, feeds, slack_api, smtp_sink, ["/a.xml"])
        running = RuntimeLock(tmp_path / "state.db")  # as a running `newswatch run` holds it
        assert running.acquire()
        try:
            code, _, err = await newswatch("run", "--once", "--config", str(config))
            assert code == 2
            assert "another `newswatch run`" in err and "Traceback" not in err
            # dlq replay then only asks the running monitor to replay.
            code, out, _ = await newswatch("dlq", "replay", "--config", str(config), "--all")
            assert code == 0 and out == ""
        finally:
            running.release()
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        assert len(slack_api.messages) == 1
