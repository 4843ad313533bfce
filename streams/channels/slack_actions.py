"""The Slack side of alert buttons, pure: the actions block an interactive alert carries,
the feedback line under it, and a ``block_actions`` payload read back into verified
:class:`~newswatch.streams.feedback.Click` values (docs/slack.md).

Everything in a payload is checked before use: the button value must be one we signed
(:meth:`AlertRef.verify`), ids must look like Slack ids, text is cut and stripped of control
characters; anything else raises :class:`ClickRefused` and nothing is applied. The only
mention we ever write is ``<@user id>`` of the clicker, from a checked id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from newswatch.core.durations import format_duration
from newswatch.streams.alerts import Match
from newswatch.streams.channels.text import clean_text, cut_text
from newswatch.streams.decide import story_id
from newswatch.streams.feedback import (
    ACTIONS,
    EVIDENCE_LIMIT,
    TITLE_LIMIT,
    VALUE_LIMIT,
    Action,
    AlertRef,
    Click,
    ClickRefused,
)
from newswatch.streams.notices import is_notice

__all__ = ["ACTIONS_BLOCK", "ACTION_IDS", "FEEDBACK_BLOCK", "SlackButtons", "feedback_block",
           "message_summary", "parse_block_actions", "with_feedback"]

ACTION_PREFIX = "newswatch_"
ACTION_IDS: dict[str, Action] = {f"{ACTION_PREFIX}{a}": a for a in ACTIONS}
ACTIONS_BLOCK = "newswatch-actions"
FEEDBACK_BLOCK = "newswatch-feedback"
FEEDBACK_LINES = 5  # answers one alert shows, newest last
_MAX_BLOCKS = 50
_LABELS: dict[Action, str] = {"useful": "Useful", "not_relevant": "Not relevant",
                              "mute_story": "Mute story", "mute_rule": "Mute rule"}
_LINK = re.compile(r"<[^|<>]*\|([^<>]*)>")


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object, limit: int) -> str:
    """Slack mrkdwn as plain text: our links reduced to their label, Slack's three escapes
    undone, one clean line (streams/channels/text.py) of at most ``limit`` characters."""
    if not isinstance(value, str):
        return ""
    text = _LINK.sub(r"\1", value).replace("&lt;", "<").replace("&gt;", ">")
    return cut_text(clean_text(text.replace("&amp;", "&")), limit)


def _span(seconds: float) -> str:
    """``24 h``, ``2 d``, ``30m``: a duration as a button label shows it."""
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} d"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    return format_duration(seconds)


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True, slots=True)
class SlackButtons:
    """The buttons of one interactive receiver: values signed with ``key``, naming
    ``receiver``; the rule mute's label shows ``mute_rule`` (seconds)."""

    key: bytes
    receiver: str
    mute_rule: float = 86400.0

    def __repr__(self) -> str:  # never show the key
        return f"SlackButtons(receiver={self.receiver!r})"

    def block(self, match: Match) -> dict[str, Any] | None:
        """The actions block for an alert of ``match``; None for an ops notice (no rule to
        give feedback on) or when the value would not fit Slack's limit."""
        if is_notice(match):
            return None
        try:
            ref = AlertRef(match.rule_id, story_id(match), match.article.id, self.receiver)
        except ClickRefused:
            return None  # ids a click could not be verified with: no buttons
        value = ref.sign(self.key)
        if len(value) > VALUE_LIMIT:
            return None
        labels = {**_LABELS, "mute_rule": f"Mute rule {_span(self.mute_rule)}"}
        buttons: list[dict[str, Any]] = []
        for action in ACTIONS:
            button: dict[str, Any] = {
                "type": "button", "action_id": f"{ACTION_PREFIX}{action}", "value": value,
                "text": {"type": "plain_text", "text": labels[action]}}
            if action == "useful":
                button["style"] = "primary"
            if action == "mute_rule":
                # a rule mute silences every alert of the rule: ask first (Slack's dialog)
                button["confirm"] = {
                    "title": {"type": "plain_text", "text": "Mute the whole rule?"},
                    "text": {"type": "plain_text", "text": (
                        f"No alert of rule {ref.rule_id} for {_span(self.mute_rule)}, in "
                        "every channel it notifies.")[:300]},
                    "confirm": {"type": "plain_text", "text": "Mute"},
                    "deny": {"type": "plain_text", "text": "Cancel"}}
            buttons.append(button)
        return {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": buttons}


def feedback_block(lines: Sequence[str]) -> dict[str, Any] | None:
    """The context block of answer lines (the newest ``FEEDBACK_LINES``), or None."""
    shown = [line for line in lines if isinstance(line, str) and line][-FEEDBACK_LINES:]
    if not shown:
        return None
    return {"type": "context", "block_id": FEEDBACK_BLOCK,
            "elements": [{"type": "mrkdwn", "text": line[:3000]} for line in shown]}


def with_feedback(blocks: object, line: str) -> list[dict[str, Any]] | None:
    """Slack's copy of an alert's ``blocks`` with ``line`` added to its answer lines (the
    feedback block replaced, or put before the buttons); None when ``blocks`` is not a
    list of blocks or has no room left."""
    if (not isinstance(blocks, list) or not blocks or len(blocks) > _MAX_BLOCKS
            or not all(isinstance(b, dict) for b in blocks)):
        return None
    old = next((b for b in blocks if b.get("block_id") == FEEDBACK_BLOCK), None)
    lines = [str(_obj(e).get("text")) for e in (old or {}).get("elements") or []
             if isinstance(_obj(e).get("text"), str)]
    block = feedback_block([*(x for x in lines if x != line), line])
    assert block is not None  # line is not empty
    kept = [b for b in blocks if b.get("block_id") != FEEDBACK_BLOCK]
    at = next((i for i, b in enumerate(kept) if b.get("block_id") == ACTIONS_BLOCK), len(kept))
    out = [*kept[:at], block, *kept[at:]]
    return out if len(out) <= _MAX_BLOCKS else None


# --------------------------------------------------------------------------- payloads


def message_summary(message: Mapping[str, Any]) -> tuple[str, str]:
    """The title and the "Why:" line an alert message shows, as plain text."""
    title = why = ""
    for block in message.get("blocks") or []:
        block = _obj(block)
        if block.get("type") == "section" and not title:
            title = _text(_obj(block.get("text")).get("text", ""), TITLE_LIMIT).strip("*")
        elif block.get("type") == "context" and not why:
            elements = block.get("elements")
            first = _obj(elements[0]).get("text") if isinstance(elements, list) and elements \
                else None
            if isinstance(first, str) and first.startswith("*Why:* "):
                why = _text(first[len("*Why:* "):], EVIDENCE_LIMIT)
    return title, why


def _answer_context(message: Mapping[str, Any]) -> dict[str, Any]:
    """What answering needs of the message: its fallback text and blocks (if sane)."""
    text = message.get("text")
    blocks = message.get("blocks")
    sane = (isinstance(blocks, list) and len(blocks) <= _MAX_BLOCKS
            and all(isinstance(b, dict) for b in blocks))
    return {"text": text[:4000] if isinstance(text, str) else "",
            "blocks": blocks if sane else None}


def parse_block_actions(payload: object, key: bytes) -> list[Click]:
    """The verified clicks on newswatch buttons in a ``block_actions`` payload.
    ClickRefused when it is not such a payload, has none of our buttons, or any of ours
    does not verify: a payload is applied whole or not at all."""
    data = _obj(payload)
    if data.get("type") != "block_actions":
        raise ClickRefused(f"not a block_actions payload (type {str(data.get('type'))[:40]!r})")
    user = _obj(data.get("user"))
    user_id = user.get("id")
    name = _text(user.get("username") or user.get("name") or "", 80)
    container = _obj(data.get("container"))
    message = _obj(data.get("message"))
    channel = _obj(data.get("channel")).get("id") or container.get("channel_id")
    ts = container.get("message_ts") or message.get("ts")
    actions = data.get("actions")
    if not isinstance(actions, list) or len(actions) > 5:
        raise ClickRefused("actions is not a short list")
    title, evidence = message_summary(message)
    clicks = []
    for action in map(_obj, actions):
        action_id = action.get("action_id")
        if not isinstance(action_id, str) or not action_id.startswith(ACTION_PREFIX):
            continue  # another app's element in the same message: not ours to judge
        if action_id not in ACTION_IDS:
            raise ClickRefused(f"unknown action {action_id[:40]!r}")
        alert = AlertRef.verify(action.get("value"), key)
        ident = "\x1f".join(str(x) for x in (user_id, channel, ts, action_id,
                                             action.get("action_ts"), data.get("trigger_id")))
        clicks.append(Click(
            key=hashlib.sha256(ident.encode()).hexdigest()[:24], action=ACTION_IDS[action_id],
            alert=alert, user_id=str(user_id), user_name=name,
            channel=channel if isinstance(channel, str) else None,
            ts=ts if isinstance(ts, str) else None, title=title, evidence=evidence,
            message=_answer_context(message)))
    if not clicks:
        raise ClickRefused("no newswatch button in the payload")
    return clicks
