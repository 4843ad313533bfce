"""Clicks in, answers out: the ports around the pure click core (streams/feedback.py) and
the service that applies a click (issue 18).

- :class:`ClickSource` — where clicks come from: the Slack Socket Mode connection
  (streams/channels/slack_socket.py) verifies each click and hands it to a sink; it
  acknowledges Slack's envelopes itself, before the sink runs.
- :class:`ClickAnswers` — how a click is answered where it was made: the alert's feedback
  line updated, or a message only the clicker sees.
- :class:`ClickHandler` — one click applied: decided by ``decide_click``, its silence
  stored with the other silences, its record stored (once per click: a click delivered
  twice is applied once), then answered.

- :class:`HeldClickSource` — a click source run only while this process holds it (the
  Kafka runtime's pollers: only the one owning partition 0 of the feeds registry).

In the embedded runtime all of it runs in ``newswatch run``: the socket's sink is the
runtime's ``click``. The Kafka runtime puts the matches topic between the two: the poller
holding the socket publishes each verified click (``Click.to_json``) keyed by rule id, and
the worker owning the rule runs the same handler over its own stores (docs/kafka.md,
"Clicks on alert buttons").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from newswatch.core.feedback import FeedbackStore
from newswatch.streams.feedback import Click, ClickOutcome, MuteDurations, decide_click
from newswatch.streams.silences import SilenceStore

__all__ = ["ClickAnswers", "ClickHandler", "ClickSink", "ClickSource", "HeldClickSource"]

log = logging.getLogger("newswatch.feedback")

ClickSink = Callable[[Click], Awaitable[None]]


class ClickSource(Protocol):
    """Clicks in: verified clicks handed to ``sink`` until ``stop`` is set. Malformed or
    forged payloads never reach the sink (the source logs them)."""

    async def run(self, sink: ClickSink, stop: asyncio.Event) -> None: ...


class ClickAnswers(Protocol):
    """Answers to a click, where it was made. Failures are the implementation's to log:
    the click is applied whether or not the answer arrives."""

    async def show(self, click: Click, line: str) -> None:
        """Show ``line`` under the clicked alert (for everybody in the channel)."""
        ...

    async def whisper(self, click: Click, text: str) -> None:
        """Tell the clicker only."""
        ...


class ClickHandler:
    """Applies clicks: ``rule_exists`` says whether a rule id is loaded now, ``mutes`` gives
    a receiver's mute durations, ``silences`` and ``feedback`` are where mutes and records
    are stored, ``answers`` where the click is answered. ``durable``, when given, is
    awaited after a new silence is stored and before the record is: it makes the silence
    durable (Kafka: published and acknowledged) and raises when it cannot, so that a click
    is never recorded — and so never applied again — without its mute."""

    def __init__(
        self, *, rule_exists: Callable[[str], bool], mutes: Callable[[str], MuteDurations],
        silences: SilenceStore, feedback: FeedbackStore, answers: ClickAnswers,
        clock: Callable[[], float] = time.time,
        durable: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._durable = durable
        self._rule_exists = rule_exists
        self._mutes = mutes
        self._silences = silences
        self._feedback = feedback
        self._answers = answers
        self._clock = clock

    async def __call__(self, click: Click) -> ClickOutcome:
        """Apply ``click``; returns what it did (an empty outcome for a click applied
        before)."""
        now = self._clock()
        alert = click.alert
        outcome = decide_click(click, rule_exists=self._rule_exists(alert.rule_id), now=now,
                               mutes=self._mutes(alert.receiver),
                               silences=self._silences.active(now))
        if outcome.record is not None:
            # The silence first: should the process die between the two writes, the mute
            # holds (unrecorded) rather than being recorded but not in force.
            if outcome.silence is not None:
                self._silences.add(outcome.silence)
                if self._durable is not None:
                    await self._durable()
            if not self._feedback.add(outcome.record):
                log.info("click %s by %s on rule %s: already applied", click.action,
                         click.user_id, alert.rule_id)
                return ClickOutcome()
            log.info("click %s by %s on rule %s story %s: %s", click.action, click.user_id,
                     alert.rule_id, alert.story, outcome.line,
                     extra={"rule_id": alert.rule_id, "action": click.action,
                            "user": click.user_id, "story": alert.story})
        else:
            log.info("click %s by %s on rule %s: %s", click.action, click.user_id,
                     alert.rule_id, outcome.ephemeral)
        if outcome.line is not None:
            await self._answers.show(click, outcome.line)
        if outcome.ephemeral is not None:
            await self._answers.whisper(click, outcome.ephemeral)
        return outcome


class HeldClickSource:
    """Runs ``source`` into ``sink`` while this process holds it: ``hold(True)`` starts it
    (again, if it stopped on an error), ``hold(False)`` stops it, giving it ``grace``
    seconds to close its connection. For processes of which only one should take clicks
    at a time, each told by something outside (the Kafka pollers: a group assignment)."""

    def __init__(self, source: ClickSource, sink: ClickSink, *, grace: float = 10.0) -> None:
        self._source = source
        self._sink = sink
        self._grace = grace
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return self._task is not None and not self._task.done()

    async def hold(self, wanted: bool) -> None:
        """Run the source when ``wanted`` and it is not running; stop it when not."""
        if wanted and not self.held:
            if self._task is not None:  # it ended by itself: an error, logged here
                await self._reap()
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._source.run(self._sink, self._stop))
            log.info("taking clicks on alert buttons in this process (%r)", self._source)
        elif not wanted:
            await self.release()

    async def release(self) -> None:
        """Stop the source (idempotent); logged once it has stopped (its connection
        closed)."""
        if self._task is None:
            return
        self._stop.set()
        if not (await asyncio.wait({self._task}, timeout=self._grace))[0]:
            self._task.cancel()
        await self._reap()
        log.info("no longer taking clicks on alert buttons in this process")

    async def _reap(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await task
        except asyncio.CancelledError:  # ours (cancelled after the grace): only ours spreads
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except Exception:  # the source's own failure: logged, taken again on hold(True)
            log.exception("the click source stopped on an error")
