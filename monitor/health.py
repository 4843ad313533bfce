"""Feed health: pure transitions from one poll outcome to the next state, and the schedule.

``FeedHealth`` is a value; ``after_success`` and ``after_failure`` return a new one. Times
are Unix seconds, durations seconds. Nothing here reads a clock or does I/O, so every rule
(adaptive interval, server hints, backoff, Retry-After, staleness, 410, ops notices) is
unit-testable with plain numbers.

Status: ``never_polled`` → ``ok`` / ``failing``; ``stale`` when a feed that used to publish
has been silent for ``STALE_FACTOR`` times its usual gap (at least ``STALE_FLOOR``);
``disabled`` after 410 Gone (kept visible, never dropped silently; a changed ``url`` in the
config re-enables it, see ``rebase``).

Schedule after a usable answer (``next_delay``):

1. the base is the configured ``interval`` until the feed's usual gap between new articles
   is learned (``MIN_GAP_SAMPLES`` gaps), then ``ADAPT_FACTOR`` × that gap — stretched by
   the current silence when it is longer — clamped to ``[min_interval, max_interval]``;
2. a server hint (RSS ``<ttl>``, ``sy:updatePeriod``, Cache-Control ``max-age``) raises the
   delay to the hint, but never past ``max_interval``: the operator's freshness bound wins;
3. ±``JITTER`` so feeds do not poll in lockstep, never below ``min_interval``.

After a failure: ``interval`` × 2^(failures−1), capped at ``BACKOFF_CAP`` (so a failing
feed is still tried every 6 h ± 10 %, forever), ±``JITTER``; a Retry-After (429, 503) is a
floor (capped at ``RETRY_AFTER_CAP``) and jitter then only goes upwards.

Ops notices (``settle_notice``): ops hear of a feed when what they were last told is no
longer true. The announced state is ok, failing, stale or disabled; ``failing`` is announced
only after ``FAILING_NOTICE_AFTER`` consecutive failures (one timeout is not news), stale
and disabled at once, and ``ok`` again ("recovered") after any of them. The announced state
is persisted in ``FeedHealth.notified``, so a feed that keeps failing produces one notice,
not one per poll, and a restart does not repeat it.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from newswatch.core.errors import FeedError, FetchError, FetchErrorKind

FeedStatus = Literal["ok", "failing", "stale", "disabled", "never_polled"]
Announced = Literal["ok", "failing", "stale", "disabled"]
STATUS_ORDER: dict[str, int] = {
    "failing": 0, "disabled": 1, "stale": 2, "never_polled": 3, "ok": 4,
}
BACKOFF_CAP = 6 * 3600.0  # a failing feed is still tried at least every 6 h (± jitter)
RETRY_AFTER_CAP = 24 * 3600.0  # a server's Retry-After is honoured up to a day
STALE_FACTOR = 4.0
STALE_FLOOR = 6 * 3600.0
JITTER = 0.1  # ±10 % so feeds failing together do not retry together
MIN_GAP_SAMPLES = 3
GAP_SMOOTHING = 0.3  # weight of the newest gap in the running average
ADAPT_FACTOR = 0.5  # poll twice per usual gap between new articles
FAILING_NOTICE_AFTER = 3  # consecutive failures before ops hear that a feed is failing
RECENT_WINDOW = 24 * 3600.0
_BUCKET = 3600.0  # articles of the last 24 h are counted in hourly buckets
_MAX_EXPONENT = 40  # 2**40 × any interval is far past the cap; keeps floats finite


# ---------------------------------------------------------------------------- pace


def default_min_interval(interval: float) -> float:
    """A quarter of the interval, at least 30 s, never more than the interval itself."""
    return min(interval, max(interval / 4, 30.0))


def default_max_interval(interval: float) -> float:
    """Twelve times the interval, at most 6 h (so staleness is noticed in time), never less
    than the interval itself."""
    return max(interval, min(interval * 12, 6 * 3600.0))


@dataclass(frozen=True, slots=True)
class Pace:
    """How often one feed may be polled: ``interval`` is the configured base,
    ``min_interval`` / ``max_interval`` bound the adaptive interval (seconds)."""

    interval: float
    min_interval: float
    max_interval: float

    @classmethod
    def of(
        cls, interval: float, min_interval: float | None = None,
        max_interval: float | None = None,
    ) -> Pace:
        lo = default_min_interval(interval) if min_interval is None else min_interval
        hi = default_max_interval(interval) if max_interval is None else max_interval
        return cls(interval, min(lo, interval), max(hi, interval))


# ---------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """Everything known about one feed's polling, persisted as JSON after every poll.

    ``url``: the URL in use when a permanent redirect replaced ``configured_url`` (the
    configured URL this record describes). ``last_status``: HTTP status of the last answer.
    ``error_kind``: a ``FetchErrorKind`` value. ``usual_gap``: smoothed seconds between polls
    that found new articles. ``recent``: (hour number, new articles) for the last 24 h.
    ``feed_hint``: the feed's own ttl / sy:updatePeriod in seconds, from the last parsed
    body. ``polls`` / ``not_modified`` / ``unchanged``: attempts, 304 answers, 200 answers
    with the previous body. ``since``: when the current status began. ``notified``: the
    status ops were last told about (see ``settle_notice``).
    """

    feed: str
    status: FeedStatus = "never_polled"
    url: str | None = None
    last_attempt: float | None = None
    last_success: float | None = None
    last_status: int | None = None
    error_kind: str | None = None
    error_message: str | None = None
    consecutive_failures: int = 0
    articles_seen: int = 0
    last_new_article: float | None = None
    usual_gap: float | None = None
    gap_samples: int = 0
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    next_poll: float = 0.0
    latency: float | None = None
    polls: int = 0
    not_modified: int = 0
    unchanged: int = 0
    recent: tuple[tuple[int, int], ...] = ()
    feed_hint: float | None = None
    configured_url: str | None = None
    since: float | None = None
    notified: Announced = "ok"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeedHealth:
        """Tolerant of records written by older versions: unknown keys are dropped, missing
        ones take their defaults."""
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        if "recent" in values:
            values["recent"] = tuple(
                (int(item[0]), int(item[1])) for item in values["recent"] or ()
            )
        return cls(**values)

    @property
    def share_not_modified(self) -> float | None:
        """Share of polls answered 304 Not Modified (None before the first poll)."""
        return self.not_modified / self.polls if self.polls else None


def articles_last_24h(health: FeedHealth, now: float) -> int:
    """New articles seen in the last 24 h (hourly buckets: between 23 and 24 h back)."""
    oldest = int(now // _BUCKET) - int(RECENT_WINDOW // _BUCKET) + 1
    return sum(count for hour, count in health.recent if hour >= oldest)


def _add_recent(
    recent: tuple[tuple[int, int], ...], now: float, count: int
) -> tuple[tuple[int, int], ...]:
    hour = int(now // _BUCKET)
    oldest = hour - int(RECENT_WINDOW // _BUCKET) + 1
    kept = [(h, c) for h, c in recent if h >= oldest and h != hour]
    current = sum(c for h, c in recent if h == hour) + count
    return (*kept, (hour, current)) if current else tuple(kept)


# ---------------------------------------------------------------------------- schedule


@dataclass(frozen=True, slots=True)
class Success:
    """What a successful poll learned.

    ``not_modified``: the server answered 304. ``unchanged``: a 200 with the same body as
    last time (content-hash skip). ``max_age``: Cache-Control max-age in seconds.
    ``feed_hint``: the parsed body's ttl / sy:updatePeriod in seconds (None when the body was
    not parsed or had none). ``moved_to``: the validated target of a permanent redirect.
    """

    new_articles: int
    status: int | None
    latency: float
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    not_modified: bool = False
    unchanged: bool = False
    max_age: float | None = None
    feed_hint: float | None = None
    moved_to: str | None = None


def adaptive_interval(health: FeedHealth, now: float, pace: Pace) -> float:
    """The interval the feed's own rhythm suggests, within [min_interval, max_interval].

    Until ``MIN_GAP_SAMPLES`` gaps are learned: the configured interval. Then half the usual
    gap between new articles — or half the current silence when that is longer, so a feed
    that has gone quiet is asked less and less often, up to ``max_interval``.
    """
    if health.usual_gap is None or health.gap_samples < MIN_GAP_SAMPLES:
        return pace.interval
    gap = health.usual_gap
    if health.last_new_article is not None:
        gap = max(gap, now - health.last_new_article)
    return min(max(ADAPT_FACTOR * gap, pace.min_interval), pace.max_interval)


def next_delay(
    health: FeedHealth, now: float, pace: Pace, *, max_age: float | None,
    feed_hint: float | None,
) -> tuple[float, float]:
    """(delay, floor) before the next poll after a usable answer, without jitter: the
    adaptive interval raised to the server's hint (bounded by ``max_interval``); ``floor``
    is what jitter may not go below."""
    delay = adaptive_interval(health, now, pace)
    hints = [h for h in (max_age, feed_hint) if h is not None and h > 0]
    floor = pace.min_interval
    if hints:
        hinted = min(max(hints), pace.max_interval)
        delay = max(delay, hinted)
        floor = max(floor, hinted)
    return delay, floor


def backoff_delay(pace: Pace, failures: int) -> float:
    """``interval`` × 2^(failures−1), capped at ``BACKOFF_CAP`` (or the interval if larger)."""
    exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
    return min(pace.interval * 2.0**exponent, max(pace.interval, BACKOFF_CAP))


def _jittered(delay: float, rng: random.Random, *, floor: float = 0.0) -> float:
    return max(floor, delay * (1.0 + rng.uniform(-JITTER, JITTER)))


def after_success(
    health: FeedHealth, outcome: Success, *, now: float, pace: Pace, rng: random.Random
) -> FeedHealth:
    """State after a poll that produced a usable answer (200, 304 or unchanged body)."""
    gap, samples = health.usual_gap, health.gap_samples
    last_new = health.last_new_article
    if outcome.new_articles > 0:
        if last_new is not None:
            observed = max(now - last_new, 0.0)
            gap = observed if gap is None else (1 - GAP_SMOOTHING) * gap + GAP_SMOOTHING * observed
            samples += 1
        last_new = now
    fresh = not (outcome.not_modified or outcome.unchanged)
    feed_hint = outcome.feed_hint if fresh else health.feed_hint
    updated = replace(
        health,
        status="ok",
        url=outcome.moved_to or health.url,
        last_attempt=now,
        last_success=now,
        last_status=outcome.status,
        error_kind=None,
        error_message=None,
        consecutive_failures=0,
        articles_seen=health.articles_seen + outcome.new_articles,
        last_new_article=last_new,
        usual_gap=gap,
        gap_samples=samples,
        etag=health.etag if outcome.not_modified else outcome.etag,
        last_modified=health.last_modified if outcome.not_modified else outcome.last_modified,
        content_hash=outcome.content_hash or health.content_hash,
        latency=outcome.latency,
        polls=health.polls + 1,
        not_modified=health.not_modified + (1 if outcome.not_modified else 0),
        unchanged=health.unchanged + (1 if outcome.unchanged else 0),
        recent=_add_recent(health.recent, now, outcome.new_articles),
        feed_hint=feed_hint,
    )
    delay, floor = next_delay(updated, now, pace, max_age=outcome.max_age, feed_hint=feed_hint)
    updated = replace(updated, next_poll=now + _jittered(delay, rng, floor=floor))
    status: FeedStatus = "stale" if is_stale(updated, now) else "ok"
    return _with_status(health, replace(updated, status=status), now)


def after_failure(
    health: FeedHealth, error: FeedError, *, now: float, pace: Pace, rng: random.Random,
    latency: float | None = None,
) -> FeedHealth:
    """State after a failed poll: exponential backoff with jitter, capped; Retry-After
    honoured; 410 Gone disables the feed."""
    failures = health.consecutive_failures + 1
    status_code = error.status if isinstance(error, FetchError) else None
    retry_after = error.retry_after if isinstance(error, FetchError) else None
    message = getattr(error, "message", str(error))
    if status_code == 410:
        return _with_status(health, replace(
            health,
            status="disabled",
            last_attempt=now,
            last_status=410,
            error_kind=error.kind.value,
            error_message="410 Gone: the publisher removed this feed; fix or remove its url",
            consecutive_failures=failures,
            next_poll=math.inf,
            latency=latency,
            polls=health.polls + 1,
        ), now)
    delay = backoff_delay(pace, failures)
    if retry_after is not None or error.kind == FetchErrorKind.RATE_LIMITED:
        asked = min(retry_after if retry_after is not None else pace.interval, RETRY_AFTER_CAP)
        delay = max(delay, asked)
        # jitter only upwards: never come back before the server asked
        next_poll = now + delay * (1.0 + rng.uniform(0, JITTER))
    else:
        next_poll = now + _jittered(delay, rng)
    return _with_status(health, replace(
        health,
        status="failing",
        last_attempt=now,
        last_status=status_code,
        error_kind=error.kind.value,
        error_message=message,
        consecutive_failures=failures,
        next_poll=next_poll,
        latency=latency,
        polls=health.polls + 1,
    ), now)


def _with_status(before: FeedHealth, after: FeedHealth, now: float) -> FeedHealth:
    """Stamp ``since`` when the status changed."""
    if after.status != before.status or after.since is None:
        return replace(after, since=now)
    return after


def rebase(health: FeedHealth, configured_url: str) -> FeedHealth:
    """The record for a feed whose configured URL is ``configured_url``.

    When the operator changed the URL in the config, whatever was learned about the old one
    (permanent redirect target, validators, body hash, failures, 410) no longer applies: the
    cursor is reset and the feed is polled at once. Counters and the learned rhythm stay.
    """
    if health.configured_url == configured_url:
        return health
    if health.configured_url is None:
        # new, or written before configured_url existed (then it described this URL)
        return replace(health, configured_url=configured_url)
    return replace(
        health,
        status="never_polled",
        url=None,
        configured_url=configured_url,
        etag=None,
        last_modified=None,
        content_hash=None,
        error_kind=None,
        error_message=None,
        consecutive_failures=0,
        next_poll=0.0,
        since=None,
    )


# ---------------------------------------------------------------------------- staleness


def is_stale(health: FeedHealth, now: float) -> bool:
    """Silent for STALE_FACTOR times its learned gap (floor STALE_FLOOR)."""
    if health.usual_gap is None or health.gap_samples < MIN_GAP_SAMPLES:
        return False
    if health.last_new_article is None:
        return False
    return now - health.last_new_article > stale_after(health)


def stale_after(health: FeedHealth) -> float:
    """Seconds of silence after which the feed counts as stale (inf before it is learned)."""
    if health.usual_gap is None or health.gap_samples < MIN_GAP_SAMPLES:
        return math.inf
    return max(STALE_FACTOR * health.usual_gap, STALE_FLOOR)


def current_status(health: FeedHealth, now: float) -> FeedStatus:
    """Status as of ``now`` (an ok feed turns stale between polls too)."""
    if health.status == "ok" and is_stale(health, now):
        return "stale"
    return health.status


# ---------------------------------------------------------------------------- notices


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of what ops should believe about a feed: ``old`` → ``new`` at ``at``.

    ``key`` names this one transition (feed, states, time) for the delivery stage.
    """

    feed: str
    old: Announced
    new: Announced
    at: float
    health: FeedHealth

    @property
    def kind(self) -> str:
        """``failing``, ``stale``, ``disabled`` or ``recovered``."""
        return "recovered" if self.new == "ok" else self.new

    @property
    def key(self) -> str:
        return f"{self.feed}\x1f{self.old}>{self.new}\x1f{self.at!r}"


def announced(health: FeedHealth) -> Announced:
    """What ops should currently believe about the feed, with the flap guard: a feed with
    fewer than FAILING_NOTICE_AFTER consecutive failures (or not polled yet) keeps the state
    last announced."""
    if health.status == "failing":
        if health.consecutive_failures >= FAILING_NOTICE_AFTER:
            return "failing"
        return health.notified
    if health.status == "never_polled":
        return health.notified
    return health.status


def settle_notice(after: FeedHealth, now: float) -> tuple[FeedHealth, Transition | None]:
    """The health to store (``notified`` updated) and the transition to announce, if any."""
    target = announced(after)
    if target == after.notified:
        return after, None
    settled = replace(after, notified=target)
    return settled, Transition(after.feed, after.notified, target, now, settled)
