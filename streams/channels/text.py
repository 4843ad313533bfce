"""What every channel's renderer shares: feed text made safe, cut, and summarised.

Every function here is pure: no I/O, no clock.

Contract for feed-derived text (article title, summary, content, feed name, evidence text,
URL) — it is hostile (docs/reliability.md §5, groups C, D, E, F):

* It arrives as *plain text*, entity-decoded exactly once upstream. It is never evaluated as
  a template (E8): it is only ever concatenated or passed to ``html.escape``.
* Control characters (C0, C1, DEL), every ``str.splitlines()`` separator, bidi overrides
  and lone surrogates are replaced by a space before anything else (C8, C9, F1), and runs of
  whitespace collapse to one space (:func:`clean_text`).
* Links: only an http(s) URL that passed :func:`safe_link_url` is ever made clickable;
  anything else (``javascript:``, ``data:``, …) is shown as inert text (D7).

Each channel adds its own escaping on top: Slack in
:mod:`~newswatch.streams.channels.slack_render`, e-mail in
:mod:`~newswatch.streams.channels.email`, the console in
:mod:`~newswatch.streams.channels.console`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit, urlunsplit

from newswatch.core.article import FIELDS, Field
from newswatch.rules.evidence import Evidence
from newswatch.streams.alerts import Digest, DigestEntry, Match

__all__ = [
    "DIGEST_KIND",
    "ELLIPSIS",
    "FEED_CHARS",
    "LONG_TITLE_CHARS",
    "SPACES_RE",
    "Snippet",
    "clean_inline",
    "clean_text",
    "cut_text",
    "digest_headline",
    "digest_period",
    "ellipsised",
    "entry_published_at",
    "feed_plain",
    "find_snippet",
    "published_at",
    "safe_link_url",
    "snippet_plain",
    "title_plain",
    "why_items",
]

# Title, URL and text budgets, in characters of plain text, before escaping.
FEED_CHARS = 200
_URL_CHARS = 2000
_SNIPPET_BEFORE = 120
_SNIPPET_AFTER = 280
_SNIPPET_SPAN = 200
#: The title budget of e-mail and the console (Slack has a shorter one).
LONG_TITLE_CHARS = 1000
ELLIPSIS = "…"

# C0, DEL, C1, line/paragraph separators, bidi embeddings/overrides/isolates and marks,
# zero-width space/no-break/BOM, and lone surrogates (invalid in UTF-8, would crash the
# e-mail serialiser). ZWJ/ZWNJ are kept: emoji sequences and some scripts need them.
_UNSAFE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    "\u200b\u2060\ufeff\ud800-\udfff"
    "\u115f\u1160\u3164\uffa0]"  # Hangul fillers: letters that render as nothing
)
SPACES_RE = re.compile(r"\s+")
# Characters kept verbatim in a link URL; everything else (space, |, <, >, ", `, {, }, ^,
# backslash, non-ASCII) is percent-encoded. ``%`` is kept so existing escapes survive.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~-._"


# --------------------------------------------------------------------------- plain text


def clean_text(text: str) -> str:
    """``text`` as one safe line: unsafe characters (see module doc) become spaces,
    whitespace runs collapse to one space, ends are stripped."""
    return SPACES_RE.sub(" ", _UNSAFE_RE.sub(" ", text)).strip()


def clean_inline(text: str) -> str:
    """Like :func:`clean_text` but keeps one leading/trailing space, so pieces of a
    sentence can be concatenated without gluing words."""
    return SPACES_RE.sub(" ", _UNSAFE_RE.sub(" ", text))


def cut_text(text: str, limit: int) -> str:
    """At most ``limit`` code points, ending with "…" when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + ELLIPSIS


# --------------------------------------------------------------------------- links


def safe_link_url(url: str) -> str | None:
    """The URL to use in a clickable link, or None when it must be shown as text.

    Accepted: ``http``/``https`` with a host, no user-info (``https://bank@evil`` is a
    spoofing trick), no control characters, at most 2,000 characters once normalised. The
    host is IDNA-encoded; ``|``, ``<``, ``>``, spaces, quotes and non-ASCII are
    percent-encoded so the URL can sit inside Slack's ``<url|text>`` and an HTML attribute.
    """
    url = url.strip()
    if not url or _UNSAFE_RE.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    if ":" in host:  # IPv6 literal: urlsplit already validated the brackets
        netloc = f"[{host}]"
    else:
        try:
            netloc = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
        if not re.fullmatch(r"[A-Za-z0-9.-]+", netloc):
            return None
    if port is not None:
        netloc = f"{netloc}:{port}"
    out = urlunsplit(
        (
            scheme,
            netloc,
            quote(parts.path, safe=_URL_SAFE),
            quote(parts.query, safe=_URL_SAFE),
            quote(parts.fragment, safe=_URL_SAFE),
        )
    )
    return out if len(out) <= _URL_CHARS else None


def published_at(match: Match) -> str:
    published = match.article.published
    if published is None:
        return ""
    if published.tzinfo is not None:
        published = published.astimezone(UTC)
    return published.strftime("%Y-%m-%d %H:%M UTC")


def title_plain(match: Match, limit: int) -> str:
    return cut_text(clean_text(match.article.title), limit) or "(untitled)"


def feed_plain(match: Match) -> str:
    return cut_text(clean_text(match.article.feed), FEED_CHARS) or "(unknown source)"


# --------------------------------------------------------------------------- snippet


@dataclass(frozen=True, slots=True)
class Snippet:
    """A window of one field: ``pieces`` alternate (text, is_match)."""

    pieces: tuple[tuple[str, bool], ...]
    cut_before: bool
    cut_after: bool


def _valid_span(text: str, ev: Evidence) -> tuple[int, int] | None:
    if 0 <= ev.start < ev.end <= len(text):
        return ev.start, ev.end
    # Stale offsets (text re-normalised since matching): find the matched text instead.
    needle = ev.text.strip().casefold()
    folded = text.casefold()
    # casefold can lengthen text (ß → ss); offsets in ``folded`` are only offsets in
    # ``text`` when no character changed length.
    if needle and len(folded) == len(text):
        found = folded.find(needle)
        if found != -1:
            return found, found + len(needle)
    return None


def find_snippet(match: Match) -> Snippet | None:
    """Text around the first evidence, with every evidence span of that field marked; the
    first evidence in the article page's ``body`` when there is one (the page's sentence is
    the one worth quoting: the feed's own text is a teaser)."""
    article = match.article
    field: Field | None = None
    anchor: tuple[int, int] | None = None
    in_body = [ev for ev in match.evidence if ev.field == "body"]
    for ev in (*in_body, *match.evidence):
        if ev.field in FIELDS:
            span = _valid_span(article.text(ev.field), ev)
            if span is not None:
                field, anchor = ev.field, span
                break
    if field is None or anchor is None:
        fallback_fields: tuple[Field, ...] = ("summary", "content", "body", "title")
        for name in fallback_fields:
            if article.text(name).strip():
                field = name
                break
        if field is None:
            return None
        anchor = (0, 0)
    text = article.text(field)
    # A very long evidence span (a whole paragraph) still yields a short snippet.
    anchor = (anchor[0], min(anchor[1], anchor[0] + _SNIPPET_SPAN))
    start = max(anchor[0] - _SNIPPET_BEFORE, 0)
    end = min(anchor[1] + _SNIPPET_AFTER, len(text))
    # Snap to word boundaries so the window does not start or end mid-word.
    if start > 0:
        space = text.find(" ", start, anchor[0])
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", anchor[1], end)
        end = space if space != -1 else end

    spans = sorted(
        span
        for ev in match.evidence
        if ev.field == field and (span := _valid_span(text, ev)) is not None
    )
    pieces: list[tuple[str, bool]] = []
    pos = start
    for s, e in spans:
        s, e = max(s, pos), min(e, end)
        if s >= e:
            continue  # overlapping, or outside the window
        pieces.append((text[pos:s], False))
        pieces.append((text[s:e], True))
        pos = e
    pieces.append((text[pos:end], False))
    return Snippet(tuple(p for p in pieces if p[0]), start > 0, end < len(text))


def ellipsised(snippet: Snippet, body: str) -> str:
    pre = ELLIPSIS if snippet.cut_before else ""
    post = ELLIPSIS if snippet.cut_after else ""
    return f"{pre}{body}{post}"


def snippet_plain(snippet: Snippet, mark: tuple[str, str] = ("", "")) -> str:
    out: list[str] = []
    for text, is_match in snippet.pieces:
        cleaned = clean_inline(text)
        core = cleaned.strip(" ")
        if is_match and core and any(mark):
            lead = " " if cleaned.startswith(" ") else ""
            trail = " " if cleaned.endswith(" ") else ""
            cleaned = f"{lead}{mark[0]}{core}{mark[1]}{trail}"
        out.append(cleaned)
    body = clean_text("".join(out))
    if not body:
        return ""
    return ellipsised(snippet, body)


def why_items(match: Match) -> list[str]:
    """One line per distinct explanation: the same phrase in the title and the body says
    the same thing twice."""
    return list(dict.fromkeys(clean_text(ev.explain()) for ev in match.evidence))


# --------------------------------------------------------------------------- digests

DIGEST_KIND = {"throttled": "over the hourly limit", "same_story": "also reported"}


def entry_published_at(entry: DigestEntry) -> str:
    published = entry.published
    if published is None:
        return ""
    if published.tzinfo is not None:
        published = published.astimezone(UTC)
    return published.strftime("%Y-%m-%d %H:%M UTC")


def digest_period(digest: Digest) -> str:
    def fmt(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")

    return f"{fmt(digest.opened)} – {fmt(digest.closed)}"


def digest_headline(digest: Digest) -> str:
    rule = clean_text(digest.rule_title) or clean_text(digest.rule_id)
    return f"{rule}: digest of {digest.count} match{'es' if digest.count != 1 else ''}"
