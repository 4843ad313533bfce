"""Structured logs: JSON lines with the shared keys when not on a terminal."""

from __future__ import annotations

import io
import json
import logging

import pytest

from newswatch.core.logs import (
    SHARED_KEYS,
    JsonFormatter,
    TextFormatter,
    setup_logging,
    take_over_logging,
    use_json,
)
from newswatch.core.printable import one_line, printable


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("newswatch.delivery", logging.WARNING, __file__, 1,
                            "sent %s", ("ok",), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_line_has_base_and_shared_keys() -> None:
    line = JsonFormatter().format(record(feed="rfi-afrique", rule_id="sahel",
                                         article_id="a1", verdict="send",
                                         receiver="maghreb-desk"))
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "warning" and data["logger"] == "newswatch.delivery"
    assert data["message"] == "sent ok" and data["time"].endswith("Z")
    assert {k: data[k] for k in SHARED_KEYS} == {
        "feed": "rfi-afrique", "rule_id": "sahel", "article_id": "a1", "verdict": "send",
        "receiver": "maghreb-desk"}


def test_absent_shared_keys_are_left_out_and_exceptions_kept() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = record()
        rec.exc_info = sys.exc_info()
    data = json.loads(JsonFormatter().format(rec))
    assert not set(SHARED_KEYS) & set(data)
    assert "ValueError: boom" in data["error"]


def test_format_is_json_off_a_terminal_text_on_it_and_env_overrides() -> None:
    assert use_json(io.StringIO(), {}) is True
    assert use_json(Tty(), {}) is False
    assert use_json(Tty(), {"NEWSWATCH_LOG_FORMAT": "json"}) is True
    assert use_json(io.StringIO(), {"NEWSWATCH_LOG_FORMAT": "text"}) is False


def test_setup_logging_installs_json_handler_on_a_bare_root() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = []
    try:
        out = io.StringIO()
        handler = setup_logging(out, environ={})
        assert handler is not None
        logging.getLogger("newswatch.poll").info("polled", extra={"feed": "bbc-africa"})
        data = json.loads(out.getvalue())
        assert data["feed"] == "bbc-africa" and data["message"] == "polled"
        # a host that already owns the root logger (pytest, an embedding app) is left alone
        assert setup_logging(io.StringIO(), environ={}) is None
    finally:
        root.handlers, root.level = saved, level


def test_take_over_logging_replaces_a_hosts_handlers_with_ours() -> None:
    """faust's worker installs its own handler and line format; the worker then takes the
    root logger back, so its lines are ours (one line each, escaped)."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    hosts = io.StringIO()
    root.handlers = [logging.StreamHandler(hosts)]
    try:
        out = io.StringIO()
        take_over_logging(out, environ={"NEWSWATCH_LOG_FORMAT": "text"})
        logging.getLogger("newswatch.worker").warning(
            "title %s", "x\x1b[2J\n2026-12-02 16:30:00,000 ERROR newswatch.rules: forged")
        assert root.handlers and hosts.getvalue() == ""
        (line,) = out.getvalue().splitlines()
        assert "\x1b" not in line and "WARNING newswatch.worker: title x" in line
    finally:
        root.handlers, root.level = saved, level


async def test_delivery_decisions_are_logged_with_the_shared_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.fakes.clock import VirtualTime
    from tests.fakes.notifiers import RecordingNotifier
    from tests.test_pipeline import make, story, with_receivers

    time = VirtualTime()
    pipeline, *_ = make({"desk": RecordingNotifier("desk", time)}, time)
    match = with_receivers(story(1), "desk")
    with caplog.at_level(logging.INFO, logger="newswatch"):
        await pipeline.deliver(match)
        await time.run(pipeline.drain())
    await pipeline.aclose()
    records = [r for r in caplog.records if getattr(r, "verdict", None)]
    assert records
    data = json.loads(JsonFormatter().format(records[0]))
    assert data["rule_id"] == match.rule_id and data["receiver"] == "desk"
    assert data["verdict"] == "send" and data["article_id"] == match.article.id
    assert data["feed"] == match.article.feed


def test_text_lines_escape_what_could_forge_a_line_or_drive_the_terminal() -> None:
    """Issue 15: a feed title or an HTTP reason phrase logged as text could forge a log
    line (a line break) or retitle and clear the terminal (escape sequences)."""
    stream = Tty()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    log = logging.getLogger("newswatch.test-printable")
    log.addHandler(handler)
    try:
        log.warning("feed %s: %s", "rfi", "500 \x1b]0;PWNED\x07\x1b[31mRED\n2026-12-02 "
                    "16:30:00,000 ERROR newswatch.rules: forged")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed\ron purpose")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    first, second = out.split("\n", 1)
    assert first.endswith("500 \\x1b]0;PWNED\\x07\\x1b[31mRED\\n2026-12-02 16:30:00,000 "
                          "ERROR newswatch.rules: forged")
    assert second.startswith(first[:4]) and "failed\\ron purpose" in second
    assert "Traceback (most recent call last)" in second  # the traceback keeps its lines
    assert JsonFormatter().format(logging.LogRecord(
        "x", logging.INFO, __file__, 1, "a\nb", (), None)).count("\n") == 0


def test_printable_keeps_line_breaks_and_text_one_line_escapes_them() -> None:
    text = "ok é ش\tx\u202eevil\x85\nnext"
    assert one_line(text) == "ok é ش\\tx\\u202eevil\\x85\\nnext"
    assert printable(text) == "ok é ش\\tx\\u202eevil\\x85\nnext"
