"""Feed health: pure transitions from one poll outcome to the next state, and the schedule.

``FeedHealth`` is a value; ``after_success`` and ``after_failure`` return a new one. Times
are Unix seconds, durations seconds. Nothing here reads a clock or does I/O, so every rule
(backoff, Retry-After, staleness, 410) is unit-testable with plain numbers.

Status: ``never_polled`` → ``ok`` / ``failing``; ``stale`` when a feed that used to publish
has been silent for ``STALE_FACTOR`` times its usual gap (at least ``STALE_FLOOR``);
``disabled`` after 410 Gone (kept visible, never dropped silently).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from monitor.errors import FeedError, FetchError, FetchErrorKind

FeedStatus = Literal["ok", "failing", "stale", "disabled", "never_polled"]
STATUS_ORDER: dict[str, int] = {
    "failing": 0, "disabled": 1, "stale": 2, "never_polled": 3, "ok": 4,
}
BACKOFF_CAP = 6 * 3600.0  # a failing feed is still tried at least every 6 h
STALE_FACTOR = 4.0
STALE_FLOOR = 6 * 3600.0
JITTER = 0.1  # ±10 % so feeds failing together do not retry together
MIN_GAP_SAMPLES = 3
GAP_SMOOTHING = 0.3  # weight of the newest gap in the running average


@dataclass(frozen=True, slots=True)
class FeedHealth:
    feed: str
    status: FeedStatus = "never_polled"
    url: str | None = None  # the URL in use if a permanent redirect replaced the configured one
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeedHealth:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, slots=True)
class Success:
    """What a successful poll learned. ``delay_hint`` is the longest of the server's
    Cache-Control max-age, RSS ttl and sy:updatePeriod, in seconds, when given."""

    new_articles: int
    status: int | None
    latency: float
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    not_modified: bool = False
    delay_hint: float | None = None
    moved_to: str | None = None


def _jittered(delay: float, rng: random.Random) -> float:
    return delay * (1.0 + rng.uniform(-JITTER, JITTER))


def after_success(
    health: FeedHealth, outcome: Success, *, now: float, interval: float, rng: random.Random
) -> FeedHealth:
    """State after a poll that produced a usable answer (200, 304 or unchanged body)."""
    gap, samples = health.usual_gap, health.gap_samples
    last_new = health.last_new_article
    if outcome.new_articles > 0:
        if last_new is not None:
            observed = now - last_new
            gap = observed if gap is None else (1 - GAP_SMOOTHING) * gap + GAP_SMOOTHING * observed
            samples += 1
        last_new = now
    delay = interval
    if outcome.delay_hint is not None:
        delay = min(max(interval, outcome.delay_hint), BACKOFF_CAP)
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
        etag=outcome.etag if not outcome.not_modified else health.etag,
        last_modified=outcome.last_modified if not outcome.not_modified else health.last_modified,
        content_hash=outcome.content_hash or health.content_hash,
        next_poll=now + _jittered(delay, rng),
        latency=outcome.latency,
        polls=health.polls + 1,
        not_modified=health.not_modified + (1 if outcome.not_modified else 0),
    )
    if is_stale(updated, now):
        updated = replace(updated, status="stale")
    return updated


def after_failure(
    health: FeedHealth, error: FeedError, *, now: float, interval: float, rng: random.Random,
    latency: float | None = None,
) -> FeedHealth:
    """State after a failed poll: exponential backoff with jitter, capped; Retry-After
    honoured; 410 Gone disables the feed."""
    failures = health.consecutive_failures + 1
    status_code = error.status if isinstance(error, FetchError) else None
    retry_after = error.retry_after if isinstance(error, FetchError) else None
    if status_code == 410:
        return replace(
            health,
            status="disabled",
            last_attempt=now,
            last_status=410,
            error_kind=error.kind.value,
            error_message="410 Gone: the publisher removed this feed; fix or remove its url",
            consecutive_failures=failures,
            next_poll=float("inf"),
            latency=latency,
            polls=health.polls + 1,
        )
    delay = min(interval * 2 ** (failures - 1), max(interval, BACKOFF_CAP))
    if retry_after is not None or error.kind == FetchErrorKind.RATE_LIMITED:
        delay = max(delay, retry_after or interval)
        # jitter only upwards: never come back before the server asked
        next_poll = now + delay * (1.0 + rng.uniform(0, JITTER))
    else:
        next_poll = now + _jittered(delay, rng)
    return replace(
        health,
        status="failing",
        last_attempt=now,
        last_status=status_code,
        error_kind=error.kind.value,
        error_message=getattr(error, "message", str(error)),
        consecutive_failures=failures,
        next_poll=next_poll,
        latency=latency,
        polls=health.polls + 1,
    )


def is_stale(health: FeedHealth, now: float) -> bool:
    """Silent for STALE_FACTOR times its learned gap (floor STALE_FLOOR)."""
    if health.usual_gap is None or health.gap_samples < MIN_GAP_SAMPLES:
        return False
    if health.last_new_article is None:
        return False
    limit = max(STALE_FACTOR * health.usual_gap, STALE_FLOOR)
    return now - health.last_new_article > limit


def current_status(health: FeedHealth, now: float) -> FeedStatus:
    """Status as of ``now`` (an ok feed turns stale between polls too)."""
    if health.status == "ok" and is_stale(health, now):
        return "stale"
    return health.status
