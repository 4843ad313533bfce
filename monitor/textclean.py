"""Feed text to plain text: ``clean_text``, used on every title, summary and body (and
``clean_plain``, the same without the HTML steps, for an article page's extracted text).

Feed text arrives as HTML or as "plain" text that often contains HTML anyway (RSS titles are
``text/plain`` for feedparser and reach us verbatim, docs/reliability.md item 5). Everything is
therefore treated as HTML and reduced to what a reader would see:

* markup removed: tags, comments, ``<?…?>``, ``<!DOCTYPE …>``, CDATA markers; ``<script>`` and
  ``<style>`` lose their contents too; block tags (``<p>``, ``<br>``, ``<li>``, headings …)
  become line breaks, table cells a space;
* entities decoded exactly once (``&amp;lt;`` becomes the text ``&lt;`` and stays so);
* invisible and control characters removed: C0 except tab and newline, DEL, C1, every Unicode
  format character (category Cf: bidi embeddings/overrides/isolates, LRM/RLM/ALM, zero-width
  space/joiners, word joiner, BOM, soft hyphen, tag characters) and lone surrogates;
  CR, VT, FF, NEL, U+2028 and U+2029 become newlines;
* whitespace tidied: horizontal runs become one space, lines are stripped, runs of blank lines
  become a single blank line;
* truncated to ``limit`` characters at a word boundary, ending with "…".

Slack-style sequences that are not HTML stay as literal text: ``<!channel>``, ``<!here>``,
``<@U123>``, ``<#C123>`` are kept (an HTML parser would call ``<!channel>`` a bogus comment, but
dropping it would make the text differ between the plain and the HTML paths of feedparser,
which escapes it to ``&lt;!channel>``). Renderers escape all output anyway.
``<https://evil|Official>`` starts like a tag and is removed, as a browser would.

Cost is linear in the input: every pattern below either always matches once it starts or stops
at the next ``<``/``>``, so no input can make a scan restart from every position. The input is
first cut to ``limit * _MARKUP_ALLOWANCE + _MARKUP_SLACK`` characters, so a 5 MB title costs
the same as a 16 kB one.
"""

from __future__ import annotations

import html
import re

__all__ = ["clean_plain", "clean_text"]

# How much raw (markup-laden) input is looked at per character of output: markup-heavy HTML
# rarely carries more than ~3 characters of markup per visible character; 8 leaves room.
_MARKUP_ALLOWANCE = 8
_MARKUP_SLACK = 16_384

_ELLIPSIS = "…"

# One pass over the markup, left to right. Order of the alternatives matters:
#   1. <script>/<style> with their contents; an unclosed one runs to the end (as in browsers).
#   2. comments; an unclosed one runs to the end.
#   3. CDATA section markers (the text inside is kept).
#   4. start/end tags: "<" + letter or "</" + letter, up to the next ">" outside quotes (else,
#      for a broken quote, the next ">"), never across a "<": a stray "<" in text ("a<b and c")
#      costs only the span to the next "<".
#   5. <!DOCTYPE …> and <?…?> declarations/processing instructions.
_MARKUP = re.compile(
    r"<(?P<raw>script|style)\b[^<>]*>.*?(?:</(?P=raw)\s*>|\Z)"
    r"|<!--.*?(?:-->|\Z)"
    r"|<!\[CDATA\[|\]\]>"
    r"|</?(?P<name>[A-Za-z][A-Za-z0-9:-]*)"
    r"(?:(?:[\s/](?:[^<>\"']|\"[^\"<]*\"|'[^'<]*')*)?>|[\s/][^<>]*>)"
    r"|<!doctype\b[^<>]*>|<\?[^<>]*>",
    re.DOTALL | re.IGNORECASE,
)

# Tags that start a new line when rendered (block-level and line-breaking elements).
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tr",
        "ul",
    }
)
# Tags whose neighbours would otherwise run together ("<td>a</td><td>b</td>" → "a b").
_SPACED_TAGS = frozenset({"td", "th", "img"})

_LINE_BREAK_CHARS = "\r\x0b\x0c\x85\u2028\u2029"
_LINE_BREAKS = re.compile(f"\r\n|[{_LINE_BREAK_CHARS}]")

# Removed outright. The Cf ranges are Unicode 14's format characters (checked against
# unicodedata at the time of writing); surrogates can only be lone in a str.
_INVISIBLE = re.compile(
    "["
    "\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f"  # C0 (minus \t \n and the line breaks above), DEL, C1
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers: letters (Lo) that render as nothing
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
    r"\ud800-\udfff"  # written for re (a str cannot hold them when compiled, setup.py)
    "]"
)
_BLANK_LINE_RUNS = re.compile(r"\n{3,}")
# The characters of _INVISIBLE that a tidied line's str.isprintable() cannot reveal: the
# Hangul fillers (Lo: printable) and the C0 separators str.split takes for whitespace.
# Every other one is Other (Cc, Cf, Cs) and fails isprintable.
_PRINTABLE_INVISIBLE = "\u115f\u1160\u3164\uffa0\x1c\x1d\x1e\x1f"


def _replace_markup(match: re.Match[str]) -> str:
    name = match.group("name")
    if name is None:
        return ""  # script/style block, comment, CDATA marker, declaration
    lowered = name.lower()
    if lowered in _BLOCK_TAGS:
        return "\n"
    if lowered in _SPACED_TAGS:
        return " "
    return ""


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= len(_ELLIPSIS):
        return _ELLIPSIS[:limit]
    cut = text[: limit - len(_ELLIPSIS)]
    # Break at the last whitespace unless that would throw away more than half the budget
    # (one enormous "word" such as a URL is then cut mid-word instead).
    boundary = max(cut.rfind(" "), cut.rfind("\n"))
    if boundary > len(cut) // 2:
        cut = cut[:boundary]
    return cut.rstrip() + _ELLIPSIS


def clean_text(s: str, limit: int) -> str:
    """Plain, single-decoded, printable text of at most ``limit`` characters.

    Never raises for any ``str`` (non-str input yields ""). ``limit`` counts code points of the
    result, including the trailing "…" when the text was cut; ``limit <= 0`` yields "".
    """
    if not isinstance(s, str) or limit <= 0 or not s:
        return ""
    raw = s[: limit * _MARKUP_ALLOWANCE + _MARKUP_SLACK]
    if len(raw) < len(s):
        # Do not leave half a tag or entity at the cut: it would show up as text.
        last_open = raw.rfind("<")
        if last_open > raw.rfind(">") and last_open >= len(raw) - 1024:
            raw = raw[:last_open]
        last_amp = raw.rfind("&")
        if last_amp > raw.rfind(";") and last_amp >= len(raw) - 32:
            raw = raw[:last_amp]
    # Each pass runs only when the text holds what it removes (most feed text holds no
    # markup and no odd line breaks): the cost is in the regex scans, not the checks.
    text = _MARKUP.sub(_replace_markup, raw) if "<" in raw or "]]>" in raw else raw
    return _tidy(html.unescape(text), limit)


def clean_plain(s: str, limit: int) -> str:
    """``clean_text`` for text that is already plain (an extraction library's output): no
    markup is removed and no entity decoded (that was done once, by the library), but
    invisible and control characters go, whitespace is tidied and the text is cut to
    ``limit`` characters in the same way. Never raises for any ``str``."""
    if not isinstance(s, str) or limit <= 0 or not s:
        return ""
    return _tidy(s[: limit + _MARKUP_SLACK], limit)


def _tidy(text: str, limit: int) -> str:
    """Line breaks unified, invisible characters removed, whitespace tidied, cut."""
    if any(c in text for c in _LINE_BREAK_CHARS):
        text = _LINE_BREAKS.sub("\n", text)
    # Runs of horizontal space become one space and every line loses its outer spaces
    # (str.split's whitespace is re's \s; the only line break left is \n).
    lines = [" ".join(line.split()) for line in text.split("\n")]
    if not all(map(str.isprintable, lines)) or any(c in text for c in _PRINTABLE_INVISIBLE):
        # Some character may be invisible (most text holds none: isprintable is one C
        # pass, the regex scan costs about as much as all the rest of the cleaning).
        text = _INVISIBLE.sub("", text)
        lines = [" ".join(line.split()) for line in text.split("\n")]
    text = "\n".join(lines)
    if "\n\n\n" in text:
        text = _BLANK_LINE_RUNS.sub("\n\n", text)
    return _truncate(text.strip(), limit)
