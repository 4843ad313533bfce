"""The console channel: a :class:`~newswatch.streams.alerts.Match` or a digest as terminal
lines, and :class:`ConsoleNotifier`, which prints them.

Rendering is pure. Feed text is made safe as :mod:`~newswatch.streams.channels.text`
describes, so no ANSI escape from feed text reaches the terminal (docs/reliability.md C9).
"""

from __future__ import annotations

import contextlib
import sys
from typing import TextIO

from newswatch.core.errors import DeliveryError
from newswatch.streams.alerts import Digest, Match
from newswatch.streams.channels.text import (
    DIGEST_KIND,
    FEED_CHARS,
    LONG_TITLE_CHARS,
    clean_text,
    cut_text,
    digest_headline,
    digest_period,
    feed_plain,
    find_snippet,
    published_at,
    snippet_plain,
    title_plain,
    why_items,
)
from newswatch.streams.notifiers import Receipt

__all__ = ["ConsoleNotifier", "render_console", "render_console_digest"]


# --------------------------------------------------------------------------- rendering


def render_console(match: Match) -> str:
    """Human-readable multi-line text for a terminal or a log; every feed-derived line is
    cleaned of control characters (no ANSI escapes from feed text can reach the terminal)."""
    article = match.article
    lines = [
        f"[{match.severity.upper()}] {clean_text(match.title)} ({clean_text(match.rule_id)})",
        f"  {title_plain(match, LONG_TITLE_CHARS)}",
    ]
    if url := clean_text(article.url):
        lines.append(f"  {url}")
    meta = feed_plain(match)
    if published := published_at(match):
        meta = f"{meta} · {published}"
    lines.append(f"  {meta}")
    snippet = find_snippet(match)
    if snippet and (text := snippet_plain(snippet, ("[", "]"))):
        lines.append(f"  {text}")
    for item in why_items(match):
        lines.append(f"  why: {item}")
    if match.escalation is not None:
        lines.insert(1, f"  ESCALATED: {clean_text(match.escalation.summary())}")
    return "\n".join(lines)


def render_console_digest(digest: Digest) -> str:
    """A digest as terminal lines; every feed-derived line cleaned like
    :func:`render_console`."""
    lines = [f"[{digest.severity.upper()}] {clean_text(digest_headline(digest))} "
             f"({clean_text(digest.rule_id)})", f"  queued {digest_period(digest)}"]
    for entry in digest.entries:
        title = cut_text(clean_text(entry.title), LONG_TITLE_CHARS) or "(untitled)"
        feed = cut_text(clean_text(entry.feed), FEED_CHARS) or "(unknown source)"
        kind = DIGEST_KIND.get(entry.kind, clean_text(entry.kind))
        lines.append(f"  - {title} ({feed}; {kind})")
        if url := clean_text(entry.url):
            lines.append(f"    {url}")
    if digest.more:
        lines.append(f"  - … and {digest.more} more")
    return "\n".join(lines)


# --------------------------------------------------------------------------- printing


class ConsoleNotifier:
    """Prints :func:`render_console` to ``stream`` (stdout by default).

    Useful for dry runs and the embedded mode. Never fails except on a broken stream, which
    is reported as a retryable ``console_io`` error."""

    threads = True
    min_interval = 0.0

    def __init__(self, name: str, stream: TextIO = sys.stdout) -> None:
        self.name = name
        self.stream = stream
        self.lane = f"console:{name}"

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            with contextlib.suppress(AttributeError):
                self.stream.flush()
        except (OSError, ValueError) as exc:
            raise DeliveryError("console_io", str(exc), retryable=True) from exc

    async def send(self, match: Match, ident: str | None = None) -> Receipt:
        """Print the alert; ``ref`` is ``rule_id:article_id``."""
        self._write(render_console(match))
        return Receipt(receiver=self.name, ref=f"{match.rule_id}:{match.article.id}")

    async def digest(self, digest: Digest, ident: str | None = None) -> Receipt:
        """Print the digest; ``ref`` is ``rule_id:digest:opened``."""
        self._write(render_console_digest(digest))
        return Receipt(receiver=self.name, ref=f"{digest.rule_id}:digest:{digest.opened:.0f}")

    async def find(self, ident: str, *, since: float, where: Receipt | None,
                   in_thread: bool = False) -> Receipt | None:
        """None: printed lines cannot be looked up."""
        return None

    async def reply(self, match: Match, parent: Receipt, ident: str | None = None) -> Receipt:
        """Print one indented "also reported by" line under the original alert (for an
        escalation's note: "escalated: N sources, fr + ar")."""
        article = match.article
        if match.escalation is not None:
            self._write(f"  ↳ {clean_text(match.escalation.describe())} [{parent.ref}]")
            return Receipt(receiver=self.name, ref=f"{match.rule_id}:escalated:{parent.ref}")
        feed = clean_text(article.feed) or "(unknown source)"
        self._write(f"  ↳ also reported by {feed}: {clean_text(article.title)} [{parent.ref}]")
        return Receipt(receiver=self.name, ref=f"{match.rule_id}:{article.id}")

    async def update_sources(self, parent: Receipt, match: Match, sources: int) -> None:
        """No-op: printed lines cannot be edited."""

    async def aclose(self) -> None:
        """No-op."""
