"""The Kafka worker's tick timer, without a broker (streams/kafka/ticks.py): which rules it
ticks and when, read from the rule state a real ``Pipeline`` wrote, and what the tick does
in the worker that owns the rule (``Pipeline.tick_rule``). The same on the real broker,
with two workers and a kill: tests/test_kafka_digest.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from newswatch.core.state import Decision
from newswatch.streams.alerts import Match
from newswatch.streams.kafka.ticks import TICK_AGAIN, TickPlanner, tick_need
from newswatch.streams.pacing import Pacer
from newswatch.streams.pipeline import Pipeline
from newswatch.streams.rulestate import RuleState
from tests.fakes.clock import ManualTime
from tests.fakes.notifiers import RecordingNotifier
from tests.fakes.samples import sample_match
from tests.fakes.stories import distinct_title

RULE = "maghreb-military"
INTERVAL = 60.0


class Audit:
    def log_decision(self, d: Decision) -> None:
        pass


def story(n: int) -> Match:
    m = sample_match(title=distinct_title(n, "Maroc accord militaire"),
                     url=f"https://news.example/{n}", summary="")
    return replace(m, receivers=("desk",), max_per_hour=1, digest_interval=INTERVAL)


def worker_pipeline(state: dict[str, Any], time: ManualTime,
                    desk: RecordingNotifier) -> Pipeline:
    """As the Kafka worker builds it: sends inline, in the caller's event."""
    return Pipeline(notifiers={"desk": desk}, state=state, dlq={}, audit=Audit(), clock=time,
                    sleep=time.sleep, pacer=Pacer(clock=time, sleep=time.sleep), inline=True,
                    encoded_state=True)


def rows(pipeline: Pipeline, state: dict[str, Any]) -> list[tuple[str, RuleState | None]]:
    """What the worker's timer reads: each rule of the table with its delivery state."""
    return [(rule_id, pipeline.rule_state(rule_id)) for rule_id in state]


async def test_a_due_digest_is_ticked_at_once_then_every_tick_again_until_sent() -> None:
    time = ManualTime()
    desk = RecordingNotifier("desk", time, min_interval=0)
    state: dict[str, Any] = {}
    pipeline = worker_pipeline(state, time, desk)
    opened = time.now
    for n in range(3):  # one alert, then two throttled into a digest
        await pipeline.deliver(story(n))
    assert desk.titles("alert") == [story(0).article.title]
    planner = TickPlanner()
    time.now = opened + INTERVAL - 0.5
    assert tick_need(pipeline.rule_state(RULE), time.now) is None
    assert planner.due(rows(pipeline, state), time.now) == []
    time.now = opened + INTERVAL
    assert tick_need(pipeline.rule_state(RULE), time.now) == "digest"
    assert planner.due(rows(pipeline, state), time.now) == [RULE]
    # its tick is on its way
    assert planner.due(rows(pipeline, state), time.now + TICK_AGAIN - 1) == []
    assert planner.due(rows(pipeline, state), time.now + TICK_AGAIN) == [RULE]  # it was lost
    assert await pipeline.tick_rule(RULE) == 1  # in the owner: sealed and sent
    assert [s.title for s in desk.sent if s.kind == "digest"] == ["2 match(es)"]
    assert tick_need(pipeline.rule_state(RULE), time.now) is None
    assert planner.due(rows(pipeline, state), time.now + 2 * TICK_AGAIN) == []
    assert await pipeline.tick_rule(RULE) == 0  # a second tick (a standby's) does nothing
    assert len(desk.sent) == 2


async def test_an_outbox_a_stopped_worker_left_is_ticked_after_tick_again_and_sent() -> None:
    time = ManualTime()
    desk = RecordingNotifier("desk", time, min_interval=0)
    state: dict[str, Any] = {}
    # A worker that decided (the outbox holds the alert) and stopped before sending:
    stopped = Pipeline(notifiers={"desk": desk}, state=state, dlq={}, audit=Audit(),
                       clock=time, encoded_state=True)
    await stopped.deliver(story(0))
    await stopped.aclose(0)
    assert desk.sent == [] and tick_need(stopped.rule_state(RULE), time.now) == "outbox"
    planner = TickPlanner()
    seen = time.now
    # not at once: an item the deliver agent is sending right now is settled in its event
    assert planner.due(rows(stopped, state), seen) == []
    assert planner.due(rows(stopped, state), seen + TICK_AGAIN - 0.1) == []
    assert planner.due(rows(stopped, state), seen + TICK_AGAIN) == [RULE]
    owner = worker_pipeline(state, time, desk)  # the partition's next owner
    assert await owner.tick_rule(RULE) == 1
    assert desk.titles("alert") == [story(0).article.title]
    assert tick_need(owner.rule_state(RULE), time.now) is None


def test_rules_with_nothing_due_are_never_ticked() -> None:
    planner = TickPlanner()
    empty: list[tuple[str, RuleState | None]] = [("a", None), ("b", RuleState())]
    assert planner.due(empty, 0.0) == [] and planner.due(empty, 1e9) == []
