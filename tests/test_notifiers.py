"""Notifiers against real local servers: the fake Slack Web API (aiohttp) and an aiosmtpd
sink. Covers payload flags (E2, E7), mentions through the wire (E1), threading and updates,
failure mapping (H1, H3, H4, H5, H6, H8, H9) and e-mail delivery (F1, F3, F5)."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from newswatch.core.errors import DeliveryError
from newswatch.streams.channels.console import ConsoleNotifier
from newswatch.streams.channels.email import EmailNotifier, render_email
from newswatch.streams.channels.slack import SlackNotifier
from newswatch.streams.channels.slack_render import render_slack
from newswatch.streams.notifiers import Notifier, Receipt, RefusedRecipient
from tests.fakes.fixtures import SLACK_TEST_TOKEN, slack_api, smtp_sink  # noqa: F401
from tests.fakes.samples import TITLE, sample_match
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.smtp_sink import SMTPSink

SENDER = "newswatch@example.com"
DESK = "desk@example.com"

PERMANENT_SLACK_ERRORS = [
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_auth",
    "token_revoked",
    "account_inactive",
    "msg_too_long",
    "invalid_blocks",
    "no_text",
    "missing_scope",
]


def free_port() -> int:
    """A port with nothing listening (bound then released), for connection-refused tests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def slack(slack_api: FakeSlackAPI) -> AsyncIterator[SlackNotifier]:  # noqa: F811
    notifier = SlackNotifier(
        "slack-alerts", "#alerts", SLACK_TEST_TOKEN, base_url=slack_api.base_url, timeout=5
    )
    yield notifier
    await notifier.aclose()


def email_notifier(sink: SMTPSink, recipients: tuple[str, ...] = (DESK,)) -> EmailNotifier:
    return EmailNotifier(
        "email-desk",
        SENDER,
        recipients,
        sink.host,
        sink.port,
        starttls=False,
        tls=False,
        username=None,
        password=None,
        timeout=5,
    )


# --------------------------------------------------------------------------- Slack


async def test_slack_send_payload(slack: SlackNotifier, slack_api: FakeSlackAPI) -> None:  # noqa: F811
    match = sample_match()
    receipt = await slack.send(match)

    (call,) = slack_api.calls
    assert call.method == "chat.postMessage" and call.authorized
    payload = call.payload
    assert payload["channel"] == "#alerts"
    # E7: no unfurling; E2: never link_names or parse=full.
    assert payload["unfurl_links"] is False and payload["unfurl_media"] is False
    assert "link_names" not in payload and "parse" not in payload
    expected = render_slack(match)
    assert payload["text"] == expected.text
    assert payload["blocks"] == expected.blocks

    (stored,) = slack_api.messages
    assert receipt == Receipt("slack-alerts", stored.ts, channel=stored.channel)
    assert receipt.channel is not None and receipt.channel.startswith("C")


async def test_slack_e1_mentions_do_not_fire_through_the_wire(
    slack: SlackNotifier,
    slack_api: FakeSlackAPI,  # noqa: F811
) -> None:
    match = sample_match(
        title="<!channel> <!here> <!everyone> accord militaire",
        summary="<@U012ABCDEF> <#C123> <!subteam^S123> accord militaire <https://evil|Official>",
        feed="<!here> Feed",
    )
    parent = await slack.send(match)
    await slack.reply(match, parent)
    await slack.update_sources(parent, match, 3)
    assert len(slack_api.messages) == 2
    assert slack_api.fired_mentions() == []
    for call in slack_api.calls:
        assert "link_names" not in call.payload and call.payload.get("parse") != "full"


async def test_slack_reply_is_threaded(slack: SlackNotifier, slack_api: FakeSlackAPI) -> None:  # noqa: F811
    parent = await slack.send(sample_match())
    child = await slack.reply(sample_match(feed="Autre Journal"), parent)

    reply_call = slack_api.calls[1]
    assert reply_call.payload["thread_ts"] == parent.ref
    assert reply_call.payload["channel"] == parent.channel  # the id, not "#alerts"
    assert reply_call.payload["unfurl_links"] is False
    assert "Also reported by *Autre Journal*" in reply_call.payload["blocks"][0]["text"]["text"]
    assert child.ref != parent.ref and child.channel == parent.channel
    assert slack_api.messages[1].thread_ts == parent.ref


async def test_slack_update_sources(slack: SlackNotifier, slack_api: FakeSlackAPI) -> None:  # noqa: F811
    match = sample_match()
    parent = await slack.send(match)
    await slack.update_sources(parent, match, 3)

    update = slack_api.calls_to("chat.update")[0]
    assert update.payload["ts"] == parent.ref and update.payload["channel"] == parent.channel
    assert "link_names" not in update.payload and "parse" not in update.payload
    (stored,) = slack_api.messages
    assert stored.edits == 1
    assert any("Reported by 3 sources" in text for text in stored.texts())


async def test_slack_update_of_unknown_message_is_permanent(
    slack: SlackNotifier,
    slack_api: FakeSlackAPI,  # noqa: F811
) -> None:
    ghost = Receipt("slack-alerts", "1.000001", channel="CGHOST00")
    with pytest.raises(DeliveryError) as info:
        await slack.update_sources(ghost, sample_match(), 2)
    assert info.value.reason == "message_not_found" and not info.value.retryable


@pytest.mark.parametrize("retry_after", ["1", "5", "30"])
async def test_slack_429_is_retryable_with_retry_after(
    slack: SlackNotifier,
    slack_api: FakeSlackAPI,  # noqa: F811
    retry_after: str,
) -> None:
    slack_api.script("chat.postMessage", status=429, headers={"Retry-After": retry_after})
    with pytest.raises(DeliveryError) as info:
        await slack.send(sample_match())
    error = info.value
    assert error.reason == "rate_limited" and error.retryable
    assert error.retry_after == float(retry_after)
    # slack_sdk's own retry handler is disabled: exactly one request, no silent wait.
    assert len(slack_api.calls) == 1 and slack_api.messages == []
    # Our pipeline retries: the next attempt goes through.
    await slack.send(sample_match())
    assert len(slack_api.messages) == 1


async def test_slack_ok_false_ratelimited_is_retryable(
    slack: SlackNotifier,
    slack_api: FakeSlackAPI,  # noqa: F811
) -> None:
    slack_api.script("chat.postMessage", ok=False, error="ratelimited")
    with pytest.raises(DeliveryError) as info:
        await slack.send(sample_match())
    assert info.value.reason == "rate_limited" and info.value.retryable


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_slack_5xx_is_retryable(
    slack: SlackNotifier,
    slack_api: FakeSlackAPI,  # noqa: F811
    status: int,
) -> None:
    slack_api.script("chat.postMessage", status=status)
    with pytest.raises(DeliveryError) as info:
        await slack.send(sample_match())
    assert info.value.reason == "http_5xx" and info.value.retryable
    assert len(slack_api.calls) == 1  # no hidden SDK retry for any of them


async def test_slack_5xx_with_json_body_is_retryable(
    slack: SlackNotifier,
    slack_api: FakeSlackAPI,  # noqa: F811
) -> None:
    slack_api.script("chat.postMessage", status=503, error="service_unavailable")
    with pytest.raises(DeliveryError) as info:
        await slack.send(sample_match())
    assert info.value.reason == "http_5xx" and info.value.retryable


@pytest.mark.parametrize("error", PERMANENT_SLACK_ERRORS)
async def test_slack_permanent_errors_are_not_retryable(
    slack: SlackNotifier,
    slack_api: FakeSlackAPI,  # noqa: F811
    error: str,
) -> None:
    slack_api.script("chat.postMessage", ok=False, error=error)
    with pytest.raises(DeliveryError) as info:
        await slack.send(sample_match())
    assert info.value.reason == error and not info.value.retryable
    assert len(slack_api.calls) == 1


async def test_slack_unknown_error_is_not_retryable(
    slack: SlackNotifier,
    slack_api: FakeSlackAPI,  # noqa: F811
) -> None:
    slack_api.script("chat.postMessage", ok=False, error="some_new_error")
    with pytest.raises(DeliveryError) as info:
        await slack.send(sample_match())
    assert info.value.reason == "some_new_error" and not info.value.retryable


async def test_slack_invalid_token(slack_api: FakeSlackAPI) -> None:  # noqa: F811
    notifier = SlackNotifier("s", "#alerts", "xoxb-wrong", base_url=slack_api.base_url)
    try:
        with pytest.raises(DeliveryError) as info:
            await notifier.send(sample_match())
    finally:
        await notifier.aclose()
    assert info.value.reason == "invalid_auth" and not info.value.retryable
    assert slack_api.calls[0].authorized is False and slack_api.messages == []
    assert "xoxb-wrong" not in repr(notifier) and "xoxb-wrong" not in str(info.value)


async def test_slack_ambiguous_500_after_store(
    slack: SlackNotifier,
    slack_api: FakeSlackAPI,  # noqa: F811
) -> None:
    # H4: Slack stored the message but answered 500. We report it retryable; the retry
    # duplicates (no idempotency key) — bounding that is the dispatcher's reconciliation.
    slack_api.ambiguous("chat.postMessage")
    with pytest.raises(DeliveryError) as info:
        await slack.send(sample_match())
    assert info.value.retryable and info.value.reason == "http_5xx"
    await slack.send(sample_match())
    assert len(slack_api.messages) == 2  # duplicated = 1 of 1 without reconciliation


async def test_slack_connection_refused_is_retryable() -> None:
    notifier = SlackNotifier(
        "s", "#alerts", SLACK_TEST_TOKEN, base_url=f"http://127.0.0.1:{free_port()}/api/"
    )
    try:
        with pytest.raises(DeliveryError) as info:
            await notifier.send(sample_match())
    finally:
        await notifier.aclose()
    assert info.value.reason == "connection" and info.value.retryable


async def test_slack_read_timeout_is_retryable(slack_api: FakeSlackAPI) -> None:  # noqa: F811
    slack_api.script("chat.postMessage", hang=True)
    notifier = SlackNotifier(
        "s", "#alerts", SLACK_TEST_TOKEN, base_url=slack_api.base_url, timeout=0.3
    )
    try:
        with pytest.raises(DeliveryError) as info:
            await notifier.send(sample_match())
    finally:
        await notifier.aclose()
    assert info.value.reason == "connection" and info.value.retryable


async def test_slack_aclose_is_idempotent_and_reopens(
    slack: SlackNotifier,
    slack_api: FakeSlackAPI,  # noqa: F811
) -> None:
    await slack.send(sample_match())
    await slack.aclose()
    await slack.aclose()
    await slack.send(sample_match())  # a new session is opened on demand
    assert len(slack_api.messages) == 2


def test_notifiers_satisfy_protocol() -> None:
    slack = SlackNotifier("s", "#c", "xoxb-secret")
    mail = EmailNotifier("e", SENDER, [DESK], "127.0.0.1", 25, False, False, "u", "pw-secret")
    console = ConsoleNotifier("c", io.StringIO())
    for notifier in (slack, mail, console):
        assert isinstance(notifier, Notifier)
    assert "xoxb-secret" not in repr(slack) and "pw-secret" not in repr(mail)


async def test_fake_slack_accepts_form_bodies_and_checks_token(
    slack_api: FakeSlackAPI,  # noqa: F811
) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    form = {"channel": "C0123456", "text": "hi", "blocks": json.dumps(blocks)}
    async with aiohttp.ClientSession() as session:
        url = slack_api.base_url + "chat.postMessage"
        headers = {"Authorization": f"Bearer {SLACK_TEST_TOKEN}"}
        async with session.post(url, data=form, headers=headers) as response:
            body = await response.json()
        async with session.post(url, data=form) as response:
            anonymous = await response.json()
    await slack_api.wait_for_calls(2)
    assert body["ok"] is True and body["channel"] == "C0123456"
    assert anonymous == {"ok": False, "error": "not_authed"}
    assert slack_api.calls[0].payload["blocks"] == blocks
    assert len(slack_api.messages) == 1


def test_email_tls_and_starttls_are_exclusive() -> None:
    with pytest.raises(ValueError):
        EmailNotifier("e", SENDER, [DESK], "127.0.0.1", 465, True, True, None, None)


def test_receipt_json_round_trip() -> None:
    receipt = Receipt("e", "<id@x>", refused=(RefusedRecipient("b@x", 550, "no such user"),))
    assert Receipt.from_json(receipt.to_json()) == receipt
    slack_receipt = Receipt("s", "1.000001", channel="C1")
    assert Receipt.from_json(slack_receipt.to_json()) == slack_receipt


# --------------------------------------------------------------------------- e-mail


async def test_email_delivered_once_with_exact_subject(smtp_sink: SMTPSink) -> None:  # noqa: F811
    notifier = email_notifier(smtp_sink, (DESK, "oncall@example.com"))
    receipt = await notifier.send(sample_match())

    (received,) = smtp_sink.messages
    assert received.mail_from == SENDER
    assert received.rcpt_tos == (DESK, "oncall@example.com")
    assert received.message["Subject"] == (
        f"[newswatch] high Accords militaires au Maghreb: {TITLE}"
    )
    assert received.message["Message-ID"] == receipt.ref
    assert receipt.refused == () and receipt.receiver == "email-desk"
    assert received.message.get_content_type() == "multipart/alternative"


@pytest.mark.parametrize(
    "breaker", ["\r\n", "\n", "\r", "\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\v", "\f"]
)
async def test_email_f1_header_injection(smtp_sink: SMTPSink, breaker: str) -> None:  # noqa: F811
    title = f"Alerte{breaker}Bcc: victim@example.com{breaker}X-Evil: 1{breaker}accord militaire"
    await email_notifier(smtp_sink).send(sample_match(title=title))

    (received,) = smtp_sink.messages
    assert received.rcpt_tos == (DESK,)  # victim never in the envelope
    message = received.message
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert sorted(message.keys()) == sorted(
        [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "MIME-Version",
            "Content-Type",
        ]
    )
    subject = message["Subject"]
    assert subject.splitlines() == [subject]
    assert "Alerte Bcc: victim@example.com X-Evil: 1 accord militaire" in subject
    assert b"\r\nBcc:" not in received.data and b"\nX-Evil" not in received.data


async def test_email_f3_non_ascii_2000_char_subject(smtp_sink: SMTPSink) -> None:  # noqa: F811
    title = ("Été à Rabat : l'accord militaire franco-marocain « historique » 🚨 " * 40)[:2000]
    match = sample_match(title=title)
    expected = str(render_email(match, sender=SENDER, recipients=[DESK])["Subject"])
    await email_notifier(smtp_sink).send(match)

    (received,) = smtp_sink.messages
    assert received.message["Subject"] == expected
    assert len(expected) == 200 and expected.endswith("…")
    head = received.data.split(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))


@pytest.mark.parametrize(
    "title", [".", "..", ". accord militaire", "From Rabat, accord militaire", "From "]
)
async def test_email_f3_dot_and_from_lines_intact(smtp_sink: SMTPSink, title: str) -> None:  # noqa: F811
    match = sample_match(title=title)
    await email_notifier(smtp_sink).send(match)

    (received,) = smtp_sink.messages
    text = received.message.get_body(preferencelist=("plain",))
    assert text is not None
    first_line = text.get_content().splitlines()[0]
    assert first_line == title.strip()
    assert b"\n>From" not in received.data
    sent = render_email(match, sender=SENDER, recipients=[DESK])
    sent_text = sent.get_body(preferencelist=("plain",))
    assert sent_text is not None
    # Byte-exact after decoding, once the wire's CRLF line ends are read back as "\n".
    assert text.get_content().replace("\r\n", "\n") == sent_text.get_content()


async def test_email_f3_ten_thousand_char_line(smtp_sink: SMTPSink) -> None:  # noqa: F811
    title = "accord militaire " + "x" * 10_000
    await email_notifier(smtp_sink).send(sample_match(title=title))
    (received,) = smtp_sink.messages
    assert all(len(line) <= 998 for line in received.data.split(b"\r\n"))
    text = received.message.get_body(preferencelist=("plain",))
    assert text is not None
    assert text.get_content().splitlines()[0].startswith("accord militaire xxxx")


async def test_email_f5_recipients_only_from_config(smtp_sink: SMTPSink) -> None:  # noqa: F811
    match = sample_match(
        title="To: attacker@evil.example accord militaire", feed="attacker@evil.example"
    )
    await email_notifier(smtp_sink).send(match)
    (received,) = smtp_sink.messages
    assert received.rcpt_tos == (DESK,)
    assert received.message["To"] == DESK and received.message["Cc"] is None


async def test_email_451_then_ok(smtp_sink: SMTPSink) -> None:  # noqa: F811
    notifier = email_notifier(smtp_sink)
    smtp_sink.script("DATA", "451 4.3.0 Try again later")
    with pytest.raises(DeliveryError) as info:
        await notifier.send(sample_match())
    assert info.value.reason == "smtp_4xx" and info.value.retryable
    assert smtp_sink.messages == []
    await notifier.send(sample_match())
    assert len(smtp_sink.messages) == 1 and smtp_sink.data_attempts == 2


@pytest.mark.parametrize(("stage", "code"), [("MAIL", 421), ("RCPT", 450), ("RCPT", 452)])
async def test_email_4xx_is_retryable(smtp_sink: SMTPSink, stage: str, code: int) -> None:  # noqa: F811
    smtp_sink.script(stage, f"{code} 4.0.0 Later")  # type: ignore[arg-type]
    with pytest.raises(DeliveryError) as info:
        await email_notifier(smtp_sink).send(sample_match())
    assert info.value.reason == "smtp_4xx" and info.value.retryable


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("RCPT", "550 5.1.1 No such user"),
        ("RCPT", "553 5.1.3 Bad address"),
        ("DATA", "554 5.7.1 Rejected as spam"),
        ("MAIL", "550 5.7.1 Sender refused"),
    ],
)
async def test_email_5xx_is_not_retryable(smtp_sink: SMTPSink, stage: str, reply: str) -> None:  # noqa: F811
    smtp_sink.script(stage, reply)  # type: ignore[arg-type]
    with pytest.raises(DeliveryError) as info:
        await email_notifier(smtp_sink).send(sample_match())
    assert info.value.reason == "smtp_5xx" and not info.value.retryable
    assert smtp_sink.messages == []


async def test_email_partial_refusal_delivers_to_the_good_ones(smtp_sink: SMTPSink) -> None:  # noqa: F811
    bad = "gone@example.com"
    smtp_sink.script("RCPT", "550 5.1.1 No such user", address=bad)
    notifier = email_notifier(smtp_sink, (DESK, bad, "oncall@example.com"))
    receipt = await notifier.send(sample_match())

    (received,) = smtp_sink.messages
    assert received.rcpt_tos == (DESK, "oncall@example.com")
    assert receipt.refused == (RefusedRecipient(bad, 550, "5.1.1 No such user"),)


async def test_email_all_refused_lists_recipients(smtp_sink: SMTPSink) -> None:  # noqa: F811
    smtp_sink.script("RCPT", "550 5.1.1 No such user", times=2)
    notifier = email_notifier(smtp_sink, (DESK, "oncall@example.com"))
    with pytest.raises(DeliveryError) as info:
        await notifier.send(sample_match())
    assert not info.value.retryable and info.value.reason == "smtp_5xx"
    assert DESK in info.value.message and "oncall@example.com" in info.value.message


async def test_email_connection_refused_is_retryable() -> None:
    notifier = EmailNotifier(
        "e", SENDER, [DESK], "127.0.0.1", free_port(), False, False, None, None, timeout=5
    )
    with pytest.raises(DeliveryError) as info:
        await notifier.send(sample_match())
    assert info.value.reason == "connection" and info.value.retryable


async def test_email_starttls_required_but_not_offered(smtp_sink: SMTPSink) -> None:  # noqa: F811
    notifier = EmailNotifier(
        "e", SENDER, [DESK], smtp_sink.host, smtp_sink.port, True, False, None, None, timeout=5
    )
    with pytest.raises(DeliveryError) as info:
        await notifier.send(sample_match())
    assert not info.value.retryable and info.value.reason == "smtp_unsupported"
    assert smtp_sink.messages == []


async def test_email_reply_and_update_send_nothing(smtp_sink: SMTPSink) -> None:  # noqa: F811
    notifier = email_notifier(smtp_sink)
    parent = await notifier.send(sample_match())
    assert await notifier.reply(sample_match(feed="Autre"), parent) is parent
    await notifier.update_sources(parent, sample_match(), 5)
    assert len(smtp_sink.messages) == 1


# --------------------------------------------------------------------------- console


async def test_console_notifier() -> None:
    out = io.StringIO()
    notifier = ConsoleNotifier("console", out)
    match = sample_match(title="Titre\x1b[2J accord militaire")
    parent = await notifier.send(match)
    await notifier.reply(sample_match(feed="Autre\x07 Journal"), parent)
    await notifier.update_sources(parent, match, 2)
    await notifier.aclose()
    text = out.getvalue()
    assert text.startswith("[HIGH] Accords militaires au Maghreb (maghreb-military)\n")
    assert "why: accord militaire" in text
    assert "↳ also reported by Autre Journal" in text
    assert "\x1b" not in text and "\x07" not in text
    assert parent.ref == f"maghreb-military:{match.article.id}"


async def test_console_broken_stream_is_delivery_error() -> None:
    stream = io.StringIO()
    stream.close()
    with pytest.raises(DeliveryError) as info:
        await ConsoleNotifier("console", stream).send(sample_match())
    assert info.value.reason == "console_io"
