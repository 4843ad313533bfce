"""Log setup of the ``newswatch`` command: readable lines on a terminal, JSON lines otherwise.

Every JSON line has ``time`` (ISO 8601 UTC), ``level``, ``logger`` and ``message``, plus the
shared keys ``feed``, ``rule_id``, ``article_id``, ``verdict`` and ``receiver`` when the call
passed them (``log.info("sent", extra={"feed": ..., "receiver": ...})``), and ``error`` with
the traceback when one was logged. The keys are the same in every runtime, so one query
(``jq 'select(.feed == "rfi-afrique")'``) follows a feed through poll, match and delivery.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any, TextIO

from newswatch.core.printable import one_line

__all__ = ["SHARED_KEYS", "JsonFormatter", "TextFormatter", "setup_logging", "take_over_logging",
           "use_json"]

SHARED_KEYS = ("feed", "rule_id", "article_id", "verdict", "receiver")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in SHARED_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``%(asctime)s %(levelname)s %(name)s: %(message)s``, the message on one line with
    its control characters escaped (``newswatch.core.printable``): a feed title or a
    server's reason phrase cannot forge a log line or drive the terminal. A traceback
    follows on its own lines, as usual."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        record.message = one_line(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message


def use_json(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """JSON unless ``stream`` is a terminal; ``NEWSWATCH_LOG_FORMAT=json|text`` overrides."""
    env = os.environ if environ is None else environ
    forced = env.get("NEWSWATCH_LOG_FORMAT", "").strip().lower()
    if forced in ("json", "text"):
        return forced == "json"
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def setup_logging(stream: TextIO, *, verbose: bool = False,
                  environ: dict[str, str] | None = None) -> logging.Handler | None:
    """Configure the root logger for the command, like ``logging.basicConfig``: nothing is
    changed when the root logger already has a handler (a host such as pytest owns it).
    Returns the handler installed, or None."""
    root = logging.getLogger()
    if root.handlers:
        return None
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json(stream, environ)
                         else TextFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return handler


def take_over_logging(stream: TextIO, *, verbose: bool = False,
                      environ: dict[str, str] | None = None) -> logging.Handler:
    """``setup_logging`` after removing the root logger's handlers: for a host that installs
    its own (faust's worker installs a coloured handler with its own line format and prints
    multi-line tables), so that the worker logs like every other command. Returns the
    handler installed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    installed = setup_logging(stream, verbose=verbose, environ=environ)
    assert installed is not None  # the root logger has no handler left
    return installed
