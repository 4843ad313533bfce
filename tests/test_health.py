"""Feed health and schedule: pure functions, plain numbers, a seeded random generator."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import pytest

from newswatch.core.errors import FetchError, FetchErrorKind, ParseError
from newswatch.monitor.health import (
    BACKOFF_CAP,
    FAILING_NOTICE_AFTER,
    JITTER,
    RETRY_AFTER_CAP,
    STALE_FLOOR,
    FeedHealth,
    Pace,
    Success,
    Transition,
    adaptive_interval,
    after_failure,
    after_success,
    articles_last_24h,
    backoff_delay,
    current_status,
    is_stale,
    next_delay,
    rebase,
    settle_notice,
    stale_after,
)

T0 = 1_700_000_000.0
PACE = Pace.of(300)  # 5 min base: [75 s, 1 h]
HOUR = 3600.0


def ok(new: int = 0, **kw: object) -> Success:
    return Success(new_articles=new, status=200, latency=0.05, **kw)  # type: ignore[arg-type]


def rng() -> random.Random:
    return random.Random(7)


def learned(gap: float, *, last_new: float = T0) -> FeedHealth:
    return FeedHealth(feed="f", status="ok", usual_gap=gap, gap_samples=5,
                      last_new_article=last_new, polls=10)


def timeout() -> FetchError:
    return FetchError(FetchErrorKind.TIMEOUT, "no complete response within 20 s")


# ------------------------------------------------------------------------------ pace


@pytest.mark.parametrize(("interval", "lo", "hi"), [
    (300, 75, 3600),          # 5 min → poll between 75 s and 1 h
    (30, 30, 360),            # short intervals: never faster than configured
    (10, 10, 120),
    (3600, 900, 6 * HOUR),    # 1 h → at most 6 h so staleness is noticed in time
    (86400, 21600, 86400),    # 1 d → never slower than configured
])
def test_pace_defaults(interval: float, lo: float, hi: float) -> None:
    assert Pace.of(interval) == Pace(interval, lo, hi)


def test_pace_explicit_bounds_are_kept_and_contain_the_interval() -> None:
    assert Pace.of(300, 60, 7200) == Pace(300, 60, 7200)
    assert Pace.of(300, 600, 100) == Pace(300, 300, 300)  # config validation forbids this


# ------------------------------------------------------------------------------ schedule


def test_configured_interval_until_the_rhythm_is_learned() -> None:
    fresh = FeedHealth(feed="f", usual_gap=60.0, gap_samples=2, last_new_article=T0)
    assert adaptive_interval(fresh, T0, PACE) == 300


@pytest.mark.parametrize(("gap", "expected"), [
    (600.0, 300.0),       # half the usual gap
    (1200.0, 600.0),
    (60.0, 75.0),         # a busy feed: not faster than min_interval
    (4 * HOUR, HOUR),     # a slow feed: not slower than max_interval
])
def test_adaptive_interval_is_half_the_gap_within_bounds(gap: float, expected: float) -> None:
    assert adaptive_interval(learned(gap), T0, PACE) == expected


def test_a_silence_longer_than_the_gap_stretches_the_interval() -> None:
    quiet = learned(600.0, last_new=T0 - 3000)
    assert adaptive_interval(quiet, T0, PACE) == 1500.0


def test_server_hints_raise_the_delay_up_to_max_interval() -> None:
    h = learned(600.0)
    assert next_delay(h, T0, PACE, max_age=None, feed_hint=None) == (300.0, 75.0)
    assert next_delay(h, T0, PACE, max_age=None, feed_hint=1800.0) == (1800.0, 1800.0)  # ttl
    assert next_delay(h, T0, PACE, max_age=900.0, feed_hint=600.0) == (900.0, 900.0)
    assert next_delay(h, T0, PACE, max_age=60.0, feed_hint=None) == (300.0, 75.0)
    # a feed claiming ttl = 1 week is still checked within max_interval
    assert next_delay(h, T0, PACE, max_age=None, feed_hint=7 * 86400.0) == (HOUR, HOUR)


def test_after_success_schedules_with_jitter_but_never_before_a_hint() -> None:
    r = rng()
    for _ in range(200):
        after = after_success(FeedHealth(feed="f"), ok(1), now=T0, pace=PACE, rng=r)
        assert 300 * (1 - JITTER) <= after.next_poll - T0 <= 300 * (1 + JITTER)
        hinted = after_success(FeedHealth(feed="f"), ok(1, feed_hint=1200.0), now=T0,
                               pace=PACE, rng=r)
        assert 1200 <= hinted.next_poll - T0 <= 1200 * (1 + JITTER)


def test_the_usual_gap_is_learned_from_polls_with_new_articles() -> None:
    h = FeedHealth(feed="f")
    for k in range(5):
        h = after_success(h, ok(2), now=T0 + k * 600, pace=PACE, rng=rng())
        h = after_success(h, ok(0), now=T0 + k * 600 + 300, pace=PACE, rng=rng())
    assert h.usual_gap == pytest.approx(600.0)
    assert h.gap_samples == 4
    assert h.articles_seen == 10
    assert adaptive_interval(h, T0 + 2700, PACE) == 300.0


def test_304_keeps_validators_and_counts() -> None:
    first = after_success(FeedHealth(feed="f"), ok(3, etag='"a"', last_modified="Mon",
                                                   content_hash="h1"),
                          now=T0, pace=PACE, rng=rng())
    second = after_success(first, Success(0, 304, 0.01, etag=None, not_modified=True),
                           now=T0 + 300, pace=PACE, rng=rng())
    assert (second.etag, second.last_modified, second.content_hash) == ('"a"', "Mon", "h1")
    third = after_success(second, ok(0, etag='"b"', content_hash="h1", unchanged=True),
                          now=T0 + 600, pace=PACE, rng=rng())
    assert third.etag == '"b"'  # a 200 with the same body still brings fresh validators
    assert (third.polls, third.not_modified, third.unchanged) == (3, 1, 1)
    assert third.share_not_modified == pytest.approx(1 / 3)
    assert third.latency == 0.05 and third.last_status == 200


def test_feed_hint_survives_304_and_is_replaced_by_the_next_body() -> None:
    h = after_success(FeedHealth(feed="f"), ok(1, feed_hint=1800.0), now=T0, pace=PACE,
                      rng=rng())
    h = after_success(h, Success(0, 304, 0.01, not_modified=True), now=T0 + 2000,
                      pace=PACE, rng=rng())
    assert h.feed_hint == 1800.0 and h.next_poll - (T0 + 2000) >= 1800
    h = after_success(h, ok(1), now=T0 + 4000, pace=PACE, rng=rng())
    assert h.feed_hint is None


def test_articles_of_the_last_24_hours() -> None:
    h = FeedHealth(feed="f")
    for k in range(30):  # one poll an hour, two new articles each
        h = after_success(h, ok(2), now=T0 + k * HOUR, pace=PACE, rng=rng())
    now = T0 + 29 * HOUR
    assert articles_last_24h(h, now) == 48
    assert len(h.recent) == 24  # old buckets are dropped
    assert articles_last_24h(h, now + 12 * HOUR) == 24
    assert articles_last_24h(h, now + 25 * HOUR) == 0
    assert h.articles_seen == 60


# ------------------------------------------------------------------------------ failures


def test_backoff_doubles_from_the_interval_up_to_the_cap() -> None:
    assert [backoff_delay(PACE, n) for n in range(1, 8)] == [
        300, 600, 1200, 2400, 4800, 9600, 19200]
    assert backoff_delay(PACE, 8) == BACKOFF_CAP
    assert backoff_delay(PACE, 100_000) == BACKOFF_CAP  # no float overflow after years
    assert backoff_delay(Pace.of(86400), 3) == 86400  # an interval above the cap wins


def test_a_failing_feed_keeps_being_retried_at_the_cap() -> None:
    h = FeedHealth(feed="f")
    r = rng()
    now = T0
    for _ in range(2000):
        h = after_failure(h, timeout(), now=now, pace=PACE, rng=r)
        assert h.next_poll - now <= BACKOFF_CAP * (1 + JITTER)
        now = h.next_poll
    assert h.status == "failing" and h.consecutive_failures == 2000
    assert h.next_poll - now >= 0 and math.isfinite(h.next_poll)
    assert h.error_kind == "timeout" and "20 s" in (h.error_message or "")


def test_retry_after_is_a_floor_and_jitter_only_goes_up() -> None:
    r = rng()
    for _ in range(100):
        error = FetchError(FetchErrorKind.RATE_LIMITED, "HTTP 429", status=429, retry_after=900)
        h = after_failure(FeedHealth(feed="f"), error, now=T0, pace=PACE, rng=r)
        assert 900 <= h.next_poll - T0 <= 900 * (1 + JITTER)
        assert h.error_kind == "rate_limited" and h.last_status == 429


def test_retry_after_without_value_and_absurd_values() -> None:
    bare = FetchError(FetchErrorKind.RATE_LIMITED, "HTTP 429", status=429)
    h = after_failure(FeedHealth(feed="f"), bare, now=T0, pace=PACE, rng=rng())
    assert h.next_poll - T0 >= 300
    week = FetchError(FetchErrorKind.RATE_LIMITED, "HTTP 503", status=503, retry_after=7 * 86400)
    h = after_failure(FeedHealth(feed="f"), week, now=T0, pace=PACE, rng=rng())
    assert RETRY_AFTER_CAP <= h.next_poll - T0 <= RETRY_AFTER_CAP * (1 + JITTER)


def test_410_disables_the_feed_and_says_so() -> None:
    gone = FetchError(FetchErrorKind.HTTP_4XX, "HTTP 410 Gone", status=410)
    h = after_failure(FeedHealth(feed="f", status="ok"), gone, now=T0, pace=PACE, rng=rng())
    assert h.status == "disabled" and h.next_poll == math.inf
    assert h.error_kind == "http_4xx" and "410 Gone" in (h.error_message or "")
    assert current_status(h, T0 + 10 * 86400) == "disabled"


def test_a_parse_failure_is_a_failure_with_its_kind() -> None:
    error = ParseError("got an HTML page, not a feed", kind=FetchErrorKind.NOT_A_FEED)
    h = after_failure(FeedHealth(feed="f"), error, now=T0, pace=PACE, rng=rng(), latency=0.2)
    assert (h.status, h.error_kind, h.last_status, h.latency) == ("failing", "not_a_feed",
                                                                  None, 0.2)


def test_success_after_failures_resets_and_stamps_since() -> None:
    h = after_failure(FeedHealth(feed="f"), timeout(), now=T0, pace=PACE, rng=rng())
    h = after_failure(h, timeout(), now=T0 + 300, pace=PACE, rng=rng())
    assert h.since == T0
    h = after_success(h, ok(1), now=T0 + 900, pace=PACE, rng=rng())
    assert (h.status, h.consecutive_failures, h.error_kind, h.since) == ("ok", 0, None,
                                                                         T0 + 900)


# ------------------------------------------------------------------------------ staleness


def test_stale_after_k_times_the_learned_gap_with_a_floor() -> None:
    assert stale_after(learned(2 * HOUR)) == 8 * HOUR
    assert stale_after(learned(600.0)) == STALE_FLOOR
    assert stale_after(FeedHealth(feed="f")) == math.inf
    h = learned(2 * HOUR)
    assert not is_stale(h, T0 + 8 * HOUR - 1)
    assert is_stale(h, T0 + 8 * HOUR + 1)
    assert current_status(h, T0 + 8 * HOUR + 1) == "stale"  # between polls too
    assert current_status(h, T0 + HOUR) == "ok"


def test_a_poll_without_news_turns_a_silent_feed_stale() -> None:
    h = learned(2 * HOUR)
    h = after_success(h, Success(0, 304, 0.01, not_modified=True), now=T0 + 9 * HOUR,
                      pace=PACE, rng=rng())
    assert h.status == "stale"
    h = after_success(h, ok(1), now=T0 + 10 * HOUR, pace=PACE, rng=rng())
    assert h.status == "ok"


# ------------------------------------------------------------------------------ records


def test_json_round_trip_and_older_records() -> None:
    h = after_success(FeedHealth(feed="f"), ok(2, etag='"x"'), now=T0, pace=PACE, rng=rng())
    h = after_failure(h, FetchError(FetchErrorKind.HTTP_4XX, "HTTP 410", status=410),
                      now=T0 + 60, pace=PACE, rng=rng())
    text = json.dumps(h.to_json())
    assert FeedHealth.from_json(json.loads(text)) == h
    old = {"feed": "f", "status": "ok", "url": None, "last_attempt": T0, "last_success": T0,
           "last_status": 200, "error_kind": None, "error_message": None,
           "consecutive_failures": 0, "articles_seen": 4, "last_new_article": T0,
           "usual_gap": None, "gap_samples": 0, "etag": None, "last_modified": None,
           "content_hash": None, "next_poll": T0 + 300, "latency": 0.1, "polls": 3,
           "not_modified": 1, "retired_field": "ignored"}
    loaded = FeedHealth.from_json(old)
    assert loaded.articles_seen == 4 and loaded.recent == () and loaded.notified == "ok"


def test_rebase_resets_the_cursor_when_the_configured_url_changes() -> None:
    gone = FetchError(FetchErrorKind.HTTP_4XX, "HTTP 410", status=410)
    h = rebase(FeedHealth(feed="f"), "http://a/feed")
    h = after_success(h, ok(3, etag='"e"', moved_to="http://b/feed"), now=T0, pace=PACE,
                      rng=rng())
    h = after_failure(h, gone, now=T0 + 300, pace=PACE, rng=rng())
    assert rebase(h, "http://a/feed") is h
    fixed = rebase(h, "http://c/feed")
    assert (fixed.status, fixed.url, fixed.etag, fixed.next_poll) == ("never_polled", None,
                                                                     None, 0.0)
    assert fixed.articles_seen == 3 and fixed.configured_url == "http://c/feed"
    legacy = replace(h, configured_url=None)
    assert rebase(legacy, "http://a/feed").url == "http://b/feed"


# ------------------------------------------------------------------------------ notices


def poll_sequence(outcomes: list[str]) -> list[Transition | None]:
    """Feed a sequence of outcomes (ok, new, fail, gone) through the health functions and
    settle_notice, one hour apart; returns the transition after each."""
    h = FeedHealth(feed="f")
    out: list[Transition | None] = []
    for k, outcome in enumerate(outcomes):
        now = T0 + k * HOUR
        if outcome == "fail":
            h = after_failure(h, timeout(), now=now, pace=PACE, rng=rng())
        elif outcome == "gone":
            h = after_failure(h, FetchError(FetchErrorKind.HTTP_4XX, "HTTP 410", status=410),
                              now=now, pace=PACE, rng=rng())
        else:
            h = after_success(h, ok(1 if outcome == "new" else 0), now=now, pace=PACE,
                              rng=rng())
        h, transition = settle_notice(h, now)
        out.append(transition)
    return out


def kinds(transitions: list[Transition | None]) -> list[str | None]:
    return [t.kind if t else None for t in transitions]


def test_failing_is_announced_after_three_failures_and_recovery_once() -> None:
    assert FAILING_NOTICE_AFTER == 3
    got = poll_sequence(["new", "fail", "fail", "fail", "fail", "fail", "new", "new"])
    assert kinds(got) == [None, None, None, "failing", None, None, "recovered", None]


def test_a_single_failure_between_successes_is_not_news() -> None:
    got = poll_sequence(["new", "fail", "new", "fail", "fail", "new", "fail"])
    assert kinds(got) == [None] * 7


def test_410_is_announced_at_once() -> None:
    assert kinds(poll_sequence(["gone"])) == ["disabled"]
    assert kinds(poll_sequence(["new", "gone"])) == [None, "disabled"]


def test_a_new_feed_that_never_works_is_announced_failing() -> None:
    assert kinds(poll_sequence(["fail", "fail", "fail"])) == [None, None, "failing"]


def test_stale_and_recovered_are_announced_and_a_failure_does_not_fake_recovery() -> None:
    # new articles every hour → learned gap 1 h → stale after 6 h (floor) of silence
    outcomes = ["new"] * 5 + ["ok"] * 7 + ["fail", "ok", "new"]
    got = poll_sequence(outcomes)
    assert kinds(got)[:11] == [None] * 11
    assert kinds(got)[11:] == ["stale", None, None, "recovered"]
    stale = got[11]
    assert stale is not None and (stale.old, stale.new) == ("ok", "stale")


def test_each_transition_has_its_own_key() -> None:
    got = [t for t in poll_sequence(["fail"] * 3 + ["new"] + ["fail"] * 3 + ["new"]) if t]
    assert kinds(list(got)) == ["failing", "recovered", "failing", "recovered"]
    assert len({t.key for t in got}) == 4
