"""The config's ``receivers:`` turned into notifiers, with their secrets from the environment.

Secrets never come from the config file: the Slack bot token is read from
``SLACK_BOT_TOKEN`` and the SMTP password from ``SMTP_PASSWORD``, in the ``environ`` mapping
given (the process environment by default, a plain dict in tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from newswatch.core.config import Config, ConsoleReceiver, EmailReceiver, SlackReceiver
from newswatch.core.errors import ConfigError, Issue
from newswatch.streams.channels.console import ConsoleNotifier
from newswatch.streams.channels.email import EmailNotifier
from newswatch.streams.channels.slack import SlackNotifier
from newswatch.streams.notifiers import Notifier

__all__ = ["build_notifiers"]


def build_notifiers(
    config: Config, environ: Mapping[str, str] = os.environ
) -> dict[str, Notifier]:
    """One notifier per configured receiver, by receiver name.

    Raises ConfigError when a Slack receiver is configured and ``environ`` has no
    ``SLACK_BOT_TOKEN``: nothing could be delivered to it. A missing ``SMTP_PASSWORD``
    means no SMTP login password (servers that need none).
    """
    out: dict[str, Notifier] = {}
    for name, receiver in config.receivers.items():
        if isinstance(receiver, SlackReceiver):
            token = environ.get("SLACK_BOT_TOKEN", "")
            if not token:
                raise ConfigError([Issue(str(config.path), 0, f"receivers.{name}: the Slack "
                                         "token must be in the SLACK_BOT_TOKEN environment "
                                         "variable")])
            out[name] = SlackNotifier(name, receiver.channel, token, base_url=receiver.base_url,
                                      reconcile=receiver.reconcile)
        elif isinstance(receiver, EmailReceiver):
            out[name] = EmailNotifier(
                name, receiver.sender, receiver.to, receiver.host, receiver.port,
                starttls=receiver.starttls, tls=receiver.tls, username=receiver.user,
                password=environ.get("SMTP_PASSWORD") or None,
            )
        elif isinstance(receiver, ConsoleReceiver):
            out[name] = ConsoleNotifier(name)
    return out
