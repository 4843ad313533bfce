"""Feed bytes to Articles: the only caller of feedparser in newswatch.

``parse_feed`` takes the body the fetcher already downloaded — always bytes, wrapped in a
BytesIO before it reaches feedparser. feedparser 6.0.14 opens its argument as a *path* when
it can: ``feedparser.parse("/etc/passwd")`` and ``feedparser.parse(b"/etc/passwd")`` both read
the local file (checked), and a str URL is fetched with no timeout or size limit
(reliability.md item 6). A file object is read and never opened or fetched.

Outcomes:

* entries found → ``ParsedFeed``; if feedparser flagged the document (bozo: wrong declared
  encoding, truncated XML after some entries, undefined entity …) the reason is kept in
  ``ParsedFeed.warning`` and the entries are used;
* empty body, an HTML page, or a document with no RSS/Atom/RDF root (also non-XML bytes) →
  ``ParseError(kind=NOT_A_FEED)``;
* a recognised but broken feed without any entry (e.g. truncated) → ``ParseError(kind=PARSE)``;
  also a UTF-16/32 document that declares XML entities (see ``_defuse_entity_declarations``);
* a well-formed feed with no items → a ``ParsedFeed`` with no articles (not an error).

Every text field goes through ``textclean.clean_text`` (plain text, entities decoded once,
control/bidi/zero-width characters removed, capped). Dates are aware UTC datetimes; dates in
the future are kept as given (the Article reports what the feed said; the consumer decides
whether a future date matters). Entries with no text at all (title, summary and content all
empty) are skipped: nothing could match them. Within one document the first entry of an id
wins, so duplicate GUIDs yield one article.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import feedparser

from monitor.article import Article, article_id, canonical_url
from monitor.errors import FetchErrorKind, ParseError
from monitor.textclean import clean_text

__all__ = [
    "CONTENT_LIMIT",
    "SUMMARY_LIMIT",
    "TITLE_LIMIT",
    "ParsedFeed",
    "parse_feed",
]

#: Character caps of the cleaned text fields.
TITLE_LIMIT = 1_000
SUMMARY_LIMIT = 5_000
CONTENT_LIMIT = 50_000
_GUID_LIMIT = 2_048
_WARNING_LIMIT = 300

# sy:updatePeriod values in seconds (RSS 1.0 Syndication module).
_UPDATE_PERIODS = {
    "hourly": 3_600,
    "daily": 86_400,
    "weekly": 604_800,
    "monthly": 2_592_000,  # 30 days
    "yearly": 31_536_000,  # 365 days
}
_SMALL_INT = re.compile(r"\d{1,9}")
_HTML_MARKERS = (b"<!doctype html", b"<html")
# How far into the body the HTML sniff looks (lower-cased copy of this many bytes).
_SNIFF_BYTES = 2_048
# The first element start tag: everything before it is the prolog (XML declaration, DOCTYPE).
_FIRST_ELEMENT = re.compile(rb"<\w")
# Closing tags of RSS/RDF items and Atom entries, and the root element (prefix, name).
_ENTRY_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>")
_ROOT = re.compile(rb"<([A-Za-z_][\w.-]*:)?(rss|feed|RDF)[\s>/]")
# Entries parsed beyond max_entries, so skipped (empty or duplicate) entries do not leave
# the article list short.
_ENTRY_SLACK = 50
_WIDE_ENTITY_NEEDLES = tuple(
    "<!ENTITY".encode(codec) for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """The usable content of one feed document.

    ``articles``: at most ``max_entries``, in document order, unique ids. ``title``: the
    feed's own title as plain text ("" when absent). ``ttl_s``: RSS ``<ttl>`` converted from
    minutes to seconds. ``update_period_s``: ``sy:updatePeriod`` / ``sy:updateFrequency`` as
    seconds between updates. ``warning``: why feedparser flagged the document, when it did
    and entries were still found. ``entries_total``: entries in the document before the cap.
    """

    articles: tuple[Article, ...]
    title: str
    ttl_s: int | None
    update_period_s: int | None
    warning: str | None
    entries_total: int

    @property
    def truncated(self) -> bool:
        """True when the document had more entries than were turned into articles."""
        return self.entries_total > len(self.articles)


def _text(value: Any) -> str:
    """A feedparser field as str; the loose parser sometimes leaves dicts or None."""
    return value if isinstance(value, str) else ""


def _small_int(value: Any) -> int | None:
    text = _text(value).strip()
    return int(text) if _SMALL_INT.fullmatch(text) else None


def _language_code(value: Any) -> str | None:
    """Language code: "en-US" → "en"; anything that does not start with two ASCII letters → None."""
    code = _text(value).strip()[:2].lower()
    return code if len(code) == 2 and code.isascii() and code.isalpha() else None


def _published(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed is None:
            continue
        try:
            # feedparser has already normalised the date to UTC (a time.struct_time).
            year, month, day, hour, minute, second = parsed[:6]
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except (TypeError, ValueError, OverflowError):
            continue
    return None


def _first_content(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    contents = entry.get("content")
    if isinstance(contents, list) and contents and isinstance(contents[0], Mapping):
        return contents[0]
    return {}


def _entry_language(entry: Mapping[str, Any]) -> str | None:
    for detail in (entry.get("title_detail"), entry.get("summary_detail"), _first_content(entry)):
        if isinstance(detail, Mapping):
            code = _language_code(detail.get("language"))
            if code:
                return code
    return None


def _http_url(link: str) -> str:
    """The canonical link when it is an absolute http(s) URL, else "" (never rendered)."""
    if not link:
        return ""
    try:
        scheme = urlsplit(link.strip()).scheme.lower()
    except ValueError:
        return ""
    return canonical_url(link) if scheme in ("http", "https") else ""


def _stored_guid(guid: str) -> str | None:
    return guid if guid and len(guid) <= _GUID_LIMIT and guid.isprintable() else None


def _looks_like_html(data: bytes, headers: Mapping[str, str]) -> bool:
    content_type = headers.get("content-type", "").lower()
    if content_type.startswith(("text/html", "application/xhtml")):
        return True
    head = data[:_SNIFF_BYTES].lower()
    return any(marker in head for marker in _HTML_MARKERS)


def _update_period_s(feed_data: Mapping[str, Any]) -> int | None:
    period_name = _text(feed_data.get("sy_updateperiod")).strip().lower()
    frequency = _small_int(feed_data.get("sy_updatefrequency"))
    if not period_name and frequency is None:
        return None
    period = _UPDATE_PERIODS.get(period_name or "daily")
    if period is None:
        return None
    if frequency is None or frequency < 1:
        frequency = 1
    return max(1, period // frequency)


def _defuse_entity_declarations(data: bytes) -> bytes:
    """Put every ``<!DOCTYPE``/``<!ENTITY`` of the prolog on its own line.

    feedparser removes entity declarations that reference other entities (billion laughs)
    only when each starts a line (``^\\s*<!ENTITY``, MULTILINE). Written on one line, the
    declarations reach expat, which expands them until its amplification limit: ~0.5-1 s of
    CPU per document (measured), a stall of the event loop. A newline before each declaration
    is valid XML and lets feedparser's own filter work. UTF-16/32 documents are refused when
    they declare entities: feedparser transcodes them before filtering, and no real feed needs
    that combination.
    """
    first_element = _FIRST_ELEMENT.search(data)
    head_end = first_element.start() if first_element else len(data)
    head = data[:head_end]
    if b"<!ENTITY" in head:
        head = head.replace(b"<!DOCTYPE", b"\n<!DOCTYPE").replace(b"<!ENTITY", b"\n<!ENTITY")
        return head + data[head_end:]
    prolog = data[: 4 * head_end + 64]
    if any(needle in prolog for needle in _WIDE_ENTITY_NEEDLES):
        raise ParseError("XML entity declarations in a UTF-16/32 document are refused")
    return data


def _cut_after_entries(data: bytes, keep: int) -> tuple[bytes, int]:
    """Drop everything after the ``keep``-th item/entry and close the root element.

    feedparser builds every entry of a document (~110 µs each, measured): 100,000 tiny items
    took 11 s of CPU. Cutting the bytes first bounds the cost to ``keep`` entries. Returns the
    (possibly shortened) document and the number of item/entry end tags seen in the whole
    body. Works for ASCII-compatible encodings; a UTF-16/32 body is parsed whole.
    """
    count = 0
    cut_at = None
    for match in _ENTRY_END.finditer(data):
        count += 1
        if count == keep:
            cut_at = match.end()
    root = _ROOT.search(data)
    if cut_at is None or count <= keep or root is None:
        return data, count
    prefix, name = root.group(1) or b"", root.group(2)
    closing = b"</" + prefix + name + b">"
    if name == b"rss":
        closing = b"</channel>" + closing
    return data[:cut_at] + closing, count


def _describe(exc: Any) -> str:
    if exc is None:
        return "unknown problem"
    return clean_text(f"{type(exc).__name__}: {exc}", _WARNING_LIMIT)


def parse_feed(
    body: bytes,
    *,
    feed: str,
    headers: Mapping[str, str],
    language: str | None,
    max_entries: int = 200,
) -> ParsedFeed:
    """Parse a fetched feed body into Articles.

    ``body``: the raw (decompressed) bytes; a str is refused with TypeError because it would
    be read as a URL or path by feedparser. ``feed``: the feed's configured name, used as
    ``Article.feed`` and as the namespace of GUID-based ids. ``headers``: response headers
    (any case), e.g. ``FetchResult.headers``: Content-Type gives the charset,
    Content-Location is the base for relative links, Content-Language a default language.
    ``language``: configured language of the feed; when None, the entry's or feed's
    ``xml:lang``/``<language>`` is used (its first two letters), else None.
    ``max_entries``: articles kept, in document order; a longer document is cut after
    ``max_entries`` + 50 entries before parsing, which bounds the CPU spent on it.
    Raises ParseError (kind NOT_A_FEED or PARSE) as described in the module docstring.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"parse_feed needs bytes, not {type(body).__name__}")
    data = bytes(body)
    header_map = {
        str(name).lower(): value for name, value in headers.items() if isinstance(value, str)
    }
    if not data.strip():
        raise ParseError("empty body", kind=FetchErrorKind.NOT_A_FEED)
    data = _defuse_entity_declarations(data)
    data, entry_tags = _cut_after_entries(data, max(0, max_entries) + _ENTRY_SLACK)
    cut = entry_tags > max(0, max_entries) + _ENTRY_SLACK
    try:
        # BytesIO, never bytes or str: feedparser opens those as paths or URLs.
        parsed = feedparser.parse(io.BytesIO(data), response_headers=header_map)
    except Exception as exc:  # feedparser is not supposed to raise; never let it kill a poll
        raise ParseError(f"feed parser failed ({type(exc).__name__})") from exc

    entries = [e for e in parsed.get("entries") or [] if isinstance(e, Mapping)]
    feed_data = parsed.get("feed")
    if not isinstance(feed_data, Mapping):
        feed_data = {}
    flagged = bool(parsed.get("bozo"))
    problem = parsed.get("bozo_exception") if flagged else None
    if not entries:
        if _looks_like_html(data, header_map):
            raise ParseError("got an HTML page, not a feed", kind=FetchErrorKind.NOT_A_FEED)
        if not parsed.get("version"):
            raise ParseError("no RSS, Atom or RDF document found", kind=FetchErrorKind.NOT_A_FEED)
        if flagged:
            raise ParseError(f"broken XML: {_describe(problem)}", kind=FetchErrorKind.PARSE)

    feed_language = _language_code(feed_data.get("language"))
    configured_language = _language_code(language)
    articles: list[Article] = []
    seen_ids: set[str] = set()
    for entry in entries:
        if len(articles) >= max_entries:
            break
        article = _article(
            entry,
            feed=feed,
            language=configured_language,
            feed_language=feed_language,
        )
        if article is None or article.id in seen_ids:
            continue
        seen_ids.add(article.id)
        articles.append(article)

    ttl_minutes = _small_int(feed_data.get("ttl"))
    return ParsedFeed(
        articles=tuple(articles),
        title=clean_text(_text(feed_data.get("title")), TITLE_LIMIT),
        ttl_s=ttl_minutes * 60 if ttl_minutes else None,
        update_period_s=_update_period_s(feed_data),
        warning=_describe(problem) if flagged else None,
        entries_total=entry_tags if cut else len(entries),
    )


def _article(
    entry: Mapping[str, Any],
    *,
    feed: str,
    language: str | None,
    feed_language: str | None,
) -> Article | None:
    title = clean_text(_text(entry.get("title")), TITLE_LIMIT)
    summary = clean_text(_text(entry.get("summary")), SUMMARY_LIMIT)
    content = clean_text(_text(_first_content(entry).get("value")), CONTENT_LIMIT)
    if not (title or summary or content):
        return None
    guid = _text(entry.get("id")).strip()
    link = _text(entry.get("link")).strip()
    published = _published(entry)
    # The date that goes into a hash-based id: normalised when parseable, else as written,
    # so the id stays the same from poll to poll either way.
    date_key = (
        published.isoformat()
        if published
        else (_text(entry.get("published")) or _text(entry.get("updated"))).strip() or None
    )
    return Article(
        id=article_id(feed, guid=guid or None, link=link or None, title=title, published=date_key),
        feed=feed,
        title=title,
        url=_http_url(link),
        summary=summary,
        content=content,
        language=language or _entry_language(entry) or feed_language,
        published=published,
        guid=_stored_guid(guid),
    )
