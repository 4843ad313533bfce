"""What a click on an alert's buttons does: pure decisions, no I/O (issue 18).

An interactive alert carries four buttons — Useful · Not relevant · Mute story · Mute rule —
whose value names the alert (:class:`AlertRef`: rule, story, article, receiver) and is
signed: :meth:`AlertRef.sign` appends an HMAC-SHA256 tag keyed by :func:`signing_key`, and
:meth:`AlertRef.verify` refuses any value that is malformed, too long or not signed by us
(a forged payload, or a button from before the bot token changed). A :class:`Click` is a
verified click, its fields checked when it is built; :func:`decide_click` says what it does:

- ``useful`` / ``not_relevant``: recorded, and the alert shows "Marked … by @user";
- ``mute_story`` / ``mute_rule``: an ordinary silence (streams/silences.py) on the rule and
  story, or on the rule, for the receiver's ``mute_story`` / ``mute_rule`` duration, with
  the clicker as creator and the reason "muted from Slack"; recorded, and the alert shows
  "Muted by @user until …". A mute still active with the same matchers is reused (a double
  click mutes once);
- a click on an alert whose rule no longer exists: an answer to the clicker only, nothing
  recorded, nothing muted.

The ports around it (clicks in, the records, the answers) are in streams/interactive.py;
the Slack side (buttons, Socket Mode) in streams/channels/slack_actions.py and
streams/channels/slack_socket.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from newswatch.core.feedback import FeedbackRecord
from newswatch.streams.silences import Silence, new_silence

__all__ = ["ACTIONS", "MUTE_REASON", "VALUE_LIMIT", "Action", "AlertRef", "Click",
           "ClickOutcome", "ClickRefused", "MuteDurations", "decide_click", "signing_key"]

Action = Literal["useful", "not_relevant", "mute_story", "mute_rule"]
ACTIONS: tuple[Action, ...] = ("useful", "not_relevant", "mute_story", "mute_rule")
MUTE_REASON = "muted from Slack"
VALUE_LIMIT = 2000  # Slack's limit on a button's value, in characters
TITLE_LIMIT = 1000
EVIDENCE_LIMIT = 3000

_VERSION = 1
_RULE = re.compile(r"[a-z0-9_-]{1,200}\Z")  # rule ids (rules/loader.py), bounded
_STORY = re.compile(r"[0-9a-f]{20}\Z")  # streams/decide.py story_id
_ARTICLE = re.compile(r"[A-Za-z0-9_.:-]{1,200}\Z")
_TAG = re.compile(r"[0-9a-f]{32}\Z")
_USER = re.compile(r"[UW][A-Z0-9]{2,30}\Z")  # Slack user ids
_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,30}\Z")
_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,9}\Z")
_KEY = re.compile(r"[0-9a-f]{24}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class ClickRefused(ValueError):
    """A click that is not ours or not well-formed; ``str()`` says why, for the log."""


def signing_key(bot_token: str) -> bytes:
    """The key that signs button values, derived from the bot token: every process that
    sends alerts has it, and nobody without it can forge a value. Rotating the token makes
    the buttons of earlier alerts unverifiable (their clicks are refused)."""
    return hmac.new(b"newswatch slack buttons v1", bot_token.encode(), hashlib.sha256).digest()


def _plain(text: object, limit: int, what: str) -> str:
    if not isinstance(text, str) or len(text) > limit or _CONTROL.search(text):
        raise ClickRefused(f"{what} is not a short line of text")
    return text


@dataclass(frozen=True, slots=True)
class AlertRef:
    """The alert a button belongs to: its rule, story and article, and the receiver that
    got it (whose mute durations apply)."""

    rule_id: str
    story: str
    article: str
    receiver: str

    def __post_init__(self) -> None:
        for value, pattern, what in ((self.rule_id, _RULE, "rule id"),
                                     (self.story, _STORY, "story id"),
                                     (self.article, _ARTICLE, "article id")):
            if not isinstance(value, str) or not pattern.match(value):
                raise ClickRefused(f"{what} {str(value)[:60]!r} is malformed")
        _plain(self.receiver, 200, "receiver")

    def _tag(self, key: bytes) -> str:
        text = "\x1f".join((str(_VERSION), self.rule_id, self.story, self.article,
                            self.receiver))
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]

    def sign(self, key: bytes) -> str:
        """The button value: compact JSON with the HMAC tag."""
        return json.dumps({"v": _VERSION, "r": self.rule_id, "s": self.story,
                           "a": self.article, "n": self.receiver, "m": self._tag(key)},
                          ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def verify(cls, value: object, key: bytes) -> AlertRef:
        """The alert a button value names; ClickRefused unless it is exactly what
        :meth:`sign` writes, with a tag made with ``key``."""
        if not isinstance(value, str) or len(value) > VALUE_LIMIT:
            raise ClickRefused("button value is not a string of at most 2,000 characters")
        try:
            data = json.loads(value)
        except ValueError:
            raise ClickRefused("button value is not JSON") from None
        if not isinstance(data, dict) or set(data) != {"v", "r", "s", "a", "n", "m"}:
            raise ClickRefused("button value does not have newswatch's fields")
        if data["v"] != _VERSION or not isinstance(data["m"], str) or not _TAG.match(data["m"]):
            raise ClickRefused("button value has an unknown version or a malformed tag")
        ref = cls(data["r"], data["s"], data["a"], data["n"])
        if not hmac.compare_digest(ref._tag(key), data["m"]):
            raise ClickRefused(f"button value for rule {ref.rule_id} is not signed by this "
                               "newswatch (forged, or from before the bot token changed)")
        return ref


@dataclass(frozen=True, slots=True)
class Click:
    """One verified click. ``key`` identifies the click itself (the same click delivered
    twice has the same key); ``channel``/``ts`` locate the alert message; ``title`` and
    ``evidence`` are what the alert showed; ``message`` is the alert message as the
    channel holds it (for Slack its ``text`` and ``blocks``), kept only to answer there."""

    key: str
    action: Action
    alert: AlertRef
    user_id: str
    user_name: str
    channel: str | None = None
    ts: str | None = None
    title: str = ""
    evidence: str = ""
    message: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ClickRefused(f"unknown action {str(self.action)[:40]!r}")
        for value, pattern, what in ((self.key, _KEY, "click key"),
                                     (self.user_id, _USER, "user id")):
            if not isinstance(value, str) or not pattern.match(value):
                raise ClickRefused(f"{what} {str(value)[:40]!r} is malformed")
        if self.channel is not None and not _CHANNEL.match(self.channel):
            raise ClickRefused("channel id is malformed")
        if self.ts is not None and not _TS.match(self.ts):
            raise ClickRefused("message ts is malformed")
        _plain(self.user_name, 80, "user name")
        _plain(self.title, TITLE_LIMIT, "title")
        _plain(self.evidence, EVIDENCE_LIMIT, "evidence")

    @property
    def creator(self) -> str:
        """The clicker, as a silence's creator: ``slack:U0123 (alice)``."""
        return f"slack:{self.user_id}" + (f" ({self.user_name})" if self.user_name else "")

    def to_json(self) -> dict[str, Any]:
        """For a runtime that hands clicks on (Kafka: to the worker owning the rule)."""
        return {"key": self.key, "action": self.action, "rule_id": self.alert.rule_id,
                "story": self.alert.story, "article": self.alert.article,
                "receiver": self.alert.receiver, "user_id": self.user_id,
                "user_name": self.user_name, "channel": self.channel, "ts": self.ts,
                "title": self.title, "evidence": self.evidence, "message": dict(self.message)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Click:
        """The click :meth:`to_json` wrote; ClickRefused when it is not one."""
        try:
            alert = AlertRef(data["rule_id"], data["story"], data["article"],
                             data["receiver"])
            message = data.get("message") or {}
            if not isinstance(message, dict):
                raise ClickRefused("message is not an object")
            return cls(key=data["key"], action=data["action"], alert=alert,
                       user_id=data["user_id"], user_name=data.get("user_name", ""),
                       channel=data.get("channel"), ts=data.get("ts"),
                       title=data.get("title", ""), evidence=data.get("evidence", ""),
                       message=message)
        except (KeyError, TypeError) as error:
            raise ClickRefused(f"not a click: {error!r}") from None


@dataclass(frozen=True, slots=True)
class MuteDurations:
    """How long the receiver's mute buttons mute, in seconds."""

    story: float = 86400.0
    rule: float = 86400.0


@dataclass(frozen=True, slots=True)
class ClickOutcome:
    """What a click does: ``record`` to store (None: nothing is recorded), ``silence`` to
    add (None: none, or an active one is reused), ``line`` to show under the alert,
    ``ephemeral`` to tell the clicker only."""

    record: FeedbackRecord | None = None
    silence: Silence | None = None
    line: str | None = None
    ephemeral: str | None = None


def until_text(expires: float) -> str:
    """``03 Oct 14:00 UTC``: a mute's end, with its day (a 24 h mute ends tomorrow)."""
    when = datetime.fromtimestamp(expires, UTC)
    return f"{when.day:02d} {when:%b %H:%M} UTC"


def _mute(click: Click, now: float, mutes: MuteDurations,
          silences: Sequence[Silence]) -> tuple[Silence, bool]:
    """The silence a mute click stands for, and whether it is new."""
    alert = click.alert
    story = alert.story if click.action == "mute_story" else None
    wanted = {"rule": alert.rule_id, **({"story": story} if story else {})}
    for silence in silences:
        if (silence.active(now) and silence.reason == MUTE_REASON
                and silence.matchers() == wanted):
            return silence, False  # a double click, or a colleague was quicker
    duration = mutes.story if story else mutes.rule
    return new_silence(reason=MUTE_REASON, now=now, duration=duration, rule=alert.rule_id,
                       story=story, creator=click.creator), True


def decide_click(
    click: Click, *, rule_exists: bool, now: float, mutes: MuteDurations,
    silences: Sequence[Silence] = (),
) -> ClickOutcome:
    """What ``click`` does at ``now`` (see the module docstring); ``silences`` are the
    silences in force, ``rule_exists`` whether the alert's rule is still loaded."""
    alert = click.alert
    if not rule_exists:
        return ClickOutcome(ephemeral=(
            f"The rule {alert.rule_id} of this alert no longer exists, so nothing was "
            "recorded or muted."))
    who = f"<@{click.user_id}>"  # a checked user id: the only mention we write
    silence: Silence | None = None
    if click.action in ("mute_story", "mute_rule"):
        silence, new = _mute(click, now, mutes, silences)
        what = "this story" if click.action == "mute_story" else f"rule {alert.rule_id}"
        line = f"Muted by {who} until {until_text(silence.expires)} ({what})"
    else:
        new = False
        line = f"Marked {'useful' if click.action == 'useful' else 'not relevant'} by {who}"
    record = FeedbackRecord(
        key=click.key, at=now, action=click.action, user_id=click.user_id,
        user_name=click.user_name, rule_id=alert.rule_id, story=alert.story,
        article=alert.article, receiver=alert.receiver, channel=click.channel, ts=click.ts,
        title=click.title, evidence=click.evidence, line=line,
        silence=silence.id if silence is not None else None)
    return ClickOutcome(record=record, silence=silence if new else None, line=line)
