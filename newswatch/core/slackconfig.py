"""A Slack receiver's settings (``receivers.NAME.slack``, docs/configuration.md), read from
the keys ``newswatch.core.config`` has already checked.

The bot token comes from ``SLACK_BOT_TOKEN`` and, for ``interactive: true``, the app-level
token from ``SLACK_APP_TOKEN``: the composition root reads both, never this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from newswatch.core.addresses import url_problem
from newswatch.core.schema import MapReader

__all__ = ["DEFAULT_MUTE", "MAX_MUTE", "MIN_MUTE", "SlackReceiver", "slack_receiver"]

DEFAULT_MUTE = 86400.0  # a day: what "Mute story" and "Mute rule 24 h" mean by default
MIN_MUTE = 60.0
MAX_MUTE = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class SlackReceiver:
    """``reconcile``: after a crash or an ambiguous failure, look the alert up in the
    channel (``conversations.history``, scope ``channels:history``) before sending again.
    ``interactive``: alerts carry feedback and mute buttons, answered over Socket Mode
    (docs/slack.md); ``mute_story``/``mute_rule``: how long those buttons mute, in
    seconds."""

    name: str
    channel: str
    base_url: str | None = None
    reconcile: bool = True
    interactive: bool = False
    mute_story: float = DEFAULT_MUTE
    mute_rule: float = DEFAULT_MUTE


def slack_receiver(r: MapReader, name: str, others: Iterable[object]) -> SlackReceiver | None:
    """The receiver ``name`` from its mapping ``r`` (problems reported through ``r``), or
    None without a channel; ``others`` are the receivers read before it."""
    channel = r.text("channel", required=True)
    base_url = r.text("base_url")
    if base_url is not None and (problem := url_problem(base_url)):
        r.error(f"base_url {problem} (like https://slack.com/api/), got {base_url!r}",
                r.line("base_url"))
    interactive = r.flag("interactive", default=False)
    mutes = {}
    for key in ("mute_story", "mute_rule"):
        mutes[key] = r.duration(key, default=DEFAULT_MUTE)
        if r.has(key) and not interactive:
            r.error(f"{key} applies only with interactive: true", r.line(key))
        elif not MIN_MUTE <= mutes[key] <= MAX_MUTE:
            r.error(f"{key} must be between 1m and 30d", r.line(key))
    # One Socket Mode connection (one Slack app) answers every interactive receiver's
    # buttons, and it asks one Web API for its URL.
    shared = {o.base_url for o in others if isinstance(o, SlackReceiver) and o.interactive}
    if interactive and shared and base_url not in shared:
        r.error("every interactive Slack receiver must use the same base_url (one Slack app)",
                r.line("base_url") if r.has("base_url") else r.line("interactive"))
    if not channel:
        return None
    return SlackReceiver(name, channel, base_url, r.flag("reconcile", default=True),
                         interactive, mutes["mute_story"], mutes["mute_rule"])
