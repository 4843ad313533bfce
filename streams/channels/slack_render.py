"""A :class:`~newswatch.streams.alerts.Match` or a digest as a Slack Block Kit message.

Every function here is pure: no I/O, no clock. Feed text is first made safe as
:mod:`~newswatch.streams.channels.text` describes; then, for Slack (docs/reliability.md
group E):

* ``&``, ``<`` and ``>`` are escaped (so ``<!channel>``, ``<@U…>``, ``<#C…>``,
  ``<!subteam^…>`` and ``<url|text>`` arrive as inert ``&lt;…&gt;``, E1/E3), and the mrkdwn
  markers ``*``, ``_``, ``~`` and the backtick are replaced by look-alike characters
  (:data:`MRKDWN_LOOKALIKES`) so feed text cannot open bold, italics, strike or code spans
  (E5). Slack has no escape for these characters; look-alikes are deterministic, whereas
  zero-width joiners depend on Slack's word-boundary rules. A leading ``>`` (a block quote
  at the start of a line) becomes ``›``. All mrkdwn text objects carry ``verbatim: true`` so
  Slack does not auto-link bare URLs or channel names in feed text.
* The only ``<…>`` sequence we emit is our own link ``<url|title>``, and only for an http(s)
  URL that passed :func:`~newswatch.streams.channels.text.safe_link_url`; anything else
  (``javascript:``, ``data:``, …) is shown as inert text (D7). The only ``*`` we emit are
  our own bold markers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from newswatch.streams.alerts import Digest, Match
from newswatch.streams.channels.text import (
    DIGEST_KIND,
    ELLIPSIS,
    FEED_CHARS,
    Snippet,
    clean_inline,
    clean_text,
    cut_text,
    digest_headline,
    digest_period,
    entry_published_at,
    feed_plain,
    find_snippet,
    published_at,
    safe_link_url,
    title_plain,
    why_items,
)

__all__ = [
    "MRKDWN_LOOKALIKES",
    "SLACK_FALLBACK_LIMIT",
    "SLACK_HEADER_LIMIT",
    "SLACK_MAX_BLOCKS",
    "SLACK_SECTION_LIMIT",
    "SlackMessage",
    "render_slack",
    "render_slack_digest",
    "render_slack_reply",
    "slack_escape",
]

# Slack limits (Block Kit reference): a section/context text object holds 3,000 characters,
# a header 150, a message 50 blocks. The top-level ``text`` may hold 40,000, but it is the
# notification fallback, so we keep it to 4,000.
SLACK_SECTION_LIMIT = 3000
SLACK_HEADER_LIMIT = 150
SLACK_MAX_BLOCKS = 50
SLACK_FALLBACK_LIMIT = 4000

#: Replacement for each Slack mrkdwn marker found in feed text.
MRKDWN_LOOKALIKES: dict[str, str] = {
    "*": "\u2217",  # ∗ ASTERISK OPERATOR
    "_": "\u02cd",  # ˍ MODIFIER LETTER LOW MACRON
    "~": "\u223c",  # ∼ TILDE OPERATOR
    "`": "\u02cb",  # ˋ MODIFIER LETTER GRAVE ACCENT
}
_MRKDWN_TABLE = str.maketrans(MRKDWN_LOOKALIKES)

# The title budget of a Slack message, in characters of plain text, before escaping.
_TITLE_CHARS = 300
_SEVERITY_BADGE = {
    "low": "🔵 LOW",
    "medium": "🟡 MEDIUM",
    "high": "🟠 HIGH",
    "critical": "🔴 CRITICAL",
}


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A ready ``chat.postMessage``/``chat.update`` body: ``text`` is the notification
    fallback (≤ 4,000 characters), ``blocks`` the Block Kit layout (≤ 50 blocks)."""

    text: str
    blocks: list[dict[str, Any]]


# --------------------------------------------------------------------------- cutting


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
    return cut + ELLIPSIS


# --------------------------------------------------------------------------- Slack text


def slack_escape(text: str) -> str:
    """Escape the three characters Slack reserves: ``&`` → ``&amp;``, ``<`` → ``&lt;``,
    ``>`` → ``&gt;``. Input is plain text (decoded once upstream), so ``AT&T`` becomes
    ``AT&amp;T``, which Slack displays as ``AT&T``; ``&amp;`` in the input really was the
    five characters and is shown as such (``&amp;amp;``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md(text: str, *, inline: bool = False) -> str:
    """Feed text as inert Slack mrkdwn (cleaned, markers neutralised, escaped)."""
    plain = clean_inline(text) if inline else clean_text(text)
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


# --------------------------------------------------------------------------- snippet


def _snippet_mrkdwn(snippet: Snippet, budget: int = SLACK_SECTION_LIMIT) -> str:
    """The snippet as mrkdwn with matched words in ``*bold*``, at most ``budget`` UTF-16
    units; when cut, it is cut between pieces or inside a plain piece, so a bold pair is
    never left open."""
    out = ELLIPSIS if snippet.cut_before else ""
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
                return out.rstrip(" ") + ELLIPSIS
            return _cut_escaped(out + piece, budget)
        out += piece
    if not started:
        return ""
    # The loop kept one unit free, so the closing ellipsis always fits.
    out = out.rstrip(" ")
    return out + ELLIPSIS if snippet.cut_after else out


# --------------------------------------------------------------------------- Slack


def _header_text(match: Match) -> str:
    badge = _SEVERITY_BADGE.get(match.severity, match.severity.upper())
    rule = clean_text(match.title) or clean_text(match.rule_id)
    return _cut_escaped(slack_escape(f"{badge} · {rule}"), SLACK_HEADER_LIMIT)


def _fallback_text(match: Match) -> str:
    # The fallback is shown in notifications and is itself parsed as mrkdwn.
    badge = _SEVERITY_BADGE.get(match.severity, match.severity.upper())
    rule = _md(match.title) or _md(match.rule_id)
    title = _md(title_plain(match, 1000))
    text = f"{slack_escape(badge)} {rule}: {title} ({_md(feed_plain(match))})"
    if match.escalation is not None:
        text = f"{_escalation_md(match)} · {text}"
    return _cut_escaped(text, SLACK_FALLBACK_LIMIT)


def _escalation_md(match: Match) -> str:
    """"Escalated: 6 sources, fr + ar" (language codes come from feeds: escaped)."""
    summary = match.escalation.summary() if match.escalation is not None else ""
    return f"Escalated: {_md(summary)}"


def render_slack(
    match: Match, *, sources: int = 1, tail: Sequence[dict[str, Any]] = ()
) -> SlackMessage:
    """Block Kit message for ``match``.

    Layout: header (severity + rule title, plain_text) · section with the article title in
    bold, linked only if :func:`safe_link_url` accepts the URL · context with source and
    published time · section with a snippet around the first evidence, matched words in
    bold · context "Why: …" from ``Evidence.explain()`` joined by " · " · context
    "Reported by N sources" when ``sources > 1`` · context "Escalated: N sources, fr + ar"
    when the match carries the story's escalation · the ``tail`` blocks as given (an
    interactive receiver's answer lines and buttons, streams/channels/slack_actions.py).
    Every text object fits Slack's limits; truncation ends with "…" and never splits an
    escape.
    """
    title_md = _md(title_plain(match, _TITLE_CHARS))
    link = _slack_link(match.article.url, title_md, SLACK_SECTION_LIMIT - 2)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _header_text(match)}},
        {
            "type": "section",
            "text": _mrkdwn(f"*{link}*"),
        },
    ]
    meta = _md(feed_plain(match))
    published = published_at(match)
    if published:
        meta = f"{meta} · {published}"
    blocks.append(_context(_no_quote(meta)))

    snippet = find_snippet(match)
    snippet_md = _snippet_mrkdwn(snippet) if snippet else ""
    if snippet_md:
        blocks.append({"type": "section", "text": _mrkdwn(snippet_md)})

    why = [slack_escape(item.translate(_MRKDWN_TABLE)) for item in why_items(match)]
    if why:
        blocks.append(_context("*Why:* " + " · ".join(w for w in why if w)))
    if sources > 1:
        blocks.append(_context(f"Reported by {int(sources)} sources"))
    if match.escalation is not None:
        blocks.append(_context(f":rotating_light: *{_escalation_md(match)}*"))
    blocks = [*blocks[:SLACK_MAX_BLOCKS - len(tail)], *tail]
    return SlackMessage(text=_fallback_text(match), blocks=blocks[:SLACK_MAX_BLOCKS])


def render_slack_reply(match: Match) -> SlackMessage:
    """Thread reply: "Also reported by <source>: <title link>" (same escaping rules); for
    a match carrying the story's escalation, "Escalated: N sources, fr + ar"."""
    if match.escalation is not None:
        line = _escalation_md(match)
        return SlackMessage(text=_cut_escaped(line, SLACK_FALLBACK_LIMIT), blocks=[
            {"type": "section", "text": _mrkdwn(f":rotating_light: *{line}*")}])
    title_md = _md(title_plain(match, _TITLE_CHARS))
    feed_md = _md(feed_plain(match))
    prefix = f"Also reported by *{feed_md}*: "
    text = prefix + _slack_link(match.article.url, title_md, SLACK_SECTION_LIMIT - len(prefix))
    fallback = _cut_escaped(f"Also reported by {feed_md}: {title_md}", SLACK_FALLBACK_LIMIT)
    return SlackMessage(text=fallback, blocks=[{"type": "section", "text": _mrkdwn(text)}])


# --------------------------------------------------------------------------- digests


def render_slack_digest(digest: Digest) -> SlackMessage:
    """One Block Kit message listing a digest's entries, one line each: linked title (only
    for a URL :func:`safe_link_url` accepts), source, published time, why it waited. Same
    escaping as :func:`render_slack`; lines are packed into sections under Slack's limits,
    and what does not fit in 50 blocks is counted in an "… and N more" line."""
    badge = _SEVERITY_BADGE.get(digest.severity, digest.severity.upper())
    header = _cut_escaped(slack_escape(f"{badge} · {clean_text(digest_headline(digest))}"),
                          SLACK_HEADER_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}},
        _context(slack_escape(f"Queued {digest_period(digest)}")),
    ]
    lines: list[str] = []
    for entry in digest.entries:
        title_md = _md(cut_text(clean_text(entry.title), _TITLE_CHARS) or "(untitled)")
        link = _slack_link(entry.url, title_md, 1200)
        meta = _md(cut_text(clean_text(entry.feed), FEED_CHARS) or "(unknown source)")
        if published := entry_published_at(entry):
            meta = f"{meta} · {published}"
        kind = DIGEST_KIND.get(entry.kind, clean_text(entry.kind))
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
        f"{slack_escape(badge)} {_md(digest_headline(digest))}", SLACK_FALLBACK_LIMIT)
    return SlackMessage(text=fallback, blocks=blocks[:SLACK_MAX_BLOCKS])
