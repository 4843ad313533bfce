"""The config's ``receivers:`` turned into notifiers, with their secrets from the environment.

Secrets never come from the config file: the Slack bot token is read from
``SLACK_BOT_TOKEN``, the app-level token of interactive Slack receivers from
``SLACK_APP_TOKEN`` and the SMTP password from ``SMTP_PASSWORD``, in the ``environ`` mapping
given (the process environment by default, a plain dict in tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from newswatch.core.config import Config, ConsoleReceiver, EmailReceiver, SlackReceiver
from newswatch.core.errors import ConfigError, Issue
from newswatch.streams.channels.console import ConsoleNotifier
from newswatch.streams.channels.email import EmailNotifier
from newswatch.streams.channels.slack import SlackNotifier
from newswatch.streams.channels.slack_actions import SlackButtons
from newswatch.streams.channels.slack_socket import SlackAnswers, SlackSocket
from newswatch.streams.feedback import MuteDurations, signing_key
from newswatch.streams.notifiers import Notifier

__all__ = ["build_notifiers", "interactive_receivers", "mute_durations", "slack_answers",
           "slack_socket"]


def _missing(config: Config, name: str, variable: str) -> ConfigError:
    return ConfigError([Issue(str(config.path), 0, f"receivers.{name}: the Slack token must "
                              f"be in the {variable} environment variable")])


def build_notifiers(
    config: Config, environ: Mapping[str, str] = os.environ, *, buttons: bool = True,
    feedback: Callable[[str, str], Sequence[str]] | None = None,
) -> dict[str, Notifier]:
    """One notifier per configured receiver, by receiver name.

    Raises ConfigError when a Slack receiver is configured and ``environ`` has no
    ``SLACK_BOT_TOKEN``: nothing could be delivered to it. A missing ``SMTP_PASSWORD``
    means no SMTP login password (servers that need none). Interactive Slack receivers
    send their buttons unless ``buttons`` is False (a runtime that cannot answer them);
    ``feedback`` gives the answer lines a re-rendered alert keeps (channel id, ts → lines).
    """
    out: dict[str, Notifier] = {}
    for name, receiver in config.receivers.items():
        if isinstance(receiver, SlackReceiver):
            token = environ.get("SLACK_BOT_TOKEN", "")
            if not token:
                raise _missing(config, name, "SLACK_BOT_TOKEN")
            actions = (SlackButtons(signing_key(token), name, receiver.mute_rule)
                       if buttons and receiver.interactive else None)
            out[name] = SlackNotifier(name, receiver.channel, token, base_url=receiver.base_url,
                                      reconcile=receiver.reconcile, buttons=actions,
                                      feedback=feedback)
        elif isinstance(receiver, EmailReceiver):
            out[name] = EmailNotifier(
                name, receiver.sender, receiver.to, receiver.host, receiver.port,
                starttls=receiver.starttls, tls=receiver.tls, username=receiver.user,
                password=environ.get("SMTP_PASSWORD") or None,
            )
        elif isinstance(receiver, ConsoleReceiver):
            out[name] = ConsoleNotifier(name)
    return out


def interactive_receivers(config: Config) -> list[SlackReceiver]:
    """The Slack receivers with ``interactive: true``."""
    return [r for r in config.receivers.values()
            if isinstance(r, SlackReceiver) and r.interactive]


def slack_socket(config: Config, environ: Mapping[str, str] = os.environ) -> SlackSocket | None:
    """The Socket Mode connection that answers interactive receivers' buttons, or None
    without any. ConfigError when one is configured and ``SLACK_APP_TOKEN`` (or
    ``SLACK_BOT_TOKEN``, whose key signs the buttons) is missing."""
    interactive = interactive_receivers(config)
    if not interactive:
        return None
    app_token = environ.get("SLACK_APP_TOKEN", "")
    bot_token = environ.get("SLACK_BOT_TOKEN", "")
    if not app_token or not bot_token:
        raise _missing(config, interactive[0].name,
                       "SLACK_APP_TOKEN" if not app_token else "SLACK_BOT_TOKEN")
    # config.py checked that every interactive receiver names the same base_url
    return SlackSocket(app_token, key=signing_key(bot_token), base_url=interactive[0].base_url)


def slack_answers(notifiers: Mapping[str, Notifier]) -> SlackAnswers:
    """Answers to clicks through the interactive Slack notifiers among ``notifiers``."""
    return SlackAnswers({name: n for name, n in notifiers.items()
                         if isinstance(n, SlackNotifier) and n.buttons is not None})


def mute_durations(config: Config) -> Callable[[str], MuteDurations]:
    """A receiver's mute durations by name (the defaults for one no longer configured)."""
    def durations(name: str) -> MuteDurations:
        receiver = config.receivers.get(name)
        if isinstance(receiver, SlackReceiver):
            return MuteDurations(story=receiver.mute_story, rule=receiver.mute_rule)
        return MuteDurations()
    return durations
