"""Text from outside (feed fields, HTTP reason phrases, servers' error messages, file
names) made safe to print on a terminal or in a one-line log field or table row.

A control character can retitle or clear the terminal (``ESC ] 0;…``, ``ESC [2J``), a line
break can forge a log line or split a table row, a bidi override can reverse what the reader
sees. Each one becomes a visible escape (``\\x1b``, ``\\n``, ``\\u202e``); other text is left
as it is. JSON output needs none of this: the encoder escapes it.
"""

from __future__ import annotations

import re

__all__ = ["one_line", "printable"]

# DEL and the C1 controls, line and paragraph separators, the bidi embeddings, overrides
# and isolates; with the C0 controls, all of them or all but the line feed.
_OTHERS = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_ANY = re.compile(f"[\x00-\x1f{_OTHERS}]")
_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}]")


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return {9: "\\t", 10: "\\n", 13: "\\r"}.get(code) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def one_line(text: str) -> str:
    """``text`` on one line, with every control character escaped."""
    return _ANY.sub(_escape, text)


def printable(text: str) -> str:
    """``text`` with every control character escaped but its line breaks (``\\n``) kept:
    for multi-line messages printed as such (rule errors, one ``path:line`` per line)."""
    return _BUT_NEWLINE.sub(_escape, text)
