"""The delivery pipeline: outbox, lanes (order, pacing, rate limits), retries, dead letters
and replay, crash points, digests — against in-memory notifiers on virtual time and against
the fake Slack Web API and the aiosmtpd sink (docs/reliability.md groups A, B, H)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from typing import Any

from newswatch.core.errors import DeliveryError
from newswatch.core.state import Decision
from newswatch.streams.alerts import Match
from newswatch.streams.channels.email import EmailNotifier
from newswatch.streams.channels.slack import SlackNotifier
from newswatch.streams.notifiers import Notifier, Receipt
from newswatch.streams.pacing import Pacer
from newswatch.streams.pipeline import Pipeline, RetryPolicy
from newswatch.streams.rulestate import RuleState
from tests.fakes.clock import ManualTime, VirtualTime
from tests.fakes.fixtures import SLACK_TEST_TOKEN, slack_api, smtp_sink  # noqa: F401
from tests.fakes.notifiers import RecordingNotifier
from tests.fakes.samples import sample_match
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.smtp_sink import SMTPSink
from tests.fakes.stories import distinct_title


def story(n: int, **kw: Any) -> Match:
    """The n-th of many distinct stories (no two are the same story)."""
    return sample_match(title=distinct_title(n, "Maroc accord militaire"),
                        url=f"https://news.example/{n}", summary="", **kw)


def with_receivers(m: Match, *receivers: str, **kw: Any) -> Match:
    return Match.from_json({**m.to_json(), "receivers": list(receivers), **kw})


class Audit:
    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def log_decision(self, d: Decision) -> None:
        self.decisions.append(d)

    def results(self) -> Counter[tuple[str, str, str]]:
        return Counter((d.receiver, d.verdict, d.result) for d in self.decisions)


def make(
    notifiers: dict[str, Notifier], time: ManualTime | VirtualTime, *,
    state: dict[str, Any] | None = None, dlq: dict[str, Any] | None = None,
    retry: RetryPolicy | None = None, audit: Audit | None = None,
) -> tuple[Pipeline, dict[str, Any], dict[str, Any], Audit]:
    state = {} if state is None else state
    dlq = {} if dlq is None else dlq
    audit = audit or Audit()
    pipeline = Pipeline(notifiers=notifiers, state=state, dlq=dlq, audit=audit, clock=time,
                        sleep=time.sleep, pacer=Pacer(clock=time, sleep=time.sleep),
                        retry=retry or RetryPolicy(first=1.0))
    return pipeline, state, dlq, audit


# --------------------------------------------------------------------------- lanes


async def test_lanes_keep_order_pace_one_per_second_and_a_429_pauses_only_its_lane() -> None:
    time = VirtualTime()
    a = RecordingNotifier("a", time)
    b = RecordingNotifier("b", time)
    a.script.append(DeliveryError("rate_limited", "429", retryable=True, retry_after=30))
    pipeline, _, _, _ = make({"a": a, "b": b}, time)
    start = time.now
    for n in range(5):
        await pipeline.deliver(with_receivers(story(n), "a", "b"))
    await time.run(pipeline.drain())

    expected = [story(n).article.title for n in range(5)]
    assert a.titles() == expected and b.titles() == expected  # decision order per lane
    a_times = [s.at - start for s in a.sent]
    b_times = [s.at - start for s in b.sent]
    assert b_times == [0.0, 1.0, 2.0, 3.0, 4.0]  # lane b never waited for lane a
    assert a_times[0] >= 30.0  # waited the Retry-After (plus jitter)
    assert all(y - x >= 1.0 for x, y in itertools.pairwise(a_times))
    assert len(a.calls) == 6  # the 429, then five posts


async def test_two_receivers_on_one_channel_share_its_pace() -> None:
    time = VirtualTime()
    one = RecordingNotifier("one", time, lane="slack:#desk")
    two = RecordingNotifier("two", time, lane="slack:#desk")
    pipeline, *_ = make({"one": one, "two": two}, time)
    for n in range(3):
        await pipeline.deliver(with_receivers(story(n), "one", "two"))
    await time.run(pipeline.drain())
    times = sorted(s.at for s in one.sent + two.sent)
    assert len(times) == 6 and all(y - x >= 1.0 for x, y in itertools.pairwise(times))


async def test_outbox_left_by_a_stopped_process_is_resumed_in_order() -> None:
    time = VirtualTime()
    first = RecordingNotifier("a", time)
    pipeline, state, dlq, _ = make({"a": first}, time)
    for n in range(6):
        await pipeline.deliver(with_receivers(story(n), "a"))
    await pipeline.aclose()  # stopped before any lane ran: six items in the outbox
    assert first.sent == [] and len(state["maghreb-military"]["outbox"]) == 6

    again = RecordingNotifier("a", time)
    restarted, *_ = make({"a": again}, time, state=state, dlq=dlq)
    assert await restarted.resume() == 6
    await time.run(restarted.drain())
    assert again.titles() == [story(n).article.title for n in range(6)]
    assert state["maghreb-military"]["outbox"] == {}


# --------------------------------------------------------------------------- Slack faults


def slack(fake: FakeSlackAPI, name: str = "desk", channel: str = "#desk",
          reconcile: bool = True) -> SlackNotifier:
    return SlackNotifier(name, channel, SLACK_TEST_TOKEN, base_url=fake.base_url,
                         reconcile=reconcile)


async def test_retry_after_is_waited_as_given(slack_api: FakeSlackAPI) -> None:  # noqa: F811
    for wait in ("1", "5", "30"):
        slack_api.script("chat.postMessage", status=429, headers={"Retry-After": wait})
    time = ManualTime()
    notifier = slack(slack_api)
    pipeline, _, _, audit = make({"desk": notifier}, time)
    await pipeline.deliver(with_receivers(story(0), "desk"))
    await pipeline.drain()
    await notifier.aclose()
    assert len(slack_api.messages) == 1
    waits = [w for w in time.sleeps if w > 0]
    assert [round(w) for w in waits] >= [1, 5, 30]
    assert all(w >= ra for w, ra in zip(waits, (1, 5, 30), strict=True))
    assert waits[0] <= 1.2 and waits[2] <= 36  # Retry-After plus at most 20 % jitter
    assert audit.results()[("desk", "send", "sent")] == 1


async def test_every_5xx_is_retried_and_the_alert_arrives_once(
    slack_api: FakeSlackAPI,  # noqa: F811
) -> None:
    for status in (500, 502, 503, 504):
        slack_api.script("chat.postMessage", status=status)
    time = ManualTime()
    notifier = slack(slack_api, channel="C0DESK01", reconcile=False)
    pipeline, *_ = make({"desk": notifier}, time)
    await pipeline.deliver(with_receivers(story(0), "desk"))
    await pipeline.drain()
    await notifier.aclose()
    assert [c.status for c in slack_api.calls_to("chat.postMessage")] == [500, 502, 503, 504,
                                                                          200]
    assert len(slack_api.messages) == 1
    # Backoff 1, 2, 4, 8 s (±20 %); the pacer's 1 s spacing overlaps the first wait.
    assert 0.8 * 15 <= sum(time.sleeps) <= 1.2 * 15 + 1


async def test_an_ambiguous_500_is_looked_up_instead_of_posted_twice(
    slack_api: FakeSlackAPI,  # noqa: F811
) -> None:
    """H4: the fake stores the message, then answers 500. With reconciliation the retry
    finds it by its metadata id (0 duplicates); without, it is posted again (1 of 1)."""
    figures = {}
    for reconcile in (True, False):
        channel = "#on" if reconcile else "#off"
        notifier = slack(slack_api, channel=channel, reconcile=reconcile)
        time = ManualTime()
        pipeline, _, _, audit = make({"desk": notifier}, time)
        await pipeline.deliver(with_receivers(story(0), "desk"))  # teaches the channel id
        await pipeline.drain()
        slack_api.ambiguous("chat.postMessage")
        await pipeline.deliver(with_receivers(story(1), "desk"))
        await pipeline.drain()
        await notifier.aclose()
        held = [m for m in slack_api.messages if m.channel == FakeSlackAPI._channel_id(channel)]
        figures[reconcile] = len(held) - 2
        assert audit.results()[("desk", "send", "sent:reconciled")] == (1 if reconcile else 0)
    print(f"\nH4 ambiguous 500: duplicated {figures[True]} of 1 with reconciliation, "
          f"{figures[False]} of 1 without")
    assert figures == {True: 0, False: 1}


async def test_a_permanent_error_dead_letters_at_once_and_email_still_gets_it(
    slack_api: FakeSlackAPI, smtp_sink: SMTPSink,  # noqa: F811
) -> None:
    slack_api.script("chat.postMessage", ok=False, error="channel_not_found")
    notifier = slack(slack_api)
    mail = EmailNotifier("mail", "nw@example.org", ["desk@example.org"], smtp_sink.host,
                         smtp_sink.port, starttls=False, tls=False, username=None,
                         password=None)
    time = ManualTime()
    pipeline, state, dlq, audit = make({"desk": notifier, "mail": mail}, time)
    await pipeline.deliver(with_receivers(story(0), "desk", "mail"))
    await pipeline.drain()
    await notifier.aclose()
    assert len(slack_api.calls_to("chat.postMessage")) == 1  # no retry
    assert len(smtp_sink.messages) == 1
    (entry,) = dlq.values()
    assert (entry["receiver"], entry["reason"], entry["kind"]) == ("desk", "channel_not_found",
                                                                   "alert")
    assert audit.results()[("desk", "send", "dead:channel_not_found")] == 1
    parents = state["maghreb-military"]["stories"][0]["parents"]
    assert parents["desk"]["state"] == "dead" and parents["mail"]["state"] == "sent"


async def test_a_delivery_failing_longer_than_max_age_is_dead_lettered() -> None:
    time = ManualTime()
    flaky = RecordingNotifier("a", time)
    flaky.script.extend(DeliveryError("connection", "reset", retryable=True)
                        for _ in range(100))
    pipeline, _, dlq, _ = make({"a": flaky}, time, retry=RetryPolicy(max_age=600.0))
    await pipeline.deliver(with_receivers(story(0), "a"))
    await pipeline.drain()
    (entry,) = dlq.values()
    assert entry["reason"] == "connection" and entry["message"].startswith("gave up after")
    assert 10 < len(flaky.calls) < 20  # backoff 1, 2, 4 … 60 s cap over 600 s: no tight loop


# --------------------------------------------------------------------------- DLQ replay


async def test_replaying_100_dead_letters_twice_delivers_each_exactly_once() -> None:
    """H12: replay goes through the dedup outbox: replayed twice → delivered once."""
    time = VirtualTime()
    desk = RecordingNotifier("a", time, min_interval=0.0)
    desk.script.extend(DeliveryError("invalid_blocks", "bad", retryable=False)
                       for _ in range(100))
    pipeline, state, dlq, _ = make({"a": desk}, time)
    for n in range(100):
        await pipeline.deliver(with_receivers(story(n), "a", max_per_hour=1000))
    await time.run(pipeline.drain())
    assert len(dlq) == 100 and desk.sent == []

    first = await pipeline.replay()
    second = await pipeline.replay()  # while the first replay is still queued
    await time.run(pipeline.drain())
    third = await pipeline.replay()  # after it was delivered
    await time.run(pipeline.drain())
    assert Counter(o.outcome for o in first) == {"queued": 100}
    assert Counter(o.outcome for o in second) == {"already queued": 100}
    assert third == []
    delivered = Counter(desk.titles())
    print(f"\nH12 replay twice: {len(delivered)} of 100 delivered, duplicated "
          f"{sum(c - 1 for c in delivered.values())}")
    assert len(delivered) == 100 and set(delivered.values()) == {1}
    assert dlq == {}
    # A dead letter whose alert meanwhile reached the receiver is not sent again.
    (key,) = [k for k, v in state.items() if v.get("stories")]
    assert all(p["state"] == "sent" for s in state[key]["stories"]
               for p in s["parents"].values())


async def test_refused_recipients_alone_are_dead_lettered_and_replayed(
    smtp_sink: SMTPSink,  # noqa: F811
) -> None:
    """H9: a partial refusal delivers to the others; only the refused address goes to the
    DLQ, and a replay sends to that address only."""
    smtp_sink.script("RCPT", "550 5.1.1 No such user", address="gone@example.org")
    mail = EmailNotifier("mail", "nw@example.org", ["desk@example.org", "gone@example.org"],
                         smtp_sink.host, smtp_sink.port, starttls=False, tls=False,
                         username=None, password=None)
    time = ManualTime()
    pipeline, _, dlq, audit = make({"mail": mail}, time)
    await pipeline.deliver(with_receivers(story(0), "mail"))
    await pipeline.drain()
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("desk@example.org",)]
    (entry,) = dlq.values()
    assert entry["recipients"] == ["gone@example.org"] and entry["reason"] == "smtp_5xx"
    assert audit.results()[("mail", "send", "dead:refused gone@example.org")] == 1

    outcomes = await pipeline.replay([entry["id"]])
    await pipeline.drain()
    assert [o.outcome for o in outcomes] == ["queued"]
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("desk@example.org",),
                                                        ("gone@example.org",)]
    assert dlq == {}


async def test_smtp_4xx_is_retried(smtp_sink: SMTPSink) -> None:  # noqa: F811
    smtp_sink.script("DATA", "451 4.3.0 Try again later")
    smtp_sink.script("MAIL", "421 4.7.0 Closing")
    mail = EmailNotifier("mail", "nw@example.org", ["desk@example.org"], smtp_sink.host,
                         smtp_sink.port, starttls=False, tls=False, username=None,
                         password=None)
    time = ManualTime()
    pipeline, _, dlq, _ = make({"mail": mail}, time)
    await pipeline.deliver(with_receivers(story(0), "mail"))
    await pipeline.drain()
    assert len(smtp_sink.messages) == 1 and dlq == {}


# --------------------------------------------------------------------------- crash points


class Crashing(RecordingNotifier):
    """Freezes at the crash point (the process is about to be killed): ``crashed`` is set
    and the call never returns; ``aclose(grace=0)`` then kills the lane mid-call, so
    nothing after that point runs, as with ``kill -9``."""

    after_send = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.crashed = asyncio.Event()

    async def send(self, match: Match, ident: str | None = None) -> Receipt:
        if self.after_send:
            await super().send(match, ident)
        self.crashed.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class CrashBeforeSend(Crashing):
    after_send = False


async def crash_runs(kind: type[Crashing], *, searchable: bool,
                     runs: int = 50) -> tuple[int, int]:
    """Deliver ``runs`` alerts, each in a "process" killed at the crash point; the next
    "process" resumes on the same state. Returns (lost, duplicated) at the receiver."""
    time = VirtualTime()
    state: dict[str, Any] = {}
    dlq: dict[str, Any] = {}
    receiver: list[Any] = []  # what the workspace holds, across processes
    for n in range(runs):
        crashing = kind("a", time, searchable=searchable)
        crashing.sent = receiver
        pipeline, *_ = make({"a": crashing}, time, state=state, dlq=dlq)
        await pipeline.resume()
        await pipeline.deliver(with_receivers(story(n), "a", max_per_hour=1000))
        await time.run(crashing.crashed.wait())
        await pipeline.aclose(grace=0)  # kill -9
    healthy = RecordingNotifier("a", time, searchable=searchable)
    healthy.sent = receiver
    final, *_ = make({"a": healthy}, time, state=state, dlq=dlq)
    await final.resume()
    await time.run(final.drain())
    counts = Counter(s.title for s in receiver)
    lost = sum(1 for n in range(runs) if counts[story(n).article.title] == 0)
    return lost, sum(c - 1 for c in counts.values())


async def test_crash_after_send_before_mark_repeats_at_most_once_and_never_with_lookup(
) -> None:
    """A3 ×50: with reconciliation 0 duplicates; without, one per crash."""
    with_lookup = await crash_runs(Crashing, searchable=True)
    without = await crash_runs(Crashing, searchable=False)
    print(f"\nA3 crash after send, before mark ×50: lost {with_lookup[0]}, duplicated "
          f"{with_lookup[1]} of 50 with reconciliation; lost {without[0]}, duplicated "
          f"{without[1]} of 50 without")
    assert with_lookup == (0, 0)
    assert without == (0, 50)


async def test_crash_after_pending_before_send_loses_nothing() -> None:
    """A4 ×50: the pending record is sent by the next process."""
    lost, duplicated = await crash_runs(CrashBeforeSend, searchable=True)
    print(f"\nA4 crash after pending, before send ×50: lost {lost} of 50, "
          f"duplicated {duplicated}")
    assert (lost, duplicated) == (0, 0)


# --------------------------------------------------------------------------- digests


async def test_beyond_max_per_hour_a_digest_follows_after_the_interval() -> None:
    time = VirtualTime()
    desk = RecordingNotifier("a", time)
    pipeline, _, _, audit = make({"a": desk}, time)
    for n in range(5):
        await pipeline.deliver(with_receivers(story(n), "a", max_per_hour=2,
                                              digest_interval=900.0))
    await time.run(pipeline.drain())
    assert len(desk.titles()) == 2
    assert await pipeline.flush_digests() == 0  # not due yet
    time.now += 900
    assert await pipeline.flush_digests() == 1
    await time.run(pipeline.drain())
    assert desk.titles("digest") == ["3 match(es)"]
    assert audit.results()[("a", "throttled", "digest")] == 3
    assert audit.results()[("a", "throttled", "sent:digest")] == 3


async def test_slack_threads_copies_and_counts_sources_while_email_gets_a_digest(
    slack_api: FakeSlackAPI, smtp_sink: SMTPSink,  # noqa: F811
) -> None:
    desk = slack(slack_api)
    mail = EmailNotifier("mail", "nw@example.org", ["desk@example.org"], smtp_sink.host,
                         smtp_sink.port, starttls=False, tls=False, username=None,
                         password=None)
    time = ManualTime()
    pipeline, _, _, audit = make({"desk": desk, "mail": mail}, time)
    first = with_receivers(sample_match(), "desk", "mail")
    await pipeline.deliver(first)
    for n, feed in enumerate(("Agence B", "Agence C"), 2):
        copy = sample_match(feed=feed, url=f"https://copy{n}.example/a")
        await pipeline.deliver(with_receivers(copy, "desk", "mail"))
    await pipeline.drain()
    top = [m for m in slack_api.messages if m.thread_ts is None]
    replies = [m for m in slack_api.messages if m.thread_ts is not None]
    assert len(top) == 1 and len(replies) == 2
    assert {r.thread_ts for r in replies} == {top[0].ts}
    assert "Reported by 3 sources" in str(top[0].payload["blocks"])
    assert len(smtp_sink.messages) == 1
    assert audit.results()[("mail", "same_story", "digest")] == 2

    time.now += 3600
    assert await pipeline.flush_digests() == 1
    await pipeline.drain()
    await desk.aclose()
    assert len(smtp_sink.messages) == 2
    digest = smtp_sink.messages[1].message
    assert "digest of 2 matches" in str(digest["Subject"])
    body = digest.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Agence B" in text and "Agence C" in text and "also reported" in text


async def test_inline_mode_settles_before_deliver_returns_for_the_kafka_runtime() -> None:
    time = ManualTime()
    desk = RecordingNotifier("a", time)
    desk.script.append(DeliveryError("http_5xx", "503", retryable=True))
    state: dict[str, Any] = {}
    pipeline = Pipeline(notifiers={"a": desk}, state=state, dlq={}, audit=Audit(), clock=time,
                        sleep=time.sleep, pacer=Pacer(clock=time, sleep=time.sleep),
                        inline=True)
    await pipeline.deliver(with_receivers(story(0), "a"))
    assert desk.titles() == [story(0).article.title]  # retried and sent, in the call
    assert not RuleState.from_json(state["maghreb-military"]).outbox
    # What another worker left in the outbox is sent by resume_rule, in the caller's task.
    other = RecordingNotifier("a", time)
    stopped = Pipeline(notifiers={"a": other}, state=state, dlq={}, audit=Audit(), clock=time)
    await stopped.deliver(with_receivers(story(1), "a"))
    await stopped.aclose()
    assert RuleState.from_json(state["maghreb-military"]).outbox
    assert await pipeline.resume_rule("maghreb-military") == 1
    assert desk.titles() == [story(0).article.title, story(1).article.title]
    assert not RuleState.from_json(state["maghreb-military"]).outbox


async def test_what_a_dead_worker_sent_but_did_not_record_is_looked_up_not_sent_again(
) -> None:
    """The Kafka worker that owned a rule died between the receiver's answer and the state
    write: the new owner's tick (``tick_rule``) finds the message by its id at the
    receiver and records it instead of sending it a second time; the next item, never sent,
    is sent."""
    time = ManualTime()
    desk = RecordingNotifier("a", time)
    state: dict[str, Any] = {}
    dead = Pipeline(notifiers={"a": desk}, state=state, dlq={}, audit=Audit(), clock=time)
    await dead.deliver(with_receivers(story(0), "a"))
    await dead.deliver(with_receivers(story(1), "a"))
    await dead.aclose()  # both items left in the outbox, nothing sent
    first, second = RuleState.from_json(state["maghreb-military"]).pending()
    desk._post("alert", story(0).article.title, first.id)  # it reached the receiver
    owner = Pipeline(notifiers={"a": desk}, state=state, dlq={}, audit=Audit(), clock=time,
                     sleep=time.sleep, pacer=Pacer(clock=time, sleep=time.sleep), inline=True)
    assert await owner.tick_rule("maghreb-military") == 2
    assert desk.titles() == [story(0).article.title, story(1).article.title]  # once each
    assert owner.reconciled == 1
    assert not RuleState.from_json(state["maghreb-military"]).outbox
    assert second.id in {s.ident for s in desk.sent}


async def test_replays_requested_by_the_cli_are_done_by_the_running_pipeline() -> None:
    time = VirtualTime()
    desk = RecordingNotifier("a", time)
    desk.script.append(DeliveryError("is_archived", "archived", retryable=False))
    pipeline, _, dlq, _ = make({"a": desk}, time)
    await pipeline.deliver(with_receivers(story(0), "a"))
    await time.run(pipeline.drain())
    (key,) = dlq
    assert await pipeline.replay_requested() == []  # nothing requested yet
    dlq[key] = {**dlq[key], "state": "requested"}  # what `newswatch dlq replay` writes
    outcomes = await pipeline.replay_requested()
    await time.run(pipeline.drain())
    assert [o.outcome for o in outcomes] == ["queued"]
    assert desk.titles() == [story(0).article.title] and dlq == {}


async def test_an_encoded_state_holds_the_same_json_as_text_and_reads_what_others_wrote(
) -> None:
    """The Kafka worker's table keeps each rule state as JSON text (``encoded_state``):
    the same JSON as a mapping store holds, a state written as a mapping (before the
    change, or by the embedded runtime's tests) is read, and each write is text again."""
    plain: dict[str, Any] = {}
    encoded: dict[str, Any] = {}
    for state, flag in ((plain, False), (encoded, True)):
        time = ManualTime()
        desk = RecordingNotifier("a", time)
        pipeline = Pipeline(notifiers={"a": desk}, state=state, dlq={}, audit=Audit(),
                            clock=time, sleep=time.sleep,
                            pacer=Pacer(clock=time, sleep=time.sleep), inline=True,
                            encoded_state=flag)
        for n in range(3):
            await pipeline.deliver(with_receivers(story(n), "a"))
        assert len(desk.sent) == 3
    raw = encoded["maghreb-military"]
    assert isinstance(raw, bytes)
    assert json.loads(raw) == plain["maghreb-military"]
    # a worker taking over a rule whose state was written as a mapping
    mixed: dict[str, Any] = {"maghreb-military": plain["maghreb-military"]}
    desk = RecordingNotifier("a", time)
    owner = Pipeline(notifiers={"a": desk}, state=mixed, dlq={}, audit=Audit(), clock=time,
                     sleep=time.sleep, pacer=Pacer(clock=time, sleep=time.sleep),
                     inline=True, encoded_state=True)
    assert len(owner.rule_state("maghreb-military").stories) == 3
    await owner.deliver(with_receivers(story(0), "a"))  # the same article: nothing sent
    await owner.deliver(with_receivers(story(3), "a"))
    assert desk.titles() == [story(3).article.title]
    assert isinstance(mixed["maghreb-military"], bytes)
    assert len(RuleState.from_json(json.loads(mixed["maghreb-military"])).stories) == 4


async def test_a_typed_state_decides_as_the_json_state_and_holds_the_rule_states_themselves(
) -> None:
    """The backtest's in-memory state (``typed_state``) keeps each ``RuleState`` as it is,
    never serialised: the same decisions, sends and state as a mapping of JSON."""
    plain: dict[str, Any] = {}
    typed: dict[str, Any] = {}
    audits = []
    for state, flag in ((plain, False), (typed, True)):
        time = ManualTime()
        desk = RecordingNotifier("a", time)
        audit = Audit()
        pipeline = Pipeline(notifiers={"a": desk}, state=state, dlq={}, audit=audit,
                            clock=time, sleep=time.sleep,
                            pacer=Pacer(clock=time, sleep=time.sleep), inline=True,
                            typed_state=flag)
        for n in (0, 1, 0, 2, 1):
            await pipeline.deliver(with_receivers(story(n), "a"))
            time.now += 60
        assert desk.titles() == [story(n).article.title for n in range(3)]
        audits.append([(d.verdict, d.result, d.reason, d.story) for d in audit.decisions])
    assert audits[0] == audits[1]
    stored = typed["maghreb-military"]
    assert isinstance(stored, RuleState)
    assert stored == RuleState.from_json(plain["maghreb-military"])
