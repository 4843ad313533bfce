"""Alert buttons over Slack Socket Mode, on real parts (issue 18): the Socket Mode client of
streams/channels/slack_socket.py against a local WebSocket server speaking the protocol
(tests/fakes/slack_socket.py), the Web API fake, a real SQLite state, the real handler.

The end-to-end run through `newswatch run` is in tests/test_slack_e2e.py."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from newswatch.core.state import Database
from newswatch.streams.channels.slack import SlackNotifier
from newswatch.streams.channels.slack_actions import (
    ACTIONS_BLOCK,
    FEEDBACK_BLOCK,
    SlackButtons,
    with_feedback,
)
from newswatch.streams.channels.slack_socket import SlackAnswers, SlackSocket
from newswatch.streams.feedback import Click, ClickOutcome, MuteDurations, signing_key
from newswatch.streams.interactive import ClickHandler, HeldClickSource
from newswatch.streams.notices import ops_notice
from newswatch.streams.notifiers import Receipt
from newswatch.streams.silences import SilenceStore
from tests.fakes.fixtures import (  # noqa: F401
    SLACK_APP_TEST_TOKEN,
    SLACK_TEST_TOKEN,
    slack_api,
    slack_socket,
)
from tests.fakes.samples import sample_match
from tests.fakes.slack_api import FakeSlackAPI, StoredMessage
from tests.fakes.slack_socket import FakeSocketMode, block_actions, button_value

KEY = signing_key(SLACK_TEST_TOKEN)
RULE = "maghreb-military"


@dataclass
class Rig:
    """A socket, a handler over a real state file, and what the handler did."""

    db: Database
    notifier: SlackNotifier
    outcomes: asyncio.Queue[ClickOutcome]
    rules: set[str]

    def silences(self) -> SilenceStore:
        return SilenceStore(self.db.mapping("silences"))


@asynccontextmanager
async def rig(tmp_path: Path, api: FakeSlackAPI, socket: FakeSocketMode,
              sink: Callable[[Rig, Click], Awaitable[None]] | None = None
              ) -> AsyncIterator[Rig]:
    db = Database.open(tmp_path / "state.db")
    notifier = SlackNotifier("desk", "#desk", SLACK_TEST_TOKEN, base_url=api.base_url,
                             buttons=SlackButtons(KEY, "desk"),
                             feedback=lambda c, t: db.feedback().lines(c, t))
    state = Rig(db, notifier, asyncio.Queue(), {RULE})
    handler = ClickHandler(rule_exists=lambda rule: rule in state.rules,
                           mutes=lambda receiver: MuteDurations(), silences=state.silences(),
                           feedback=db.feedback(), answers=SlackAnswers({"desk": notifier}))

    async def handle(click: Click) -> None:
        if sink is not None:
            await sink(state, click)
        state.outcomes.put_nowait(await handler(click))

    stop = asyncio.Event()
    running = asyncio.create_task(
        SlackSocket(SLACK_APP_TEST_TOKEN, key=KEY, base_url=api.base_url).run(handle, stop))
    try:
        await socket.wait_connected()
        yield state
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=15)
        await notifier.aclose()
        db.close()


async def alert(rig: Rig, api: FakeSlackAPI) -> StoredMessage:
    """An interactive alert, posted to the fake workspace."""
    await rig.notifier.send(sample_match(rule_id=RULE))
    return api.messages[-1]


class Refusals(logging.Handler):
    """The socket's "refused a click" log lines, each setting ``seen``."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "refused a click" in record.getMessage():
            self.lines.append(record.getMessage())
            self.seen.set()


def test_an_interactive_alert_carries_four_signed_buttons_and_a_notice_none() -> None:
    buttons = SlackButtons(KEY, "desk", mute_rule=2 * 3600)
    block = buttons.block(sample_match(rule_id=RULE))
    assert block is not None and block["block_id"] == ACTIONS_BLOCK
    labels = [b["text"]["text"] for b in block["elements"]]
    assert labels == ["Useful", "Not relevant", "Mute story", "Mute rule 2 h"]
    values = {b["value"] for b in block["elements"]}
    assert len(values) == 1 and len(values.pop()) <= 2000
    assert buttons.block(ops_notice("feed-down", "Feed down", "x", receiver="ops")) is None
    assert KEY.hex() not in repr(buttons) and str(KEY) not in repr(buttons)


def test_the_answer_line_goes_above_the_buttons_and_keeps_the_newest_five() -> None:
    blocks: list[dict[str, object]] = [{"type": "section"}, {"block_id": ACTIONS_BLOCK}]
    for n in range(7):
        updated = with_feedback(blocks, f"line {n}")
        assert updated is not None
        blocks = updated
    assert [b.get("block_id") for b in blocks] == [None, FEEDBACK_BLOCK, ACTIONS_BLOCK]
    elements = blocks[1]["elements"]
    assert isinstance(elements, list)
    assert [e["text"] for e in elements] == [f"line {n}" for n in range(2, 7)]
    assert with_feedback("not blocks", "x") is None and with_feedback([], "x") is None


async def test_an_envelope_is_acknowledged_before_its_click_is_handled(
    tmp_path: Path, slack_api: FakeSlackAPI, slack_socket: FakeSocketMode,  # noqa: F811
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(rig: Rig, click: Click) -> None:
        entered.set()
        await release.wait()  # slow work: the acknowledgement must not wait for it

    async with rig(tmp_path, slack_api, slack_socket, slow) as r:
        message = await alert(r, slack_api)
        envelope = await slack_socket.send(block_actions(message, "useful"))
        await slack_socket.wait_ack(envelope)
        await asyncio.wait_for(entered.wait(), timeout=5)
        assert r.outcomes.empty()  # acknowledged while the click is still being handled
        release.set()
        outcome = await asyncio.wait_for(r.outcomes.get(), timeout=5)
        assert outcome.line == "Marked useful by <@U0ALICE01>"
        await slack_api.wait_until(lambda: bool(slack_api.calls_to("chat.update")))
        shown = json.dumps(message.payload["blocks"])
        assert "Marked useful by <@U0ALICE01>" in shown and ACTIONS_BLOCK in shown
        (record,) = r.db.feedback().records()
        assert (record.action, record.user_id, record.user_name, record.rule_id,
                record.channel, record.ts) == ("useful", "U0ALICE01", "alice", RULE,
                                               message.channel, message.ts)
        assert "Maroc → MA" in record.evidence and "accord militaire" in record.title


async def test_forged_and_malformed_clicks_are_refused_logged_and_change_nothing(
    tmp_path: Path, slack_api: FakeSlackAPI, slack_socket: FakeSocketMode,  # noqa: F811
) -> None:
    refusals = Refusals()
    logging.getLogger("newswatch.slack").addHandler(refusals)
    try:
        async with rig(tmp_path, slack_api, slack_socket) as r:
            message = await alert(r, slack_api)
            real = json.loads(button_value(message, "mute_rule"))
            forged = block_actions(message, "mute_rule",
                                   value=json.dumps({**real, "r": "another-rule"}))
            unknown = block_actions(message, "mute_rule")
            unknown["actions"][0]["action_id"] = "newswatch_delete_everything"
            impostor = block_actions(message, "mute_rule", user_id="<!channel>")
            for payload in (forged, block_actions(message, "mute_story", value="{not json"),
                            unknown, impostor, {"type": "block_actions", "actions": "x"}):
                refusals.seen.clear()
                await slack_socket.wait_ack(await slack_socket.send(payload))
                await asyncio.wait_for(refusals.seen.wait(), timeout=5)
            assert len(refusals.lines) == 5
            assert "not signed by this newswatch" in refusals.lines[0]
            assert r.outcomes.empty() and list(r.db.feedback().records()) == []
            assert r.silences().all() == []
            assert slack_api.calls_to("chat.update") == [] and slack_api.ephemerals == []
    finally:
        logging.getLogger("newswatch.slack").removeHandler(refusals)


async def test_a_click_on_a_removed_rule_gets_an_ephemeral_answer_and_changes_nothing(
    tmp_path: Path, slack_api: FakeSlackAPI, slack_socket: FakeSocketMode,  # noqa: F811
) -> None:
    async with rig(tmp_path, slack_api, slack_socket) as r:
        message = await alert(r, slack_api)
        r.rules.clear()  # the rule was removed by a reload since the alert went out
        await slack_socket.send(block_actions(message, "mute_story", user_id="U0BOB0001"))
        outcome = await asyncio.wait_for(r.outcomes.get(), timeout=5)
        assert outcome.record is None
        await slack_api.wait_until(lambda: bool(slack_api.ephemerals))
        (answer,) = slack_api.ephemerals
        assert (answer["user"], answer["channel"]) == ("U0BOB0001", message.channel)
        assert "rule maghreb-military of this alert no longer exists" in answer["text"]
        assert list(r.db.feedback().records()) == [] and r.silences().all() == []
        assert slack_api.calls_to("chat.update") == [] and message.edits == 0


async def test_clicks_still_arrive_after_slack_asks_to_reconnect_and_a_429_is_waited_out(
    tmp_path: Path, slack_api: FakeSlackAPI, slack_socket: FakeSocketMode,  # noqa: F811
) -> None:
    async with rig(tmp_path, slack_api, slack_socket) as r:
        message = await alert(r, slack_api)
        await slack_socket.disconnect()
        await slack_socket.wait_connected(2)
        assert len(slack_api.calls_to("apps.connections.open")) == 2
        slack_api.script("chat.update", status=429, headers={"Retry-After": "0"})
        envelope = await slack_socket.send(block_actions(message, "not_relevant"))
        await slack_socket.wait_ack(envelope)
        await asyncio.wait_for(r.outcomes.get(), timeout=5)
        await slack_api.wait_until(lambda: message.edits == 1)
        assert [c.status for c in slack_api.calls_to("chat.update")] == [429, 200]
        assert "Marked not relevant by <@U0ALICE01>" in json.dumps(message.payload["blocks"])

        # A later copy of the story re-renders the alert: the answer and the buttons stay.
        await r.notifier.update_sources(Receipt("desk", message.ts, message.channel),
                                        sample_match(rule_id=RULE), 3)
        shown = json.dumps(message.payload["blocks"])
        assert "Reported by 3 sources" in shown
        assert "Marked not relevant by <@U0ALICE01>" in shown and ACTIONS_BLOCK in shown


async def test_a_held_click_source_takes_clicks_only_while_held(
    slack_api: FakeSlackAPI, slack_socket: FakeSocketMode,  # noqa: F811
) -> None:
    """What a Kafka poller does as it gains and loses partition 0 of the feeds registry."""
    clicks: asyncio.Queue[Click] = asyncio.Queue()

    async def sink(click: Click) -> None:
        clicks.put_nowait(click)

    notifier = SlackNotifier("desk", "#desk", SLACK_TEST_TOKEN, base_url=slack_api.base_url,
                             buttons=SlackButtons(KEY, "desk"))
    held = HeldClickSource(SlackSocket(SLACK_APP_TEST_TOKEN, key=KEY,
                                       base_url=slack_api.base_url), sink)
    try:
        await notifier.send(sample_match(rule_id=RULE))
        message = slack_api.messages[-1]
        await held.hold(True)
        await slack_socket.wait_connected()
        await held.hold(True)  # held already: still one connection
        await slack_socket.send(block_actions(message, "useful"))
        assert (await asyncio.wait_for(clicks.get(), timeout=5)).action == "useful"
        assert held.held and slack_socket.connections == 1

        await held.hold(False)
        assert not held.held
        await slack_socket.wait_open(0)  # the socket is closed: Slack sends elsewhere

        await held.hold(True)
        await slack_socket.wait_connected(2)
        await slack_socket.send(block_actions(message, "mute_story"))
        assert (await asyncio.wait_for(clicks.get(), timeout=5)).action == "mute_story"
    finally:
        await held.release()
        await notifier.aclose()


async def test_every_button_a_redelivered_click_and_a_double_click_over_the_socket(
    tmp_path: Path, slack_api: FakeSlackAPI, slack_socket: FakeSocketMode,  # noqa: F811
) -> None:
    async with rig(tmp_path, slack_api, slack_socket) as r:
        message = await alert(r, slack_api)
        lines = []
        for n, action in enumerate(("useful", "not_relevant", "mute_rule", "mute_story")):
            envelope = await slack_socket.send(block_actions(
                message, action, user_id=f"U0USER00{n}", user_name=f"user{n}"))
            await slack_socket.wait_ack(envelope)
            outcome = await asyncio.wait_for(r.outcomes.get(), timeout=5)
            lines.append(outcome.line)
        assert [line.split(" by ")[0] if line else None for line in lines] == [
            "Marked useful", "Marked not relevant", "Muted", "Muted"]
        assert "(rule maghreb-military)" in str(lines[2]) and "(this story)" in str(lines[3])
        assert sorted(rec.action for rec in r.db.feedback().records()) == [
            "mute_rule", "mute_story", "not_relevant", "useful"]
        assert len(r.silences().all()) == 2

        # Slack delivers one click twice (a retried envelope): applied once.
        payload = block_actions(message, "mute_story", user_id="U0ALICE01")
        for _ in range(2):
            await slack_socket.wait_ack(await slack_socket.send(payload))
        first = await asyncio.wait_for(r.outcomes.get(), timeout=5)
        again = await asyncio.wait_for(r.outcomes.get(), timeout=5)
        assert first.record is not None and again == ClickOutcome()
        # The same analyst clicks "Mute story" twice: two clicks, one silence.
        second = block_actions(message, "mute_story", user_id="U0ALICE01",
                               action_ts=f"{time.time() + 1:.6f}")
        await slack_socket.wait_ack(await slack_socket.send(second))
        twice = await asyncio.wait_for(r.outcomes.get(), timeout=5)
        assert twice.record is not None and twice.silence is None
        assert len(r.silences().all()) == 2  # the story's mute is reused
        assert len(list(r.db.feedback().records())) == 6
        await slack_api.wait_until(lambda: message.edits == 6)


async def test_a_click_on_an_alert_sent_before_a_restart_is_applied(
    tmp_path: Path, slack_api: FakeSlackAPI, slack_socket: FakeSocketMode,  # noqa: F811
) -> None:
    async with rig(tmp_path, slack_api, slack_socket) as r:
        message = await alert(r, slack_api)
    # The process stopped (its socket closed); a new one starts on the same state file.
    async with rig(tmp_path, slack_api, slack_socket) as r:
        assert slack_socket.connections == 2
        envelope = await slack_socket.send(block_actions(message, "not_relevant"))
        await slack_socket.wait_ack(envelope)
        outcome = await asyncio.wait_for(r.outcomes.get(), timeout=5)
        assert outcome.line == "Marked not relevant by <@U0ALICE01>"
        (record,) = r.db.feedback().records()
        assert (record.action, record.ts) == ("not_relevant", message.ts)
        await slack_api.wait_until(lambda: message.edits == 1)
