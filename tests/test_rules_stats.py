"""Issue 18 acceptance for ``newswatch rules stats``, embedded runtime, as a user runs it:
`newswatch run --once` delivers real alerts (with their buttons) from a local feed server
to the fake Slack Web API; the analysts' clicks are Slack's own ``block_actions`` payloads
for those messages, read and applied by the real ``ClickHandler`` into the state file; then
the real CLI computes the stats. "Not relevant" on three alerts about football makes
"football" the first suggested exclude and lowers the precision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from newswatch.core.config import load_config
from newswatch.core.state import Database
from newswatch.streams.channels.slack_actions import parse_block_actions
from newswatch.streams.feedback import Click, MuteDurations, signing_key
from newswatch.streams.interactive import ClickHandler
from newswatch.streams.silences import SilenceStore
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import SLACK_TEST_TOKEN, slack_api  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI, StoredMessage
from tests.fakes.slack_socket import block_actions
from tests.test_slack_e2e import newswatch

RULES = """
rules:
  - id: maghreb-military
    title: Military agreements in the Maghreb
    phrases: ["accord militaire"]
    notify: [desk]
  - id: naval-exercise
    title: Naval exercises
    phrases: ["exercice naval"]
    notify: [desk]
  - id: submarines
    title: Nuclear submarines
    phrases: ["sous-marin nucléaire"]
    notify: [desk]
"""

PUB = "Fri, 02 Oct 2020 10:00:00 GMT"
FOOTBALL = [  # the alerts the analysts find not relevant: they share "football"
    ("Stade de Rabat : un accord militaire pour le club",
     "Le club de football local a conclu un accord militaire de sponsoring avec la garnison."),
    ("Les casernes financent leurs équipes",
     "Un accord militaire paie les maillots des équipes de football des casernes."),
    ("Coupe régionale : une finale dans une base",
     "La finale de football se jouera dans une base grâce à un accord militaire inédit."),
]
WIRE_USEFUL = ("Washington et Rabat signent un accord militaire",
               "Les deux pays concluent un accord militaire sur la défense aérienne et un "
               "exercice naval au large de Tanger.")
OTHER_USEFUL = ("Alger dénonce l'accord militaire",
                "Le ministère algérien critique l'accord militaire entre Rabat et Washington.")


MAGHREB = "Military agreements in the Maghreb"


def item(n: int, title: str, text: str) -> dict[str, str]:
    return {"title": title, "link": f"https://news.example/{n}", "guid": f"g-{n}",
            "description": text, "pubDate": PUB}


def write_config(tmp: Path, feeds: FeedServer, slack: FakeSlackAPI) -> Path:
    (tmp / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        "state: ./state.db\nrules: [rules.yaml]\nfeeds:\n"
        f"  - name: wire\n    url: {feeds.url('/wire.xml')}\n    language: fr\n"
        f"  - name: other\n    url: {feeds.url('/other.xml')}\n    language: fr\n"
        "receivers:\n  desk:\n    slack:\n      channel: '#maghreb'\n"
        f"      base_url: {slack.base_url}\n      interactive: true\n"
        f"fetch:\n  allow: ['{feeds.allow}']\n", encoding="utf-8")
    return config


class Answers:
    """Where the handler answers the clicker: this test reads the stats, not Slack."""

    async def show(self, click: Click, line: str) -> None:
        return None

    async def whisper(self, click: Click, text: str) -> None:
        return None


async def click_all(config: Path, messages: list[StoredMessage], action: str) -> None:
    """Click ``action`` on each message, as Slack sends it, through the real handler and the
    state file `newswatch run` would record it in."""
    loaded = load_config(config)
    db = Database.open(loaded.state)
    try:
        handler = ClickHandler(rule_exists=lambda rule: True, mutes=lambda r: MuteDurations(),
                               silences=SilenceStore.of(loaded, db), feedback=db.feedback(),
                               answers=Answers())
        for n, message in enumerate(messages):
            payload = block_actions(message, action, action_ts=f"1700000000.{n:06d}")
            for click in parse_block_actions(payload, signing_key(SLACK_TEST_TOKEN)):
                await handler(click)
    finally:
        db.close()


def alert_of(slack: FakeSlackAPI, title: str, rule_title: str) -> StoredMessage:
    (found,) = [m for m in slack.messages if m.thread_ts is None
                and title in json.dumps(m.payload, ensure_ascii=False)
                and rule_title in json.dumps(m.payload, ensure_ascii=False)]
    return found


async def stats(config: Path) -> dict[str, Any]:
    code, out, err = await newswatch("rules", "stats", "--config", str(config), "--json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def by_rule(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in report["rules"]}


async def alerts_sent(tmp_path: Path, slack: FakeSlackAPI) -> Path:
    """`run --once` over the articles above, every alert sent with its buttons; the
    config."""
    async with FeedServer() as feeds:
        feeds.serve("/wire.xml", rss([item(n, *t) for n, t in
                                      enumerate([*FOOTBALL, WIRE_USEFUL])]))
        feeds.serve("/other.xml", rss([item(9, *OTHER_USEFUL)]))
        config = write_config(tmp_path, feeds, slack)
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
    return config


async def rate(config: Path, slack: FakeSlackAPI, *, not_relevant: bool) -> None:
    """Useful on the two alerts without football; with ``not_relevant``, Not relevant on
    the three football ones."""
    await click_all(config, [alert_of(slack, t, MAGHREB)
                             for t, _ in (WIRE_USEFUL, OTHER_USEFUL)], "useful")
    if not_relevant:
        await click_all(config, [alert_of(slack, t, MAGHREB) for t, _ in FOOTBALL],
                        "not_relevant")


async def alerts_rated(tmp_path: Path, slack: FakeSlackAPI) -> Path:
    """The alerts sent, two rated useful and the three about football not relevant."""
    config = await alerts_sent(tmp_path, slack)
    await rate(config, slack, not_relevant=True)
    return config


async def test_not_relevant_clicks_show_in_rules_stats_as_precision_and_an_exclude(
    tmp_path: Path, slack_api: FakeSlackAPI,  # noqa: F811
) -> None:
    config = await alerts_sent(tmp_path, slack_api)
    await rate(config, slack_api, not_relevant=False)
    before = by_rule(await stats(config))["maghreb-military"]
    assert before["feedback"] == {"useful": 2, "not_relevant": 0, "muted": 0}
    assert before["precision"] == 1.0 and before["suggested_excludes"] == []

    await click_all(config, [alert_of(slack_api, t, MAGHREB) for t, _ in FOOTBALL],
                    "not_relevant")
    report = await stats(config)
    rules = by_rule(report)
    after = rules["maghreb-military"]
    assert (after["matches"], after["alerts"], after["replies"], after["silenced"]) \
        == (5, 5, 0, 0)
    assert after["feedback"] == {"useful": 2, "not_relevant": 3, "muted": 0}
    assert after["precision"] == 0.4
    top = after["suggested_excludes"][0]
    assert (top["term"], top["not_relevant"], top["useful"]) == ("football", 3, 0)
    # the rule's own words are never suggested: excluding them would silence it
    assert not {"accord", "militaire"} & {c["term"] for c in after["suggested_excludes"]}
    assert after["by_feed"] == {"other": 1, "wire": 4}

    assert report["never_matched"] == ["submarines"]
    assert report["one_feed"] == [{"rule": "naval-exercise", "feed": "wire"}]
    assert rules["naval-exercise"]["precision"] is None  # nothing rated

    later = await newswatch("rules", "stats", "--config", str(config), "--json",
                            "--since", "2999-01-01")
    assert later[0] == 0, later[2]
    empty = by_rule(json.loads(later[1]))["maghreb-military"]  # nothing in that span
    assert (empty["matches"], empty["precision"], empty["suggested_excludes"]) == (0, None, [])

    code, out, err = await newswatch("rules", "stats", "--config", str(config))
    assert code == 0, err
    assert "precision 40%" in out and "football (3 not relevant, 0 useful)" in out
    assert "never matched: submarines" in out and "one feed only: naval-exercise (wire)" in out
