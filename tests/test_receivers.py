"""streams/receivers.py: one notifier per configured receiver, secrets from the environment
mapping given (never from the config file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from newswatch.core.config import parse_config
from newswatch.core.errors import ConfigError
from newswatch.streams.channels.console import ConsoleNotifier
from newswatch.streams.channels.email import EmailNotifier
from newswatch.streams.channels.slack import SlackNotifier
from newswatch.streams.receivers import build_notifiers

CONFIG = """rules: []
receivers:
  desk: {slack: {channel: '#desk'}}
  editor: {email: {to: [ed@example.org], from: nw@example.org, host: smtp.example.org,
                   user: nw}}
  terminal: {console: {}}
"""


def test_each_receiver_becomes_its_notifier_with_secrets_from_the_environment() -> None:
    config = parse_config(CONFIG, "config.yaml", base=Path("."))
    notifiers = build_notifiers(config, {"SLACK_BOT_TOKEN": "xoxb-1", "SMTP_PASSWORD": "pw"})
    assert list(notifiers) == ["desk", "editor", "terminal"]
    slack, email = notifiers["desk"], notifiers["editor"]
    assert isinstance(slack, SlackNotifier) and slack.channel == "#desk"
    assert slack._token == "xoxb-1"
    assert isinstance(email, EmailNotifier) and email._password == "pw"
    assert isinstance(notifiers["terminal"], ConsoleNotifier)
    without_password = build_notifiers(config, {"SLACK_BOT_TOKEN": "xoxb-1"})["editor"]
    assert isinstance(without_password, EmailNotifier) and without_password._password is None


def test_a_slack_receiver_without_a_token_is_a_config_error() -> None:
    config = parse_config(CONFIG, "config.yaml", base=Path("."))
    with pytest.raises(ConfigError, match=r"receivers\.desk: the Slack token must be in the "
                                          "SLACK_BOT_TOKEN environment variable"):
        build_notifiers(config, {"SMTP_PASSWORD": "pw"})
