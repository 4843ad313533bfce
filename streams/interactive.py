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

In the embedded runtime all of it runs in ``newswatch run``: the socket's sink is the
runtime's ``click``. The Kafka runtime is to put a topic between the two: the process
holding the socket publishes each verified click (``Click.to_json``) keyed by rule id, and
the worker owning the rule runs the same handler over its own stores.
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

__all__ = ["ClickAnswers", "ClickHandler", "ClickSink", "ClickSource"]

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
    are stored, ``answers`` where the click is answered."""

    def __init__(
        self, *, rule_exists: Callable[[str], bool], mutes: Callable[[str], MuteDurations],
        silences: SilenceStore, feedback: FeedbackStore, answers: ClickAnswers,
        clock: Callable[[], float] = time.time,
    ) -> None:
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
