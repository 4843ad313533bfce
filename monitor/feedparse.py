"""Feed bytes to Articles: the only caller of feedparser in newswatch.

``parse_feed`` takes the body the fetcher already downloaded — always bytes, wrapped in a
BytesIO before it reaches feedparser. feedparser 6.0.14 opens its argument as a *path* when
it can: ``feedparser.parse("/etc/passwd")`` and ``feedparser.parse(b"/etc/passwd")`` both read
the local file (checked), and a str URL is fetched with no timeout or size limit
(docs/reliability.md item 6). A file object is read and never opened or fetched.

Outcomes:

* entries found → ``ParsedFeed``; if feedparser flagged the document (bozo: wrong declared
  encoding, truncated XML after some entries, undefined entity …) the reason is kept in
  ``ParsedFeed.warning`` and the entries are used;
* empty body, an HTML page, or a document with no RSS/Atom/RDF root (also non-XML bytes) →
  ``ParseError(kind=NOT_A_FEED)``;
* a recognised but broken feed without any entry (e.g. truncated) → ``ParseError(kind=PARSE)``;
* a DTD declaring an entity that could expand or load data (billion laughs, XXE, parameter
  entities) → ``ParseError(kind=PARSE)`` before feedparser runs (see
  ``_refuse_expanding_entities``); plain-text entities are allowed;
* a well-formed feed with no items → a ``ParsedFeed`` with no articles (not an error).

Every text field goes through ``textclean.clean_text`` (plain text, entities decoded once,
control/bidi/zero-width characters removed, capped). Dates are aware UTC datetimes; dates in
the future are kept as given (the Article reports what the feed said; the consumer decides
whether a future date matters). Entries with no text at all (title, summary and content all
empty) are skipped: nothing could match them. Within one document the first entry of an id
wins, so duplicate GUIDs yield one article.
"""

from __future__ import annotations

import hashlib
import io
import re
import xml.parsers.expat
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import feedparser
from feedparser.encodings import convert_to_utf8

from newswatch.core.article import Article, article_id, canonical_url
from newswatch.core.errors import FetchErrorKind, ParseError
from newswatch.monitor.textclean import clean_text

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
# Closing tags of RSS/RDF items and Atom entries, and the root element (prefix, name).
_ENTRY_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>")
_ENTRY_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]")
_ROOT = re.compile(rb"<([A-Za-z_][\w.-]*:)?(rss|feed|RDF)[\s>/]")
# Entries parsed beyond max_entries, so skipped (empty or duplicate) entries do not leave
# the article list short.
_ENTRY_SLACK = 50


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """The usable content of one feed document.

    ``articles``: at most ``max_entries``, in document order, unique ids. ``title``: the
    feed's own title as plain text ("" when absent). ``ttl_s``: RSS ``<ttl>`` converted from
    minutes to seconds. ``update_period_s``: ``sy:updatePeriod`` / ``sy:updateFrequency`` as
    seconds between updates. ``warning``: why feedparser flagged the document, when it did
    and entries were still found. ``entries_total``: entries in the document before the cap.
    ``entry_keys``: digests of the raw entries that were processed (or skipped as known),
    to pass as ``known`` next time; empty when the document's entries could not be told
    apart safely. ``skipped``: entries left out because their bytes were known.
    """

    articles: tuple[Article, ...]
    title: str
    ttl_s: int | None
    update_period_s: int | None
    warning: str | None
    entries_total: int
    entry_keys: tuple[str, ...] = ()
    skipped: int = 0

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


def _to_utf8(data: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str], Any]:
    """Transcode the body to UTF-8 exactly as feedparser would, before anything inspects it.

    Returns the UTF-8 document (its XML declaration rewritten to utf-8), the headers to give
    feedparser for it (charset=utf-8), and feedparser's complaint about the encoding (e.g. a
    CharacterEncodingOverride) or None. Checks below must see what feedparser's XML parser
    will see: feedparser decodes with any codec the document or the headers name (utf-16,
    utf-7, even unicode_escape), so a check on the raw bytes can be evaded. When no encoding
    works, the body is returned unchanged; feedparser then uses its loose parser, which does
    not expand DTD entities.
    """
    content_type = headers.get("content-type")
    probe: dict[str, Any] = {}
    try:
        only_type = {"content-type": content_type} if content_type else {}
        converted = convert_to_utf8(only_type, data, probe)
    except Exception:  # a codec can fail in odd ways; feedparser will report it itself
        return data, headers, None
    if not probe.get("encoding") or not isinstance(converted, bytes):
        return data, headers, None
    media_type = (content_type or "").split(";", 1)[0].strip() or "application/xml"
    return (
        converted,
        {**headers, "content-type": f"{media_type}; charset=utf-8"},
        probe.get("bozo_exception"),
    )


class _RootReached(Exception):
    """The prolog is over: no more DTD declarations can follow."""


class _ExpandingEntity(Exception):
    """An entity declaration whose use could expand (nested, parameter or external)."""


def _refuse_expanding_entities(utf8: bytes) -> None:
    """Raise ParseError if the DTD declares an entity that could expand or be fetched.

    feedparser's own filter removes nested declarations only when each starts a line before
    the first ``<letter`` of the document; a comment such as ``<!-- <x> -->`` inside the
    DOCTYPE, or all declarations on one line, slips billion laughs through to expat, which
    expands until its amplification limit: ~0.5 s of CPU per document on the event loop
    (measured). This check reads the prolog with expat itself (so quoting and comments are
    understood) and stops at the root element, before any entity is used. Refused: parameter
    entities, external (SYSTEM/PUBLIC) entities, and values that reference another entity.
    Plain-text entities (``<!ENTITY brand "Newswatch">``) pass.
    """
    if b"<!ENTITY" not in utf8:
        return
    parser = xml.parsers.expat.ParserCreate()

    def on_entity(
        name: str,
        is_parameter_entity: bool,
        value: str | None,
        base: str | None,
        system_id: str | None,
        public_id: str | None,
        notation_name: str | None,
    ) -> None:
        if is_parameter_entity or system_id or public_id or notation_name or "&" in (value or ""):
            raise _ExpandingEntity(name)

    def on_start(name: str, attributes: Any) -> None:
        raise _RootReached

    parser.EntityDeclHandler = on_entity
    parser.StartElementHandler = on_start
    try:
        parser.Parse(utf8, True)
    except _RootReached:
        return
    except _ExpandingEntity as refused:
        raise ParseError(
            f"refused: XML entity '{refused}' could expand or load external data "
            "(entity-expansion/XXE pattern)"
        ) from None
    except xml.parsers.expat.ExpatError as exc:
        raise ParseError(f"broken DTD: {exc}") from None


def _cut_after_entries(data: bytes, keep: int) -> tuple[bytes, int]:
    """Drop everything after the ``keep``-th item/entry and close the root element.

    feedparser builds every entry of a document (~110 µs each, measured): 100,000 tiny items
    took 11 s of CPU. Cutting the bytes first bounds the cost to ``keep`` entries. Returns the
    (possibly shortened) document and the number of item/entry end tags seen in the whole
    body. Runs on the UTF-8 transcoding, so it works whatever the feed's encoding. An end tag
    inside CDATA may cut early; the loose parser then still reads what is there.
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


def _entry_spans(data: bytes) -> list[tuple[int, int]] | None:
    """Byte spans of the document's items/entries, or None when they cannot be delimited
    safely (an entry inside an entry, or an end tag inside CDATA or a comment)."""
    spans: list[tuple[int, int]] = []
    position = 0
    while (start := _ENTRY_START.search(data, position)) is not None:
        end = _ENTRY_END.search(data, start.end())
        if end is None:
            return None
        chunk = data[start.start():end.end()]
        if (_ENTRY_START.search(chunk, 1) is not None
                or chunk.count(b"<![CDATA[") != chunk.count(b"]]>")
                or chunk.count(b"<!--") != chunk.count(b"-->")):
            return None
        spans.append((start.start(), end.end()))
        position = end.end()
    return spans


def _entry_key(chunk: bytes) -> str:
    return hashlib.blake2b(chunk, digest_size=10).hexdigest()


def _drop_known_entries(
    data: bytes, known: Collection[str], limit: int
) -> tuple[bytes, list[str], list[str], int] | None:
    """Remove the entries whose raw bytes are in ``known`` and, when some are known, every
    entry after the first ``limit`` (as the article cap would have ignored them: without
    this, each poll would reach further down a long feed into items never taken).

    Returns (reduced document, keys of the known entries present, keys of the entries
    kept, in order, and the number of entries in the document), or None when the entries
    cannot be delimited safely (then nothing is skipped). Removing whole elements keeps the
    document well-formed; what is left is parsed as usual.
    """
    spans = _entry_spans(data)
    if spans is None:
        return None
    parts: list[bytes] = []
    kept_keys: list[str] = []
    known_keys: list[str] = []
    position = 0
    for index, (start, end) in enumerate(spans):
        key = _entry_key(data[start:end])
        beyond = bool(known) and index >= limit
        if beyond or key in known:
            parts.append(data[position:start])
            position = end
            if not beyond:
                known_keys.append(key)
        else:
            kept_keys.append(key)
    parts.append(data[position:])
    return b"".join(parts), known_keys, kept_keys, len(spans)


def _describe(exc: Any) -> str:
    return clean_text(f"{type(exc).__name__}: {exc}", _WARNING_LIMIT)


def parse_feed(
    body: bytes,
    *,
    feed: str,
    headers: Mapping[str, str],
    language: str | None,
    max_entries: int = 200,
    known: Collection[str] = (),
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
    ``known``: ``entry_keys`` of the previous parse whose articles were all handed on:
    entries with exactly the same bytes are left out before feedparser runs (their articles
    are the same, already seen), so a changed feed costs about its new entries (one new item
    in a typical feed: 2.2 ms of CPU instead of 17 ms, measured by bench/poll_bench.py).
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
    data, feed_headers, encoding_problem = _to_utf8(data, header_map)
    _refuse_expanding_entities(data)
    keep = max(0, max_entries) + _ENTRY_SLACK
    reduced = _drop_known_entries(data, frozenset(known), max(0, max_entries))
    skipped = 0
    if reduced is not None:
        data, known_present, new_keys, in_document = reduced
        skipped = len(known_present)
    data, entry_tags = _cut_after_entries(data, keep)
    try:
        # BytesIO, never bytes or str: feedparser opens those as paths or URLs.
        # Its HTML sanitizer and relative-URI rewriting run in pure Python over every HTML
        # field (a 9 MiB description: 6.0 s with them, 1.4 s without, measured) and their
        # output is thrown away by clean_text, which drops all markup and script/style text.
        parsed = feedparser.parse(
            io.BytesIO(data),
            response_headers=feed_headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # feedparser is not supposed to raise; never let it kill a poll
        raise ParseError(f"feed parser failed ({type(exc).__name__})") from exc

    entries = [e for e in parsed.get("entries") or [] if isinstance(e, Mapping)]
    feed_data = parsed.get("feed")
    if not isinstance(feed_data, Mapping):
        feed_data = {}
    problems = [encoding_problem, parsed.get("bozo_exception") if parsed.get("bozo") else None]
    warning = "; ".join(dict.fromkeys(_describe(p) for p in problems if p is not None)) or None
    if not entries and skipped:
        pass  # every entry was known: nothing new, whatever feedparser thinks of the rest
    elif not entries:
        if _looks_like_html(data, header_map):
            raise ParseError("got an HTML page, not a feed", kind=FetchErrorKind.NOT_A_FEED)
        if not parsed.get("version"):
            raise ParseError("no RSS, Atom or RDF document found", kind=FetchErrorKind.NOT_A_FEED)
        if warning:
            raise ParseError(f"broken XML: {warning}", kind=FetchErrorKind.PARSE)

    feed_language = _language_code(feed_data.get("language"))
    configured_language = _language_code(language)
    articles: list[Article] = []
    seen_ids: set[str] = set()
    consumed = 0
    for entry in entries:
        if len(articles) >= max_entries:
            break
        consumed += 1
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

    entry_keys: tuple[str, ...] = ()
    if reduced is not None and len(entries) == min(len(new_keys), keep):
        # feedparser saw exactly the entries delimited here, so entry i is chunk i: the
        # first `consumed` were turned into articles (or found empty / duplicate)
        entry_keys = (*known_present, *new_keys[:consumed])
    ttl_minutes = _small_int(feed_data.get("ttl"))
    return ParsedFeed(
        articles=tuple(articles),
        title=clean_text(_text(feed_data.get("title")), TITLE_LIMIT),
        ttl_s=ttl_minutes * 60 if ttl_minutes else None,
        update_period_s=_update_period_s(feed_data),
        warning=warning,
        entries_total=in_document if reduced is not None and skipped else (
            entry_tags if entry_tags > keep else len(entries)),
        entry_keys=entry_keys,
        skipped=skipped,
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
