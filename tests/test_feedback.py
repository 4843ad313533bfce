"""The click core (issue 18), pure: button values signed and verified, what each click does,
and the handler applying it over fakes passed in (no patches, no network, no clock)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from newswatch.core.feedback import FeedbackRecord, MappingFeedback
from newswatch.streams.feedback import (
    MUTE_REASON,
    AlertRef,
    Click,
    ClickRefused,
    MuteDurations,
    decide_click,
    signing_key,
)
from newswatch.streams.interactive import ClickHandler
from newswatch.streams.silences import SilenceStore, new_silence

KEY = signing_key("xoxb-test-token")
REF = AlertRef("us-maghreb-military", "0123456789abcdef0123", "a" * 24, "desk")
NOW = datetime(2020, 10, 2, 14, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0


def click(action: str = "useful", **changes: object) -> Click:
    base = Click(key="f" * 24, action="useful", alert=REF, user_id="U0ALICE01",
                 user_name="alice", channel="C0DESK001", ts="1601647200.000100",
                 title="Le Maroc et les États-Unis signent un accord",
                 evidence="Etats-Unis → US · Maroc → MA")
    return replace(base, action=action, **changes)  # type: ignore[arg-type]


class Records:
    """A FeedbackStore in memory."""

    def __init__(self) -> None:
        self.records: dict[str, FeedbackRecord] = {}

    def add(self, record: FeedbackRecord) -> bool:
        if record.key in self.records:
            return False
        self.records[record.key] = record
        return True

    def lines(self, channel: str, ts: str) -> list[str]:
        return [r.line for r in self.records.values() if (r.channel, r.ts) == (channel, ts)]


class Answers:
    """ClickAnswers that remember what they were asked to say."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.whispered: list[str] = []

    async def show(self, click: Click, line: str) -> None:
        self.shown.append(line)

    async def whisper(self, click: Click, text: str) -> None:
        self.whispered.append(text)


def test_a_button_value_names_its_alert_and_only_our_key_verifies_it() -> None:
    value = REF.sign(KEY)
    assert len(value) < 200 and AlertRef.verify(value, KEY) == REF
    data = json.loads(value)
    forged = [
        json.dumps({**data, "r": "another-rule"}),  # the tag no longer matches
        REF.sign(signing_key("xoxb-another-token")),  # signed by someone else
        json.dumps({**data, "x": 1}),  # not our fields
        json.dumps({**data, "v": 2}),
        json.dumps({**data, "s": "../../etc"}),  # malformed ids are refused before the tag
        json.dumps([data]), "not json", "x" * 3000, None, 42,
    ]
    for value in forged:
        with pytest.raises(ClickRefused):
            AlertRef.verify(value, KEY)


def test_a_click_is_checked_when_it_is_built_and_travels_as_json() -> None:
    assert Click.from_json(click().to_json()) == click()
    for bad in ({"user_id": "<!channel>"}, {"channel": "#general"}, {"ts": "now"},
                {"user_name": "eve\nINFO forged log line"}, {"key": "short"},
                {"action": "delete_everything"}):
        with pytest.raises(ClickRefused):
            click(**bad)
    with pytest.raises(ClickRefused):
        Click.from_json({"action": "useful"})


@pytest.mark.parametrize(("action", "line"), [
    ("useful", "Marked useful by <@U0ALICE01>"),
    ("not_relevant", "Marked not relevant by <@U0ALICE01>"),
])
def test_feedback_is_recorded_with_who_what_and_the_evidence(action: str, line: str) -> None:
    outcome = decide_click(click(action), rule_exists=True, now=NOW, mutes=MuteDurations())
    assert outcome.line == line and outcome.silence is None and outcome.ephemeral is None
    record = outcome.record
    assert record is not None
    assert (record.action, record.user_id, record.user_name, record.rule_id, record.story,
            record.article, record.at) == (action, "U0ALICE01", "alice", REF.rule_id,
                                           REF.story, REF.article, NOW)
    assert record.evidence == "Etats-Unis → US · Maroc → MA" and record.line == line


def test_mute_story_is_a_silence_by_the_clicker_and_a_double_click_mutes_once() -> None:
    mutes = MuteDurations(story=2 * HOUR, rule=24 * HOUR)
    first = decide_click(click("mute_story"), rule_exists=True, now=NOW, mutes=mutes)
    silence = first.silence
    assert silence is not None
    assert silence.matchers() == {"rule": REF.rule_id, "story": REF.story}
    assert (silence.reason, silence.creator, silence.expires) == (
        MUTE_REASON, "slack:U0ALICE01 (alice)", NOW + 2 * HOUR)
    assert first.line == "Muted by <@U0ALICE01> until 02 Oct 16:00 UTC (this story)"
    assert first.record is not None and first.record.silence == silence.id

    again = decide_click(click("mute_story", key="e" * 24, user_id="U0BOB0001"),
                         rule_exists=True, now=NOW + 60, mutes=mutes, silences=[silence])
    assert again.silence is None  # the active mute is reused, not doubled
    assert again.record is not None and again.record.silence == silence.id
    assert again.line == "Muted by <@U0BOB0001> until 02 Oct 16:00 UTC (this story)"

    later = decide_click(click("mute_story"), rule_exists=True, now=NOW + 3 * HOUR,
                         mutes=mutes, silences=[silence])
    assert later.silence is not None and later.silence.id != silence.id  # it had expired


def test_mute_rule_silences_the_rule_for_the_receivers_duration() -> None:
    outcome = decide_click(click("mute_rule"), rule_exists=True, now=NOW,
                           mutes=MuteDurations(rule=24 * HOUR))
    assert outcome.silence is not None
    assert outcome.silence.matchers() == {"rule": REF.rule_id}
    assert outcome.silence.expires == NOW + 24 * HOUR
    assert outcome.line == ("Muted by <@U0ALICE01> until 03 Oct 14:00 UTC "
                            "(rule us-maghreb-military)")
    story_mute = new_silence(reason=MUTE_REASON, now=NOW, duration=HOUR, rule=REF.rule_id,
                             story=REF.story)
    again = decide_click(click("mute_rule"), rule_exists=True, now=NOW, mutes=MuteDurations(),
                         silences=[story_mute])
    assert again.silence is not None  # a story mute is not a rule mute


def test_a_click_on_a_removed_rule_is_answered_to_the_clicker_and_changes_nothing() -> None:
    for action in ("useful", "mute_rule"):
        outcome = decide_click(click(action), rule_exists=False, now=NOW,
                               mutes=MuteDurations())
        assert (outcome.record, outcome.silence, outcome.line) == (None, None, None)
        assert outcome.ephemeral == ("The rule us-maghreb-military of this alert no longer "
                                     "exists, so nothing was recorded or muted.")


async def test_the_handler_stores_the_mute_and_the_record_and_applies_a_click_once() -> None:
    stored: dict[str, object] = {}
    silences, records, answers = SilenceStore(stored), Records(), Answers()
    handler = ClickHandler(rule_exists=lambda rule: rule == REF.rule_id,
                           mutes=lambda receiver: MuteDurations(story=HOUR),
                           silences=silences, feedback=records, answers=answers,
                           clock=lambda: NOW)
    outcome = await handler(click("mute_story"))
    (silence,) = silences.all()
    assert silence.creator == "slack:U0ALICE01 (alice)" and silence.expires == NOW + HOUR
    assert list(records.records) == ["f" * 24] and answers.shown == [outcome.line]

    repeat = await handler(click("mute_story"))  # Slack delivers the same click again
    assert repeat.record is None and len(silences.all()) == 1
    assert len(records.records) == 1 and len(answers.shown) == 1

    removed = click("useful", key="d" * 24, alert=replace(REF, rule_id="gone"))
    await handler(removed)
    assert len(records.records) == 1 and len(silences.all()) == 1
    assert answers.whispered == ["The rule gone of this alert no longer exists, so nothing "
                                 "was recorded or muted."]


async def test_a_handler_with_a_durable_step_keeps_no_record_of_a_mute_it_could_not_keep(
) -> None:
    """Kafka's handler publishes the mute before recording the click: a click recorded is a
    mute kept, and a click whose mute was not kept is applied again when handed over
    again (the ledger re-drives it)."""
    stored: dict[str, object] = {}
    silences, records = SilenceStore(stored), Records()
    seen: list[tuple[int, int]] = []
    broken = True

    async def durable() -> None:
        seen.append((len(silences.all()), len(records.records)))
        if broken:
            raise ConnectionError("the cluster is away")

    handler = ClickHandler(rule_exists=lambda rule: True, mutes=lambda r: MuteDurations(),
                           silences=silences, feedback=records, answers=Answers(),
                           clock=lambda: NOW, durable=durable)
    with pytest.raises(ConnectionError):
        await handler(click("mute_story"))
    assert seen == [(1, 0)] and records.records == {}  # the silence stored, no record
    stored.clear()  # what a flush that failed leaves: nothing (streams/kafka/silences.py)
    broken = False
    outcome = await handler(click("mute_story"))
    assert outcome.silence is not None and list(records.records) == ["f" * 24]
    await handler(click("useful", key="c" * 24))  # no new silence: nothing to make durable
    assert len(seen) == 2


def test_feedback_in_a_mapping_is_recorded_once_and_keeps_each_alerts_newest_five_lines(
) -> None:
    table: dict[str, object] = {}
    feedback = MappingFeedback()
    assert feedback.lines("C0DESK001", "1.2") == []  # not bound yet: no lines
    feedback.bind(table)
    base = decide_click(click(), rule_exists=True, now=NOW, mutes=MuteDurations()).record
    assert base is not None
    for n, line in enumerate(["a", "b", "a", "c", "d", "e", "f"]):
        assert feedback.add(replace(base, key=f"{n:024x}", line=line))
    assert not feedback.add(replace(base, key=f"{0:024x}", line="again"))  # the same click
    assert feedback.lines(base.channel or "", base.ts or "") == ["a", "c", "d", "e", "f"]
    assert feedback.lines("C0OTHER01", "1.2") == []
    records = sorted(feedback.records(), key=lambda r: r.key)
    assert len(records) == 7 and records[0] == replace(base, key=f"{0:024x}", line="a")
    assert json.loads(json.dumps(table)) == table  # what a faust table's changelog holds
