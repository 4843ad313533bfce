"""Turning a :class:`~newswatch.streams.alerts.Match` into Slack, e-mail and console text.

Every function here is pure: no I/O, no clock except the ``Date`` header of an e-mail.

Contract for feed-derived text (article title, summary, content, feed name, evidence text,
URL) — it is hostile (docs/reliability.md §5, groups C, D, E, F):

* It arrives as *plain text*, entity-decoded exactly once upstream. It is never evaluated as
  a template (E8): it is only ever concatenated or passed to ``html.escape``.
* Control characters (C0, C1, DEL), every ``str.splitlines()`` separator, bidi overrides
  and lone surrogates are replaced by a space before anything else (C8, C9, F1), and runs of
  whitespace collapse to one space.
* Slack: ``&``, ``<`` and ``>`` are escaped (so ``<!channel>``, ``<@U…>``, ``<#C…>``,
  ``<!subteam^…>`` and ``<url|text>`` arrive as inert ``&lt;…&gt;``, E1/E3), and the mrkdwn
  markers ``*``, ``_``, ``~`` and the backtick are replaced by look-alike characters
  (:data:`MRKDWN_LOOKALIKES`) so feed text cannot open bold, italics, strike or code spans
  (E5). Slack has no escape for these characters; look-alikes are deterministic, whereas
  zero-width joiners depend on Slack's word-boundary rules. A leading ``>`` (a block quote
  at the start of a line) becomes ``›``. All mrkdwn text objects carry ``verbatim: true`` so
  Slack does not auto-link bare URLs or channel names in feed text.
* The only ``<…>`` sequence we emit is our own link ``<url|title>``, and only for an http(s)
  URL that passed :func:`safe_link_url`; anything else (``javascript:``, ``data:``, …) is
  shown as inert text (D7). The only ``*`` we emit are our own bold markers.
* E-mail: ``EmailMessage`` with ``policy.SMTP`` (F2); the subject is one line of at most
  200 characters (F1); every feed-derived string in the HTML part goes through
  ``html.escape`` and links exist only for http(s) URLs; no remote resources (F4).
"""

from __future__ import annotations

import base64
import email.policy
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from newswatch.core.article import FIELDS, Field
from newswatch.rules.evidence import Evidence
from newswatch.streams.alerts import Digest, DigestEntry, Match

__all__ = [
    "EMAIL_SUBJECT_LIMIT",
    "MRKDWN_LOOKALIKES",
    "SLACK_FALLBACK_LIMIT",
    "SLACK_HEADER_LIMIT",
    "SLACK_MAX_BLOCKS",
    "SLACK_SECTION_LIMIT",
    "SlackMessage",
    "clean_text",
    "render_console",
    "render_console_digest",
    "render_email",
    "render_email_digest",
    "render_slack",
    "render_slack_digest",
    "render_slack_reply",
    "safe_link_url",
    "slack_escape",
]

# Slack limits (Block Kit reference): a section/context text object holds 3,000 characters,
# a header 150, a message 50 blocks. The top-level ``text`` may hold 40,000, but it is the
# notification fallback, so we keep it to 4,000.
SLACK_SECTION_LIMIT = 3000
SLACK_HEADER_LIMIT = 150
SLACK_MAX_BLOCKS = 50
SLACK_FALLBACK_LIMIT = 4000
EMAIL_SUBJECT_LIMIT = 200

#: Replacement for each Slack mrkdwn marker found in feed text.
MRKDWN_LOOKALIKES: dict[str, str] = {
    "*": "\u2217",  # ∗ ASTERISK OPERATOR
    "_": "\u02cd",  # ˍ MODIFIER LETTER LOW MACRON
    "~": "\u223c",  # ∼ TILDE OPERATOR
    "`": "\u02cb",  # ˋ MODIFIER LETTER GRAVE ACCENT
}
_MRKDWN_TABLE = str.maketrans(MRKDWN_LOOKALIKES)

# Title, URL and text budgets, in characters of plain text, before escaping.
_TITLE_CHARS = 300
_FEED_CHARS = 200
_URL_CHARS = 2000
_SNIPPET_BEFORE = 120
_SNIPPET_AFTER = 280
_SNIPPET_SPAN = 200
_EMAIL_TITLE_CHARS = 1000
_EMAIL_WHY_LINES = 20
_ELLIPSIS = "…"

# C0, DEL, C1, line/paragraph separators, bidi embeddings/overrides/isolates and marks,
# zero-width space/no-break/BOM, and lone surrogates (invalid in UTF-8, would crash the
# e-mail serialiser). ZWJ/ZWNJ are kept: emoji sequences and some scripts need them.
_UNSAFE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    "\u200b\u2060\ufeff\ud800-\udfff]"
)
_SPACES_RE = re.compile(r"\s+")
_SEVERITY_BADGE = {
    "low": "🔵 LOW",
    "medium": "🟡 MEDIUM",
    "high": "🟠 HIGH",
    "critical": "🔴 CRITICAL",
}
# Characters kept verbatim in a link URL; everything else (space, |, <, >, ", `, {, }, ^,
# backslash, non-ASCII) is percent-encoded. ``%`` is kept so existing escapes survive.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~-._"


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A ready ``chat.postMessage``/``chat.update`` body: ``text`` is the notification
    fallback (≤ 4,000 characters), ``blocks`` the Block Kit layout (≤ 50 blocks)."""

    text: str
    blocks: list[dict[str, Any]]


# --------------------------------------------------------------------------- plain text


def clean_text(text: str) -> str:
    """``text`` as one safe line: unsafe characters (see module doc) become spaces,
    whitespace runs collapse to one space, ends are stripped."""
    return _SPACES_RE.sub(" ", _UNSAFE_RE.sub(" ", text)).strip()


def _clean_inline(text: str) -> str:
    """Like :func:`clean_text` but keeps one leading/trailing space, so pieces of a
    sentence can be concatenated without gluing words."""
    return _SPACES_RE.sub(" ", _UNSAFE_RE.sub(" ", text))


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` code points, ending with "…" when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + _ELLIPSIS


def _utf16_len(text: str) -> int:
    # Slack counts limits in UTF-16 code units in practice (an emoji may count twice);
    # measuring that way keeps us under whichever count Slack applies.
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _cut_escaped(text: str, limit: int) -> str:
    """Truncate already-escaped Slack text to ``limit`` UTF-16 units with "…", never
    leaving half of an ``&amp;``/``&lt;``/``&gt;`` entity (every ``&`` in escaped text starts
    one, so cutting before an unterminated ``&`` is enough)."""
    if _utf16_len(text) <= limit:
        return text
    budget = limit - 1  # room for the ellipsis
    cut = text[:budget]
    while _utf16_len(cut) > budget:
        cut = cut[: len(cut) - (_utf16_len(cut) - budget)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + _ELLIPSIS


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


# --------------------------------------------------------------------------- Slack text


def slack_escape(text: str) -> str:
    """Escape the three characters Slack reserves: ``&`` → ``&amp;``, ``<`` → ``&lt;``,
    ``>`` → ``&gt;``. Input is plain text (decoded once upstream), so ``AT&T`` becomes
    ``AT&amp;T``, which Slack displays as ``AT&T``; ``&amp;`` in the input really was the
    five characters and is shown as such (``&amp;amp;``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md(text: str, *, inline: bool = False) -> str:
    """Feed text as inert Slack mrkdwn (cleaned, markers neutralised, escaped)."""
    plain = _clean_inline(text) if inline else clean_text(text)
    return slack_escape(plain.translate(_MRKDWN_TABLE))


def _no_quote(md: str) -> str:
    """Neutralise a block quote at the start of a text object (``&gt;`` is what Slack
    itself stores for a typed ``>``, so the escaped form still quotes)."""
    stripped = md.lstrip(" ")
    if stripped.startswith("&gt;"):
        return "›" + stripped[4:]
    return stripped


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack must not auto-link bare URLs or #channel names found in feed text.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(_cut_escaped(text, SLACK_SECTION_LIMIT))]}


def _slack_link(url: str, label_md: str, budget: int) -> str:
    """``<url|label>`` (or the bare label when the URL is not linkable) within ``budget``
    UTF-16 units; the label is shortened, never the URL, so the link stays whole."""
    safe = safe_link_url(url)
    # & is the only Slack-reserved character safe_link_url leaves in a URL.
    target = slack_escape(safe) if safe is not None else None
    if target is None or len(target) > budget // 2:
        return _cut_escaped(label_md, budget)
    return f"<{target}|{_cut_escaped(label_md, budget - len(target) - 3)}>"


def _published(match: Match) -> str:
    published = match.article.published
    if published is None:
        return ""
    if published.tzinfo is not None:
        published = published.astimezone(UTC)
    return published.strftime("%Y-%m-%d %H:%M UTC")


def _title_plain(match: Match, limit: int) -> str:
    return _cut(clean_text(match.article.title), limit) or "(untitled)"


def _feed_plain(match: Match) -> str:
    return _cut(clean_text(match.article.feed), _FEED_CHARS) or "(unknown source)"


# --------------------------------------------------------------------------- snippet


@dataclass(frozen=True, slots=True)
class _Snippet:
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


def _snippet(match: Match) -> _Snippet | None:
    """Text around the first evidence, with every evidence span of that field marked."""
    article = match.article
    field: Field | None = None
    anchor: tuple[int, int] | None = None
    for ev in match.evidence:
        if ev.field in FIELDS:
            span = _valid_span(article.text(ev.field), ev)
            if span is not None:
                field, anchor = ev.field, span
                break
    if field is None or anchor is None:
        fallback_fields: tuple[Field, ...] = ("summary", "content", "title")
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
    return _Snippet(tuple(p for p in pieces if p[0]), start > 0, end < len(text))


def _ellipsised(snippet: _Snippet, body: str) -> str:
    pre = _ELLIPSIS if snippet.cut_before else ""
    post = _ELLIPSIS if snippet.cut_after else ""
    return f"{pre}{body}{post}"


def _snippet_mrkdwn(snippet: _Snippet, budget: int = SLACK_SECTION_LIMIT) -> str:
    """The snippet as mrkdwn with matched words in ``*bold*``, at most ``budget`` UTF-16
    units; when cut, it is cut between pieces or inside a plain piece, so a bold pair is
    never left open."""
    out = _ELLIPSIS if snippet.cut_before else ""
    started = False
    for text, is_match in snippet.pieces:
        piece = _md(text, inline=True)
        if not started:
            piece = _no_quote(piece)
        if out.endswith(" "):
            piece = piece.lstrip(" ")
        if not piece:
            continue
        started = True
        core = piece.strip(" ")
        if is_match and core:
            # Bold only hugs non-space text: keep surrounding spaces outside the markers.
            lead = " " if piece.startswith(" ") else ""
            trail = " " if piece.endswith(" ") else ""
            piece = f"{lead}*{core}*{trail}"
        if _utf16_len(out) + _utf16_len(piece) > budget - 1:
            if is_match:
                return out.rstrip(" ") + _ELLIPSIS
            return _cut_escaped(out + piece, budget)
        out += piece
    if not started:
        return ""
    # The loop kept one unit free, so the closing ellipsis always fits.
    out = out.rstrip(" ")
    return out + _ELLIPSIS if snippet.cut_after else out


def _snippet_plain(snippet: _Snippet, mark: tuple[str, str] = ("", "")) -> str:
    out: list[str] = []
    for text, is_match in snippet.pieces:
        cleaned = _clean_inline(text)
        core = cleaned.strip(" ")
        if is_match and core and any(mark):
            lead = " " if cleaned.startswith(" ") else ""
            trail = " " if cleaned.endswith(" ") else ""
            cleaned = f"{lead}{mark[0]}{core}{mark[1]}{trail}"
        out.append(cleaned)
    body = clean_text("".join(out))
    if not body:
        return ""
    return _ellipsised(snippet, body)


def _why_items(match: Match) -> list[str]:
    """One line per distinct explanation: the same phrase in the title and the body says
    the same thing twice."""
    return list(dict.fromkeys(clean_text(ev.explain()) for ev in match.evidence))


# --------------------------------------------------------------------------- Slack


def _header_text(match: Match) -> str:
    badge = _SEVERITY_BADGE.get(match.severity, match.severity.upper())
    rule = clean_text(match.title) or clean_text(match.rule_id)
    return _cut_escaped(slack_escape(f"{badge} · {rule}"), SLACK_HEADER_LIMIT)


def _fallback_text(match: Match) -> str:
    # The fallback is shown in notifications and is itself parsed as mrkdwn.
    badge = _SEVERITY_BADGE.get(match.severity, match.severity.upper())
    rule = _md(match.title) or _md(match.rule_id)
    title = _md(_title_plain(match, 1000))
    text = f"{slack_escape(badge)} {rule}: {title} ({_md(_feed_plain(match))})"
    return _cut_escaped(text, SLACK_FALLBACK_LIMIT)


def render_slack(match: Match, *, sources: int = 1) -> SlackMessage:
    """Block Kit message for ``match``.

    Layout: header (severity + rule title, plain_text) · section with the article title in
    bold, linked only if :func:`safe_link_url` accepts the URL · context with source and
    published time · section with a snippet around the first evidence, matched words in
    bold · context "Why: …" from ``Evidence.explain()`` joined by " · " · context
    "Reported by N sources" when ``sources > 1``. Every text object fits Slack's limits;
    truncation ends with "…" and never splits an escape.
    """
    title_md = _md(_title_plain(match, _TITLE_CHARS))
    link = _slack_link(match.article.url, title_md, SLACK_SECTION_LIMIT - 2)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _header_text(match)}},
        {
            "type": "section",
            "text": _mrkdwn(f"*{link}*"),
        },
    ]
    meta = _md(_feed_plain(match))
    published = _published(match)
    if published:
        meta = f"{meta} · {published}"
    blocks.append(_context(_no_quote(meta)))

    snippet = _snippet(match)
    snippet_md = _snippet_mrkdwn(snippet) if snippet else ""
    if snippet_md:
        blocks.append({"type": "section", "text": _mrkdwn(snippet_md)})

    why = [slack_escape(item.translate(_MRKDWN_TABLE)) for item in _why_items(match)]
    if why:
        blocks.append(_context("*Why:* " + " · ".join(w for w in why if w)))
    if sources > 1:
        blocks.append(_context(f"Reported by {int(sources)} sources"))
    return SlackMessage(text=_fallback_text(match), blocks=blocks[:SLACK_MAX_BLOCKS])


def render_slack_reply(match: Match) -> SlackMessage:
    """Thread reply: "Also reported by <source>: <title link>" (same escaping rules)."""
    title_md = _md(_title_plain(match, _TITLE_CHARS))
    feed_md = _md(_feed_plain(match))
    prefix = f"Also reported by *{feed_md}*: "
    text = prefix + _slack_link(match.article.url, title_md, SLACK_SECTION_LIMIT - len(prefix))
    fallback = _cut_escaped(f"Also reported by {feed_md}: {title_md}", SLACK_FALLBACK_LIMIT)
    return SlackMessage(text=fallback, blocks=[{"type": "section", "text": _mrkdwn(text)}])


# --------------------------------------------------------------------------- digests

_DIGEST_KIND = {"throttled": "over the hourly limit", "same_story": "also reported"}


def _entry_published(entry: DigestEntry) -> str:
    published = entry.published
    if published is None:
        return ""
    if published.tzinfo is not None:
        published = published.astimezone(UTC)
    return published.strftime("%Y-%m-%d %H:%M UTC")


def _digest_period(digest: Digest) -> str:
    def fmt(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")

    return f"{fmt(digest.opened)} – {fmt(digest.closed)}"


def _digest_headline(digest: Digest) -> str:
    rule = clean_text(digest.rule_title) or clean_text(digest.rule_id)
    return f"{rule}: digest of {digest.count} match{'es' if digest.count != 1 else ''}"


def render_slack_digest(digest: Digest) -> SlackMessage:
    """One Block Kit message listing a digest's entries, one line each: linked title (only
    for a URL :func:`safe_link_url` accepts), source, published time, why it waited. Same
    escaping as :func:`render_slack`; lines are packed into sections under Slack's limits,
    and what does not fit in 50 blocks is counted in an "… and N more" line."""
    badge = _SEVERITY_BADGE.get(digest.severity, digest.severity.upper())
    header = _cut_escaped(slack_escape(f"{badge} · {clean_text(_digest_headline(digest))}"),
                          SLACK_HEADER_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}},
        _context(slack_escape(f"Queued {_digest_period(digest)}")),
    ]
    lines: list[str] = []
    for entry in digest.entries:
        title_md = _md(_cut(clean_text(entry.title), _TITLE_CHARS) or "(untitled)")
        link = _slack_link(entry.url, title_md, 1200)
        meta = _md(_cut(clean_text(entry.feed), _FEED_CHARS) or "(unknown source)")
        if published := _entry_published(entry):
            meta = f"{meta} · {published}"
        kind = _DIGEST_KIND.get(entry.kind, clean_text(entry.kind))
        lines.append(_no_quote(f"• {link} — {meta} ({slack_escape(kind)})"))
    room = SLACK_MAX_BLOCKS - len(blocks) - 1  # one block kept for "and N more"
    section: list[str] = []
    shown = 0
    for line in lines:
        candidate = "\n".join([*section, line])
        if section and _utf16_len(candidate) > SLACK_SECTION_LIMIT:
            if room <= 1:
                break
            blocks.append({"type": "section", "text": _mrkdwn("\n".join(section))})
            room -= 1
            section = [line]
        else:
            section.append(line)
        shown += 1
    if section:
        blocks.append({"type": "section", "text": _mrkdwn(
            _cut_escaped("\n".join(section), SLACK_SECTION_LIMIT))})
    hidden = digest.count - shown
    if hidden > 0:
        blocks.append(_context(f"… and {hidden} more"))
    fallback = _cut_escaped(
        f"{slack_escape(badge)} {_md(_digest_headline(digest))}", SLACK_FALLBACK_LIMIT)
    return SlackMessage(text=fallback, blocks=blocks[:SLACK_MAX_BLOCKS])


# --------------------------------------------------------------------------- e-mail


def _subject(match: Match) -> str:
    subject = clean_text(
        f"[newswatch] {match.severity} {match.title}: {clean_text(match.article.title)}"
    )
    return _cut(subject, EMAIL_SUBJECT_LIMIT)


class _Subject(str):
    """A Subject header value that folds itself.

    ``EmailPolicy.header_store_parse`` stores a value unchanged when it has a matching
    ``name`` attribute, and the generator then calls its ``fold``. We fold ourselves because
    CPython's folder (3.11, before the gh-144156 fix) can split an encoded word across lines
    (``=?utf-8?q?…?`` / ``=?utf-8?b?PSA…?=``), garbling the subject for every reader.

    Pure-ASCII subjects are folded at spaces. Anything else — non-ASCII text, ASCII holding
    a word too long for one line, or ASCII containing ``=?`` (which a reader would otherwise
    decode as an encoded word) — is sent as RFC 2047 base64
    encoded words of at most 42 UTF-8 bytes each, split on character boundaries; readers
    ignore the folding whitespace between adjacent encoded words, so the text round-trips
    exactly. Every line stays ≤ 78 characters.
    """

    __slots__ = ()
    name = "Subject"
    _WORD_BYTES = 42  # base64 → 56 characters; "=?utf-8?b?…?=" → 68; with the fold ≤ 78

    def fold(self, *, policy: email.policy.Policy) -> str:
        linesep = policy.linesep
        first = "Subject:"
        text = str(self)
        # ASCII folds at spaces unless one word alone would overflow a line ("Subject: "
        # plus the word must fit in 78); such a subject is encoded like non-ASCII text.
        if text.isascii() and "=?" not in text and all(len(w) <= 69 for w in text.split(" ")):
            lines = [first]
            for word in text.split(" "):
                if len(lines[-1]) + 1 + len(word) > 78 and lines[-1] != first:
                    lines.append("")
                lines[-1] += " " + word
            return linesep.join(lines) + linesep
        words: list[str] = []
        chunk = b""
        for char in text:
            encoded = char.encode("utf-8")
            if len(chunk) + len(encoded) > self._WORD_BYTES:
                words.append(chunk.decode("utf-8"))
                chunk = b""
            chunk += encoded
        if chunk:
            words.append(chunk.decode("utf-8"))
        encoded_words = [
            "=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words
        ]
        return f"{first} " + (linesep + " ").join(encoded_words) + linesep


def _mail_domain(sender: str) -> str:
    # make_msgid() without a domain calls socket.getfqdn(), a DNS lookup: never do that.
    domain = sender.rpartition("@")[2].strip(" <>\"'")
    if domain and re.fullmatch(r"[A-Za-z0-9.-]+", domain):
        return domain
    return "newswatch.invalid"


def _text_body(match: Match) -> str:
    article = match.article
    lines = [_title_plain(match, _EMAIL_TITLE_CHARS)]
    url = clean_text(article.url)
    if url:
        lines.append(url if safe_link_url(url) else f"(link not shown as clickable) {url}")
    lines.append("")
    meta = _feed_plain(match)
    if published := _published(match):
        meta = f"{meta} · {published}"
    lines.append(f"Source: {meta}")
    lines.append(f"Rule: {clean_text(match.title)} [{clean_text(match.rule_id)}]")
    lines.append(f"Severity: {match.severity}")
    snippet = _snippet(match)
    if snippet and (text := _snippet_plain(snippet)):
        lines += ["", text]
    why = _why_items(match)
    if why:
        lines += ["", "Why:"]
        lines += [f"- {item}" for item in why[:_EMAIL_WHY_LINES]]
        if len(why) > _EMAIL_WHY_LINES:
            lines.append(f"- … and {len(why) - _EMAIL_WHY_LINES} more")
    return "\n".join(lines) + "\n"


def _html_body(match: Match, subject: str) -> str:
    e = html.escape
    article = match.article
    title = e(_title_plain(match, _EMAIL_TITLE_CHARS))
    safe = safe_link_url(article.url)
    if safe is not None:
        heading = f'<a href="{e(safe)}" rel="noopener noreferrer">{title}</a>'
    else:
        heading = title
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{e(subject)}</title></head><body>",
        f"<p><b>{e(match.severity.upper())}</b> · {e(clean_text(match.title))}</p>",
        f"<h2>{heading}</h2>",
    ]
    if safe is None and clean_text(article.url):
        parts.append(f"<p>Link (not clickable): {e(clean_text(article.url))}</p>")
    meta = e(_feed_plain(match))
    if published := _published(match):
        meta = f"{meta} · {e(published)}"
    parts.append(f"<p>{meta}</p>")
    snippet = _snippet(match)
    if snippet is not None:
        pieces = []
        for text, is_match in snippet.pieces:
            piece = e(_clean_inline(text))
            pieces.append(f"<b>{piece}</b>" if is_match and piece.strip() else piece)
        body = _SPACES_RE.sub(" ", "".join(pieces)).strip()
        if body:
            parts.append(f"<p>{_ellipsised(snippet, body)}</p>")
    why = _why_items(match)
    if why:
        items = "".join(f"<li>{e(item)}</li>" for item in why[:_EMAIL_WHY_LINES])
        if len(why) > _EMAIL_WHY_LINES:
            items += f"<li>… and {len(why) - _EMAIL_WHY_LINES} more</li>"
        parts.append(f"<p>Why:</p><ul>{items}</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_email(match: Match, *, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """A ``multipart/alternative`` message (text, then HTML) using ``policy.SMTP``.

    Headers: From ``sender``, To ``recipients`` (only ever from the arguments — nothing in the
    article can add a recipient, F5), Subject ``"[newswatch] <severity> <rule title>:
    <article title>"`` as one line of at most 200 characters (F1), Date, Message-ID (domain
    taken from ``sender``), ``Auto-Submitted: auto-generated``. Serialising the result never
    raises for any article text. Raises ValueError if ``recipients`` is empty.
    """
    if not recipients:
        raise ValueError("render_email needs at least one recipient")
    subject = _subject(match)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = _Subject(subject)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=_mail_domain(sender))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(_text_body(match))
    msg.add_alternative(_html_body(match, subject), subtype="html")
    return msg


def _digest_subject(digest: Digest) -> str:
    return _cut(clean_text(f"[newswatch] {digest.severity} {_digest_headline(digest)}"),
                EMAIL_SUBJECT_LIMIT)


def render_email_digest(
    digest: Digest, *, sender: str, recipients: Sequence[str]
) -> EmailMessage:
    """A digest as one ``multipart/alternative`` e-mail: same headers and escaping as
    :func:`render_email`, one entry per line (text) or list item (HTML)."""
    if not recipients:
        raise ValueError("render_email_digest needs at least one recipient")
    e = html.escape
    subject = _digest_subject(digest)
    text_lines = [_digest_headline(digest), f"Queued {_digest_period(digest)}", ""]
    items: list[str] = []
    for entry in digest.entries:
        title = _cut(clean_text(entry.title), _EMAIL_TITLE_CHARS) or "(untitled)"
        feed = _cut(clean_text(entry.feed), _FEED_CHARS) or "(unknown source)"
        meta = f"{feed} · {p}" if (p := _entry_published(entry)) else feed
        kind = _DIGEST_KIND.get(entry.kind, clean_text(entry.kind))
        url = clean_text(entry.url)
        safe = safe_link_url(url) if url else None
        text_lines.append(f"- {title} ({meta}; {kind})")
        if url:
            text_lines.append(f"  {url}" if safe else f"  (link not shown as clickable) {url}")
        heading = (f'<a href="{e(safe)}" rel="noopener noreferrer">{e(title)}</a>'
                   if safe is not None else e(title))
        items.append(f"<li>{heading} — {e(meta)} ({e(kind)})</li>")
    if digest.more:
        text_lines.append(f"- … and {digest.more} more")
        items.append(f"<li>… and {digest.more} more</li>")
    html_body = "\n".join([
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{e(subject)}</title></head><body>",
        f"<p><b>{e(digest.severity.upper())}</b> · {e(_digest_headline(digest))}</p>",
        f"<p>Queued {e(_digest_period(digest))}</p>",
        f"<ul>{''.join(items)}</ul>",
        "</body></html>",
    ]) + "\n"
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = _Subject(subject)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=_mail_domain(sender))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content("\n".join(text_lines) + "\n")
    msg.add_alternative(html_body, subtype="html")
    return msg


# --------------------------------------------------------------------------- console


def render_console(match: Match) -> str:
    """Human-readable multi-line text for a terminal or a log; every feed-derived line is
    cleaned of control characters (no ANSI escapes from feed text can reach the terminal)."""
    article = match.article
    lines = [
        f"[{match.severity.upper()}] {clean_text(match.title)} ({clean_text(match.rule_id)})",
        f"  {_title_plain(match, _EMAIL_TITLE_CHARS)}",
    ]
    if url := clean_text(article.url):
        lines.append(f"  {url}")
    meta = _feed_plain(match)
    if published := _published(match):
        meta = f"{meta} · {published}"
    lines.append(f"  {meta}")
    snippet = _snippet(match)
    if snippet and (text := _snippet_plain(snippet, ("[", "]"))):
        lines.append(f"  {text}")
    for item in _why_items(match):
        lines.append(f"  why: {item}")
    return "\n".join(lines)


def render_console_digest(digest: Digest) -> str:
    """A digest as terminal lines; every feed-derived line cleaned like
    :func:`render_console`."""
    lines = [f"[{digest.severity.upper()}] {clean_text(_digest_headline(digest))} "
             f"({clean_text(digest.rule_id)})", f"  queued {_digest_period(digest)}"]
    for entry in digest.entries:
        title = _cut(clean_text(entry.title), _EMAIL_TITLE_CHARS) or "(untitled)"
        feed = _cut(clean_text(entry.feed), _FEED_CHARS) or "(unknown source)"
        kind = _DIGEST_KIND.get(entry.kind, clean_text(entry.kind))
        lines.append(f"  - {title} ({feed}; {kind})")
        if url := clean_text(entry.url):
            lines.append(f"    {url}")
    if digest.more:
        lines.append(f"  - … and {digest.more} more")
    return "\n".join(lines)
