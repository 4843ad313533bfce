"""The Article: one news item as every later stage sees it.

An article is immutable. Its ``id`` is stable across polls and processes:
GUID (namespaced by feed unless it is itself a URL) → canonical URL → hash of title and date.
``url`` is the canonical link (tracking parameters and fragment dropped), so the same story
syndicated by several feeds with tracking parameters compares equal.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

Field = Literal["title", "summary", "content", "body"]
#: The text fields, in reading order: the feed entry's title, summary and content, then the
#: main text of the article's page when it was fetched (``body``, docs/full-text.md).
FIELDS: tuple[Field, ...] = ("title", "summary", "content", "body")

# Query parameters that identify a campaign or a click, never the document.
_TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_", "_hs", "mc_", "oly_")
_TRACKING_NAMES = frozenset(
    {
        "fbclid", "gclid", "dclid", "gclsrc", "msclkid", "yclid", "igshid", "twclid",
        "mc_cid", "mc_eid", "xtor", "ocid", "cmpid", "ncid", "ito", "spm", "wt_mc",
        "ref_src", "ref_url", "smid", "cmp", "sr_share", "__twitter_impression", "s_cid",
    }
)


def _is_tracking(name: str) -> bool:
    low = name.lower()
    return low in _TRACKING_NAMES or low.startswith(_TRACKING_PREFIXES)


_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
_URL_BREAKS = re.compile("[\t\n\r]")
_URL_UNSAFE = re.compile("[\x00-\x20\x7f]")


def canonical_url(url: str) -> str:
    """The link as a key: lower-case scheme and host, no default port, no fragment,
    no tracking parameters, remaining parameters sorted. Non-http(s) input is returned
    stripped but otherwise unchanged (it is never fetched nor linked). As browsers read a
    link: leading and trailing controls and spaces dropped, tabs and line breaks removed,
    any other control character or space percent-encoded (a NUL or an escape from a feed
    never reaches a message or a log as such)."""
    url = _URL_BREAKS.sub("", url.strip(_C0_AND_SPACE))
    url = _URL_UNSAFE.sub(lambda found: f"%{ord(found.group()):02X}", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return url
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
    )
    path = parts.path or "/"
    return urlunsplit((scheme, host, path, urlencode(query), ""))


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()[:24]


def article_id(
    feed: str, *, guid: str | None, link: str | None, title: str, published: str | None
) -> str:
    """Stable id: GUID → canonical link → hash of title and date (contract of the Article)."""
    guid = (guid or "").strip()
    if guid:
        if guid.lower().startswith(("http://", "https://")):
            return _digest("url", canonical_url(guid))
        return _digest("guid", feed, guid)
    if link and link.strip():
        return _digest("url", canonical_url(link))
    return _digest("hash", feed, title.strip(), published or "")


@dataclass(frozen=True, slots=True)
class Article:
    """A news item. Text fields are plain text (already cleaned of HTML and control
    characters by the parser); ``published`` is timezone-aware UTC or None. ``body`` is
    the main text of the article's page ("" until it is fetched; docs/full-text.md)."""

    id: str
    feed: str
    title: str
    url: str = ""
    summary: str = ""
    content: str = ""
    language: str | None = None
    published: datetime | None = None
    guid: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    body: str = ""

    def text(self, name: Field) -> str:
        """The plain text of one field."""
        value: str = getattr(self, name)
        return value

    @property
    def key(self) -> str:
        """Identity across feeds: the canonical URL when there is one, else the id."""
        return self.url or self.id

    def to_json(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies, and the delivery state writes
        # every story's article back with each change.
        return {
            "id": self.id, "feed": self.feed, "title": self.title, "url": self.url,
            "summary": self.summary, "content": self.content, "language": self.language,
            "published": self.published.isoformat() if self.published else None,
            "guid": self.guid, "extra": dict(self.extra),
            # only when fetched: what older versions wrote (and most articles) stays as it was
            **({"body": self.body} if self.body else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Article:
        published = data.get("published")
        return cls(
            id=str(data["id"]),
            feed=str(data.get("feed") or ""),
            title=str(data.get("title") or ""),
            url=str(data.get("url") or ""),
            summary=str(data.get("summary") or ""),
            content=str(data.get("content") or ""),
            language=data.get("language") or None,
            published=datetime.fromisoformat(published) if published else None,
            guid=data.get("guid"),
            extra=dict(data.get("extra") or {}),
            body=str(data.get("body") or ""),  # absent from what older versions wrote
        )
