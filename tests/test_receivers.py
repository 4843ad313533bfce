"""streams/receivers.py: one notifier per configured receiver, secrets from the environment
mapping given (never from the config file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from newswatch.core.config import SlackReceiver, parse_config
from newswatch.core.errors import ConfigError
from newswatch.streams.channels.console import ConsoleNotifier
from newswatch.streams.channels.email import EmailNotifier
from newswatch.streams.channels.slack import SlackNotifier
from newswatch.streams.receivers import build_notifiers, slack_socket

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


def test_config_check_refuses_addresses_that_can_never_work() -> None:
    """Issue 15: a base_url without scheme, e-mail addresses with CR/LF or none at all, a
    host given as a URL passed the check; every alert was then retried for an hour."""
    text = """\
rules: []
feeds:
  - {name: nohost, url: "http://"}
receivers:
  desk:
    slack: {channel: "#maghreb", base_url: slack.com/api}
  mail:
    email:
      to: [desk@example.org, "a@b.org\\r\\nBcc: evil@x.org", nobody, "a@b.org, c@d.org"]
      from: news watch
      host: smtp://mail.example.org
"""
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "c.yaml", base=Path("."))
    lines = str(raised.value).splitlines()
    assert lines == [
        "c.yaml:3: feeds[0]: url has no host, got 'http://'",
        "c.yaml:6: receivers.desk.slack: base_url must start with http:// or https:// "
        "(like https://slack.com/api/), got 'slack.com/api'",
        "c.yaml:9: receivers.mail.email: to: 'a@b.org\\r\\nBcc: evil@x.org' contains a "
        "line break or a control character",
        "c.yaml:9: receivers.mail.email: to: 'nobody' is not an e-mail address like "
        "desk@example.org",
        "c.yaml:9: receivers.mail.email: to: 'a@b.org, c@d.org' is not one e-mail address",
        "c.yaml:10: receivers.mail.email: from: 'news watch' is not an e-mail address like "
        "desk@example.org",
        "c.yaml:11: receivers.mail.email: host: 'smtp://mail.example.org' must be a host "
        "name, without scheme or path",
    ]


@pytest.mark.parametrize("address", ["desk@example.org", "Desk <desk@example.org>",
                                     "rédaction@exämple.org", "ops@localhost"])
def test_plain_and_named_and_local_addresses_are_accepted(address: str) -> None:
    text = (f"rules: []\nreceivers:\n  mail:\n    email: {{to: ['{address}'], "
            f"from: '{address}', host: 127.0.0.1}}\n")
    assert parse_config(text, "c.yaml", base=Path(".")).receivers["mail"]


INTERACTIVE = """rules: []
receivers:
  desk:
    slack: {channel: '#desk', interactive: true, mute_story: 2h, mute_rule: 1d}
  quiet: {slack: {channel: '#quiet'}}
"""


def test_an_interactive_receiver_sends_buttons_and_needs_the_app_token() -> None:
    config = parse_config(INTERACTIVE, "config.yaml", base=Path("."))
    desk = config.receivers["desk"]
    assert isinstance(desk, SlackReceiver) and desk.interactive
    assert (desk.mute_story, desk.mute_rule) == (7200.0, 86400.0)
    notifiers = build_notifiers(config, {"SLACK_BOT_TOKEN": "xoxb-1"})
    slack, quiet = notifiers["desk"], notifiers["quiet"]
    assert isinstance(slack, SlackNotifier) and slack.buttons is not None
    assert isinstance(quiet, SlackNotifier) and quiet.buttons is None
    without = build_notifiers(config, {"SLACK_BOT_TOKEN": "xoxb-1"}, buttons=False)["desk"]
    assert isinstance(without, SlackNotifier) and without.buttons is None
    assert slack_socket(config, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"})
    with pytest.raises(ConfigError, match=r"receivers\.desk: the Slack token must be in the "
                                          "SLACK_APP_TOKEN environment variable"):
        slack_socket(config, {"SLACK_BOT_TOKEN": "xoxb-1"})
    plain = parse_config(CONFIG, "config.yaml", base=Path("."))
    assert slack_socket(plain, {}) is None  # no interactive receiver: no socket, no token


def test_interactive_settings_are_checked_with_their_lines() -> None:
    text = """\
rules: []
receivers:
  a:
    slack: {channel: '#a', mute_story: 2h}
  b:
    slack: {channel: '#b', interactive: true, mute_rule: 10s}
  c:
    slack:
      channel: '#c'
      interactive: true
      base_url: http://127.0.0.1:9/api/
      mute_storey: 1h
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.yaml", base=Path("."))
    lines = str(caught.value).splitlines()
    assert "config.yaml:4: receivers.a.slack: mute_story applies only with interactive: true" \
        in lines
    assert "config.yaml:6: receivers.b.slack: mute_rule must be between 1m and 30d" in lines
    assert ("config.yaml:11: receivers.c.slack: every interactive Slack receiver must use the "
            "same base_url (one Slack app)") in lines
    assert any(line.startswith("config.yaml:12: receivers.c.slack: unknown key 'mute_storey'")
               for line in lines)
