"""Article pages to main text: the only caller of the extraction library (trafilatura).

``extract_article(body, headers, url)`` takes the bytes the page fetcher downloaded and
returns an ``Extracted`` (main text, language, publication date) or raises
``ExtractError`` with a closed kind:

* ``not_an_article`` — the response is not HTML (Content-Type), or the page holds less than
  ``min_words`` words of main text (a home page, a gallery, a paywall stub);
* ``extract`` — the library failed on the page (it raised).

Why trafilatura (docs/full-text.md has the figures of bench/extract_bench.py): on news
pages built like real ones in French, English and Arabic it recovered the body as well as
readability-lxml while leaking far less of the page's chrome (menus, "read also" boxes,
related lists, comments), and it finds the publication date and page language on its own.

The library sits behind ``Extractor`` (a function of decoded HTML and URL), so a test or a
benchmark can pass another one. Decoding is ours (``decode_html``): the HTTP charset, a
byte-order mark, then the page's ``<meta charset>`` / ``http-equiv`` declaration, as
browsers do — so a page in windows-1256 that says so only in a meta tag reads right.

The text goes through ``textclean.clean_plain`` (controls and bidi characters removed,
whitespace tidied, cut at ``BODY_LIMIT``). Extraction is CPU-bound (lxml, a few
milliseconds per page): callers run it off the event loop.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import trafilatura
from trafilatura.utils import load_html

from newswatch.core.errors import ExtractError, FetchErrorKind
from newswatch.monitor.textclean import clean_plain

__all__ = [
    "BODY_LIMIT",
    "MIN_ARTICLE_WORDS",
    "Extracted",
    "Extractor",
    "decode_html",
    "extract_article",
    "trafilatura_extractor",
]

#: Characters of main text kept (the longest news articles are ~60,000 characters).
BODY_LIMIT = 100_000
#: Fewer words of main text than this: not an article (a video or gallery page, a paywall
#: stub). A news brief runs to 80 words or more; a stub's caption plus the bits of chrome
#: that extraction keeps on such a page (a cookie banner) stays under 40 (measured on
#: tests/fakes/news_pages.py's layouts).
MIN_ARTICLE_WORDS = 40
# A line of extracted text is a link list when link texts cover this share of it.
_LINK_SHARE = 0.6
# How far into the page the meta charset declaration is looked for (WHATWG prescan: 1024
# bytes; real pages put a long <title> and scripts first, so a little more).
_PRESCAN_BYTES = 4096
_META_CHARSET = re.compile(
    rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)
_HTTP_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)
_HTML_LANG = re.compile(rb"""<html\b[^>]*?\blang\s*=\s*["']?([A-Za-z]{2})\b""", re.IGNORECASE)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
# Labels browsers read as another encoding (WHATWG Encoding): latin-1 and ASCII pages are
# windows-1252 in practice (curly quotes in 0x80-0x9F).
_ALIASES = {"iso-8859-1": "windows-1252", "latin1": "windows-1252", "latin-1": "windows-1252",
            "ascii": "windows-1252", "us-ascii": "windows-1252", "iso8859-1": "windows-1252"}


@dataclass(frozen=True, slots=True)
class Extracted:
    """An article page's main text (plain, paragraphs separated by line breaks), its
    two-letter language and its publication date (aware UTC), each None when not found."""

    text: str
    language: str | None = None
    published: datetime | None = None

    @property
    def words(self) -> int:
        return len(self.text.split())


class Extractor(Protocol):
    """Main text of a decoded HTML page; None when the page has none."""

    def __call__(self, html: str, *, url: str) -> Extracted | None: ...


def _codec(label: bytes | str) -> str | None:
    """Python's codec name for an encoding label, or None when unknown (or a UTF-16/32
    label inside an ASCII-compatible document: it cannot be true, as browsers reason)."""
    text = label.decode("ascii", "ignore") if isinstance(label, bytes) else label
    text = _ALIASES.get(text.strip().lower(), text.strip().lower())
    try:
        name = codecs.lookup(text).name
    except LookupError:
        return None
    return "utf-8" if name.startswith(("utf-16", "utf-32")) else name


def decode_html(body: bytes, headers: Mapping[str, str]) -> str:
    """The page as text: encoding from the HTTP Content-Type charset, else a byte-order
    mark, else a ``<meta>`` charset in the first 4 KiB, else UTF-8; bytes invalid in that
    encoding become U+FFFD. ``headers``: lower-case names."""
    declared = _HTTP_CHARSET.search(headers.get("content-type", ""))
    encoding = _codec(declared.group(1)) if declared else None
    if encoding is None:
        for bom, name in _BOMS:
            if body.startswith(bom):
                return body[len(bom):].decode(name, "replace")
        meta = _META_CHARSET.search(body[:_PRESCAN_BYTES])
        encoding = _codec(meta.group(1)) if meta else None
    return body.decode(encoding or "utf-8", "replace")


def _date(value: str | None) -> datetime | None:
    """htmldate's ``YYYY-MM-DD`` (or ISO date-time) as aware UTC, None when unparseable."""
    if not value:
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        return None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def trafilatura_extractor(html: str, *, url: str) -> Extracted | None:
    """trafilatura's main text without comments and tables (tables on news pages are
    mostly layout or sports scores), with its metadata (htmldate for the date), minus the
    lines that are link lists (``_drop_link_lines``).

    ``favor_precision``: on a short article trafilatura's default falls back to taking the
    comments under it (measured: 12 of 150 Arabic pages); a missed short page costs little
    (the teaser is matched anyway), a comment matched as the article is a false alert."""
    tree = load_html(html)
    if tree is None:
        return None
    links = _link_texts(tree)  # before trafilatura prunes the tree in place
    found = trafilatura.bare_extraction(
        tree, url=url, include_comments=False, include_tables=False, with_metadata=True,
        favor_precision=True)
    if found is None or isinstance(found, dict) or not found.text:
        return None
    language = found.language[:2].lower() if found.language else None
    return Extracted(_drop_link_lines(found.text, links), language, _date(found.date))


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _link_texts(tree: Any) -> list[str]:
    """The texts of the page's links of 2 words or more, normalised, longest first."""
    texts = {_normal(a.text_content()) for a in tree.iter("a")}
    return sorted((t for t in texts if " " in t), key=len, reverse=True)


def _drop_link_lines(text: str, links: list[str]) -> str:
    """``text`` without its lines that are mostly link texts (at least ``_LINK_SHARE`` of
    their characters).

    Lists of links are what a page holds besides its article: menus, "read also" boxes,
    related and most-read lists, footers. On a page that is not an article (a video or a
    gallery with a caption), trafilatura's fallbacks take such lists as the text, and a
    related list naming a rule's terms would then make the page match (measured on the
    legacy layout of tests/fakes/news_pages.py). An article's sentences are not link texts.
    """
    if not links:
        return text
    kept = []
    for line in text.split("\n"):
        normal = _normal(line)
        covered = 0
        for link in links:
            if link in normal:
                covered += len(link)
                normal = normal.replace(link, " ")
        if not line.strip() or covered < _LINK_SHARE * len(_normal(line)):
            kept.append(line)
    return "\n".join(kept)


def _language(body: bytes, headers: Mapping[str, str]) -> str | None:
    """The page's declared language: ``<html lang>``, else Content-Language."""
    found = _HTML_LANG.search(body[:_PRESCAN_BYTES])
    if found:
        return found.group(1).decode("ascii").lower()
    header = headers.get("content-language", "").strip()[:2].lower()
    return header if len(header) == 2 and header.isascii() and header.isalpha() else None


def extract_article(
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    *,
    extractor: Extractor = trafilatura_extractor,
    min_words: int = MIN_ARTICLE_WORDS,
) -> Extracted:
    """The main text of an article page, or ExtractError (module docstring).

    ``headers``: the fetch result's (lower-case names; Content-Type says whether it is HTML
    and may give the charset). ``url``: the page's final URL (relative links, site rules).
    """
    media_type = headers.get("content-type", "text/html").split(";", 1)[0].strip().lower()
    if media_type and media_type not in _HTML_TYPES:
        raise ExtractError(f"not an HTML page ({media_type})",
                           kind=FetchErrorKind.NOT_AN_ARTICLE)
    html = decode_html(body, headers)
    try:
        found = extractor(html, url=url)
    except Exception as error:  # a library bug on one page must not stop the poller
        raise ExtractError(f"extraction failed ({type(error).__name__}: {error})"[:300],
                           kind=FetchErrorKind.EXTRACT) from error
    text = clean_plain(found.text, BODY_LIMIT) if found is not None else ""
    words = len(text.split())
    if words < min_words:
        raise ExtractError(f"{words} words of main text (an article has {min_words} or more)",
                           kind=FetchErrorKind.NOT_AN_ARTICLE)
    assert found is not None
    language = _language(body, headers) or found.language
    return Extracted(text, language, found.published)
