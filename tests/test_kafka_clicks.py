"""Issue 18 acceptance, Kafka runtime, as a user runs it: two `newswatch poll` and two
`newswatch worker` processes on the project's Kafka broker, an interactive Slack receiver, the feed
server, the fake Slack Web API and a local Socket Mode server.

Of the two pollers, the one owning partition 0 of the feeds registry holds the socket, and
publishes each click to the matches topic; the worker owning the rule applies it. "Useful"
is answered under the alert; the poller holding the socket then stops and the other one
takes the connection over; the answer stays when a copy of the story re-renders the alert;
"Mute story" is a silence listed by `silence list --kafka` with its clicker; the worker
that applied it then stops, and the other worker, now owning the rule, silences the next
copy of the story (it reads the silences topic). Both clicks are recorded in the feedback
table's changelog, and their ledger entries are done.

The same "Mute story" flow for both runtimes is in tests/test_scenarios.py; the embedded
runtime's own end-to-end test is tests/test_slack_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings, ensure_topics, read_compacted
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import slack_api, slack_socket  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI, StoredMessage
from tests.fakes.slack_socket import FakeSocketMode, block_actions
from tests.kafka_fixtures import kafka_bootstrap, unique_name, wait_for_stable_group  # noqa: F401
from tests.scenario_clicks import eventually
from tests.test_end_to_end import seed_item
from tests.test_kafka_cluster import Proc, processes
from tests.test_kafka_runtime import drained
from tests.test_slack_e2e import COPY_TITLE, newswatch
from tests.test_slack_e2e import write_config as e2e_config

RULE = "us-maghreb-military"
PARTITIONS = 4
TAKEN = '"message": "taking clicks on alert buttons'  # streams/interactive.py's log lines
RELEASED = '"message": "no longer taking clicks on alert buttons'


def write_config(tmp: Path, feeds: FeedServer, slack: FakeSlackAPI, bootstrap: str,
                 prefix: str) -> Path:
    """The config of tests/test_slack_e2e.py (its ``state`` unused here), on Kafka."""
    return e2e_config(tmp, feeds, slack, f"kafka:\n  bootstrap: {bootstrap}\n"
                      f"  topic_prefix: {prefix}\n  partitions: {PARTITIONS}\n")


def copy(n: int) -> dict[str, str]:
    """Another outlet's copy of the seed story."""
    return {**seed_item(f"https://outlet{n}.example/maroc-usa", f"copy-{n}"),
            "title": COPY_TITLE}


def shown(message: StoredMessage) -> str:
    return json.dumps(message.payload["blocks"], ensure_ascii=False)


async def click(socket: FakeSocketMode, slack: FakeSlackAPI, alert: StoredMessage,
                action: str, edits: int) -> None:
    """Click ``action`` on ``alert``; returns once acknowledged and answered."""
    envelope = await socket.send(block_actions(alert, action))
    ack = await socket.wait_ack(envelope)
    await slack.wait_until(lambda: alert.edits == edits, timeout=60)
    assert slack.calls_to("chat.update")[-1].at >= ack.at  # acknowledged first


def decisions(proc: Proc) -> list[dict[str, Any]]:
    """The decision log lines of ``proc`` (JSON lines)."""
    lines = [json.loads(line) for log in sorted(proc.dir.glob("run*.log"))
             for line in log.read_text("utf-8").splitlines() if line.startswith("{")]
    return [line for line in lines if str(line.get("message")).startswith("decision ")]


async def the_holder(pollers: Sequence[Proc], socket: FakeSocketMode) -> Proc:
    """The poller holding the Socket Mode connection, once exactly one does: by the
    pollers' logs (a take is logged when it starts, a release once its connection is
    closed) and the server's one open connection. Polled: logs have no change event."""
    async def holding() -> list[Proc]:
        return [p for p in pollers if p.count_in_logs(TAKEN) > p.count_in_logs(RELEASED)]

    (holder,) = await eventually(holding, lambda held: len(held) == 1 and socket.open == 1,
                                 timeout=60)
    return holder


async def test_clicks_reach_the_worker_owning_the_rule_and_a_mute_holds_in_every_worker(
    tmp_path: Path, kafka_bootstrap: str,  # noqa: F811
    slack_api: FakeSlackAPI, slack_socket: FakeSocketMode,  # noqa: F811
) -> None:
    prefix = unique_name("clicks") + "."
    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=prefix, partitions=PARTITIONS)
    await ensure_topics(settings)
    async with FeedServer() as feeds:
        first = seed_item("https://news.example/maroc-usa", "seed-1")
        feeds.serve("/a.xml", rss([first]))
        args = ("--config", str(write_config(tmp_path, feeds, slack_api, kafka_bootstrap,
                                             prefix)))
        workers = [Proc(tmp_path, f"worker{n}", "worker", *args) for n in (1, 2)]
        pollers = [Proc(tmp_path, f"poller{n}", "poll", *args) for n in (1, 2)]
        async with processes(*workers, *pollers):
            await wait_for_stable_group(kafka_bootstrap, prefix + topics.WORKER_APP,
                                        prefix + topics.MATCHES, members=2)
            await wait_for_stable_group(kafka_bootstrap, prefix + topics.POLLER_GROUP,
                                        prefix + topics.FEEDS, members=2)
            holder = await the_holder(pollers, slack_socket)
            await slack_api.wait_until(lambda: len(slack_api.messages) == 1, timeout=90)
            (alert,) = slack_api.messages
            assert all(label in shown(alert) for label in (
                "Useful", "Not relevant", "Mute story", "Mute rule 24 h"))
            await click(slack_socket, slack_api, alert, "useful", edits=1)
            assert "Marked useful by <@U0ALICE01>" in shown(alert)

            # The poller holding the connection stops: the other one takes it over.
            assert await holder.stop() == 0
            assert await the_holder(pollers, slack_socket) is not holder
            # A copy re-renders the alert (its source count): the answer stays.
            feeds.serve("/a.xml", rss([first, copy(2)]))
            await slack_api.wait_until(lambda: alert.edits == 2, timeout=60)
            assert "Reported by 2 sources" in shown(alert)
            assert "Marked useful by <@U0ALICE01>" in shown(alert)

            await click(slack_socket, slack_api, alert, "mute_story", edits=3)
            assert "Marked useful by <@U0ALICE01>" in shown(alert)
            assert "Muted by <@U0ALICE01> until " in shown(alert)
            silence = await listed_mute(args)
            other = await stop_the_owner(workers, kafka_bootstrap, prefix)
            feeds.serve("/a.xml", rss([first, copy(2), copy(3)]))
            await other.logged("verdict=silenced", timeout=90)
            await drained(kafka_bootstrap, prefix)
            assert await other.stop() == 0

    (muted,) = [d for d in decisions(other) if "verdict=silenced" in d["message"]]
    assert "outlet3.example" in muted["message"] and muted["rule_id"] == RULE
    assert f"silenced by {silence['id']}" in muted["message"]
    assert "muted from Slack" in muted["message"]
    # One feed's copies update the alert's source count, no thread reply: copy 3 none.
    assert len(slack_api.messages) == 1
    assert len(slack_api.calls_to("chat.update")) == 3  # two answers, one source count
    await recorded_and_done(settings, alert.ts, silence["id"])


async def listed_mute(args: Sequence[str]) -> dict[str, Any]:
    """The one silence `silence list --kafka` shows: the mute, with its clicker."""
    code, out, err = await newswatch("silence", "list", "--kafka", *args, "--json")
    assert code == 0, err
    (silence,) = json.loads(out)
    assert (silence["creator"], silence["reason"], silence["rule"], silence["active"]) \
        == ("slack:U0ALICE01 (alice)", "muted from Slack", RULE, True)
    assert silence["expires"] - silence["created"] == 7200  # the receiver's mute_story
    return dict(silence)


async def stop_the_owner(workers: Sequence[Proc], bootstrap: str, prefix: str) -> Proc:
    """Stop the worker that applied both clicks (it owns the rule); returns the other one,
    once it owns every partition."""
    (owner,) = [w for w in workers if w.count_in_logs("click mute_story by U0ALICE01")]
    assert owner.count_in_logs("click useful by U0ALICE01") == 1
    (other,) = [w for w in workers if w is not owner]
    assert await owner.stop() == 0
    await wait_for_stable_group(bootstrap, prefix + topics.WORKER_APP,
                                prefix + topics.MATCHES, members=1)
    return other


async def recorded_and_done(settings: KafkaSettings, ts: str, silence: str) -> None:
    """Both clicks on the alert ``ts`` are in the feedback table's changelog, the mute
    with its ``silence``, and their ledger entries are done."""
    feedback = await read_compacted(settings, topics.changelog(topics.FEEDBACK_TABLE),
                                    key=json.loads)
    records = [v for k, v in feedback.items() if k.startswith("click/")]
    assert sorted((r["action"], r["user_id"], r["rule_id"], r["ts"]) for r in records) == [
        ("mute_story", "U0ALICE01", RULE, ts), ("useful", "U0ALICE01", RULE, ts)]
    assert next(r for r in records if r["action"] == "mute_story")["silence"] == silence
    ledger = await read_compacted(settings, topics.LEDGER)
    assert not [k for k in ledger if k.startswith("click/")]
