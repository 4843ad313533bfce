"""Fetch one feed URL over HTTP(S), safely: the only place newswatch talks to feed servers.

``Fetcher.fetch`` returns a ``FetchResult`` or raises ``FetchError`` with a closed ``kind``.
What it guarantees (docs/reliability.md items 6, 8, 9 and tables C and D):

* SSRF: every hop passes ``netguard.check_url``; host names are resolved through
  ``netguard.GuardedResolver``, so the address connected to is the address checked.
  Redirects are followed by hand (at most ``max_redirects``), each re-checked; https → http
  downgrades and loops are refused. Environment proxies are ignored (``trust_env=False``).
* Time: one total deadline (``asyncio.timeout``) covers connect, redirects, headers and the
  whole body; a per-read timeout alone never stops a slowloris server. The deadline starts
  once a concurrency slot is held, so queueing behind a busy host does not use it up.
* Size: the body is counted after decompression while it streams and the fetch stops at
  ``max_bytes`` (gzip/deflate/br bombs included); a larger Content-Length is refused
  before reading anything.
* Politeness: at most ``per_host`` concurrent fetches per host and ``concurrency`` in total;
  conditional GET (If-None-Match / If-Modified-Since); an honest User-Agent.

Error kinds: dns, connect, tls, timeout (deadline or connect timeout), http_4xx (incl. 410;
``status`` set), http_5xx (also for a 3xx without Location), rate_limited (429, and 503 with
Retry-After; ``retry_after`` set), too_large, blocked (SSRF, scheme, downgrade, redirect loop,
more than ``max_redirects`` redirects).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType, TracebackType
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from newswatch.core.config import FetchConfig
from newswatch.core.errors import FetchError, FetchErrorKind
from newswatch.monitor.netguard import GuardedResolver, check_redirect, check_url, normalize_allow

__all__ = [
    "USER_AGENT",
    "FetchLimits",
    "FetchResult",
    "Fetcher",
    "parse_max_age",
    "parse_retry_after",
]

USER_AGENT = "newswatch/0.1 (+https://github.com/newswatch)"
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
_MIB = 1024 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECT_STATUSES = frozenset({301, 308})
# Response headers worth keeping: what feedparser needs to decode the body, and what the
# scheduler needs to pace the next poll.
_KEPT_HEADERS = (
    "content-type",
    "content-language",
    "content-encoding",
    "cache-control",
    "expires",
    "etag",
    "last-modified",
    "retry-after",
)
_MAX_HEADER_VALUE = 1024
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Bounds on one fetch and on the fetcher as a whole.

    ``total``: seconds for the whole fetch, redirects and body included. ``connect``: seconds
    to open one TCP (+TLS) connection. ``max_bytes``: body size after decompression.
    ``max_redirects``: redirects followed per fetch. ``per_host`` / ``concurrency``: fetches
    in flight per host (of the requested URL) / in total.
    """

    total: float = 20.0
    connect: float = 10.0
    max_bytes: int = 10 * _MIB
    max_redirects: int = 5
    per_host: int = 2
    concurrency: int = 20
    user_agent: str = USER_AGENT

    def __post_init__(self) -> None:
        if self.total <= 0 or self.connect <= 0:
            raise ValueError("FetchLimits: total and connect must be positive seconds")
        if self.max_bytes <= 0 or self.max_redirects < 0:
            raise ValueError("FetchLimits: max_bytes > 0 and max_redirects >= 0 required")
        if self.per_host < 1 or self.concurrency < 1:
            raise ValueError("FetchLimits: per_host and concurrency must be at least 1")


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of a successful fetch (2xx or 304).

    ``final_url``: URL of the last hop. ``status``: its HTTP status. ``headers``: lower-case
    subset of the response headers (content-type, content-language, content-encoding,
    cache-control, expires, etag, last-modified, retry-after) plus ``content-location`` set
    to ``final_url``, ready for ``feedparse.parse_feed`` (charset, relative links).
    ``body``: decompressed bytes (b"" on 304). ``etag`` / ``last_modified``: validators to
    send next time (the ones sent are carried over when a 304 omits them).
    ``content_hash``: sha256 hex of ``body`` (None on 304). ``not_modified``: the server
    answered 304. ``unchanged``: the body hash equals ``previous_hash``.
    ``permanent_redirect_to``: where the feed has moved for good — the URL reached through
    an unbroken chain of 301/308 from the start (already policy-checked), else None.
    ``retry_after_s``: Retry-After in seconds when sent. ``cache_max_age_s``: Cache-Control
    max-age in seconds when sent. ``elapsed_s``: seconds from first request to last byte.
    """

    final_url: str
    status: int
    headers: Mapping[str, str] = field(hash=False)
    body: bytes = field(repr=False)
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    not_modified: bool
    unchanged: bool
    permanent_redirect_to: str | None
    retry_after_s: float | None
    cache_max_age_s: int | None
    elapsed_s: float

    @property
    def has_new_content(self) -> bool:
        """True when the body should be parsed: neither 304 nor the same bytes as last time."""
        return not (self.not_modified or self.unchanged)

    @property
    def moved_permanently(self) -> bool:
        """True when the stored feed URL should be replaced by ``permanent_redirect_to``."""
        return self.permanent_redirect_to is not None


_RETRY_AFTER_SECONDS = re.compile(r"\d{1,10}")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})(?!\d)\"?", re.IGNORECASE)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds or an HTTP date (RFC 9110).

    A date in the past gives 0.0; anything unparseable gives None. Not capped: the scheduler
    applies its own ceiling.
    """
    if value is None:
        return None
    text = value.strip()
    if _RETRY_AFTER_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def parse_max_age(cache_control: str | None) -> int | None:
    """The ``max-age`` directive of a Cache-Control value, in seconds, or None."""
    if not cache_control:
        return None
    match = _MAX_AGE.search(cache_control)
    return int(match.group(1)) if match else None


def _header_value(value: str | None) -> str | None:
    """A header value safe to store and to send back: printable ASCII, bounded, or None."""
    if value is None:
        return None
    value = value.strip()
    if (
        not value
        or len(value) > _MAX_HEADER_VALUE
        or not value.isascii()
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return None
    return value


def _mib(size: int) -> str:
    return f"{size / _MIB:g} MiB"


@dataclass(slots=True)
class _HostSlot:
    semaphore: asyncio.Semaphore
    users: int = 0


class _ConcurrencySlots:
    """A semaphore per host (created on demand, dropped when idle) plus a global one.

    The host slot is taken first, so fetches queued behind a slow host hold no global slot.
    """

    def __init__(self, per_host: int, total: int) -> None:
        self._per_host = per_host
        self._global = asyncio.Semaphore(total)
        self._hosts: dict[str, _HostSlot] = {}

    @asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        slot = self._hosts.get(host)
        if slot is None:
            slot = self._hosts[host] = _HostSlot(asyncio.Semaphore(self._per_host))
        slot.users += 1
        try:
            async with slot.semaphore, self._global:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._hosts[host]


def _transport_error(exc: BaseException, url: str, limits: FetchLimits) -> FetchError:
    """Map an aiohttp/OS failure to the closed error kinds, with a short human message."""
    target = URL(url)
    host = target.host or url
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FetchError(FetchErrorKind.DNS, f"could not resolve {host}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return FetchError(
            FetchErrorKind.TLS, f"TLS certificate of {host} rejected: {exc.certificate_error}"
        )
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        cause = exc.os_error if isinstance(exc, aiohttp.ClientSSLError) else exc
        reason = getattr(cause, "reason", None) or type(cause).__name__
        return FetchError(FetchErrorKind.TLS, f"TLS handshake with {host} failed ({reason})")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return FetchError(
            FetchErrorKind.TIMEOUT, f"could not connect to {host} within {limits.connect:g} s"
        )
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return FetchError(FetchErrorKind.TIMEOUT, f"{host} stopped sending")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return FetchError(
            FetchErrorKind.CONNECT, f"could not connect to {host}:{target.port}: {reason}"
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return FetchError(FetchErrorKind.CONNECT, f"{host} closed the connection")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return FetchError(FetchErrorKind.CONNECT, f"{host} sent a broken or truncated body")
    if isinstance(exc, aiohttp.ClientResponseError):
        return FetchError(FetchErrorKind.CONNECT, f"{host} sent an invalid HTTP response")
    if isinstance(exc, aiohttp.InvalidURL):
        return FetchError(FetchErrorKind.BLOCKED, f"invalid URL {url!r}")
    return FetchError(FetchErrorKind.CONNECT, f"connection to {host} failed ({type(exc).__name__})")


def _visit_key(url: str) -> str:
    return str(URL(url).with_fragment(None))


class Fetcher:
    """Fetches feeds with one owned aiohttp ClientSession; use as ``async with Fetcher(...)``.

    ``allow``: ``host:port`` destinations exempt from the SSRF policy (see
    ``netguard.normalize_allow``). ``dns``: the name lookup the SSRF guard wraps (default:
    aiohttp's ThreadedResolver); tests inject a stub. The session is created on first use,
    inside the running event loop. Safe to call ``fetch`` concurrently.
    """

    @classmethod
    def for_config(cls, fetch: FetchConfig) -> Fetcher:
        """The fetcher the config's ``fetch:`` section describes."""
        return cls(FetchLimits(total=fetch.timeout, max_bytes=fetch.max_bytes),
                   allow=fetch.allow)

    def __init__(
        self,
        limits: FetchLimits | None = None,
        allow: Iterable[str] = (),
        *,
        dns: AbstractResolver | None = None,
    ) -> None:
        self.limits = limits if limits is not None else FetchLimits()
        self.allow = normalize_allow(allow)
        self._resolver = GuardedResolver(self.allow, dns)
        self._slots = _ConcurrencySlots(self.limits.per_host, self.limits.concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session, its connections and the resolver. Idempotent."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._resolver.close()

    def _open_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("Fetcher is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=self._resolver,
                limit=self.limits.concurrency,
                limit_per_host=self.limits.per_host,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Only the connect phase has an aiohttp timeout; the total deadline is ours.
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.limits.connect, sock_connect=self.limits.connect
                ),
                headers={"User-Agent": self.limits.user_agent, "Accept": _ACCEPT},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=True,
            )
        return self._session

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        previous_hash: str | None = None,
    ) -> FetchResult:
        """GET ``url`` under the limits and the SSRF policy; raise FetchError on any failure.

        ``etag`` / ``last_modified``: validators from the previous result (sent as
        If-None-Match / If-Modified-Since). ``previous_hash``: its ``content_hash``.
        """
        check_url(url, self.allow)  # refuse before queueing for a slot
        host = URL(url).raw_host or ""
        async with self._slots.hold(host.lower()):
            try:
                async with asyncio.timeout(self.limits.total):
                    return await self._fetch_following_redirects(
                        url, etag=etag, last_modified=last_modified, previous_hash=previous_hash
                    )
            except TimeoutError:
                raise FetchError(
                    FetchErrorKind.TIMEOUT,
                    f"no complete response within {self.limits.total:g} s",
                ) from None

    async def _fetch_following_redirects(
        self,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        previous_hash: str | None,
    ) -> FetchResult:
        session = self._open_session()
        started = time.monotonic()
        headers: dict[str, str] = {}
        sent_etag = _header_value(etag)
        sent_last_modified = _header_value(last_modified)
        if sent_etag:
            headers["If-None-Match"] = sent_etag
        if sent_last_modified:
            headers["If-Modified-Since"] = sent_last_modified

        current = url
        visited = {_visit_key(url)}
        permanent_to: str | None = None
        only_permanent_so_far = True
        redirects = 0
        while True:
            check_url(current, self.allow)
            try:
                async with session.get(
                    URL(current), headers=headers, allow_redirects=False
                ) as response:
                    location = response.headers.get("Location")
                    if response.status not in _REDIRECT_STATUSES or not location:
                        return await self._conclude(
                            response,
                            current,
                            started=started,
                            sent_etag=sent_etag,
                            sent_last_modified=sent_last_modified,
                            previous_hash=previous_hash,
                            permanent_to=permanent_to,
                        )
                    status = response.status
            except (aiohttp.ClientError, OSError) as exc:
                raise _transport_error(exc, current, self.limits) from exc

            # A redirect: leaving the `async with` released the connection unread.
            target = urljoin(current, location.strip())
            check_redirect(current, target, self.allow)
            key = _visit_key(target)
            if key in visited:
                raise FetchError(FetchErrorKind.BLOCKED, f"redirect loop at {target}")
            visited.add(key)
            redirects += 1
            if redirects > self.limits.max_redirects:
                raise FetchError(
                    FetchErrorKind.BLOCKED, f"more than {self.limits.max_redirects} redirects"
                )
            if only_permanent_so_far and status in _PERMANENT_REDIRECT_STATUSES:
                permanent_to = target
            else:
                only_permanent_so_far = False
            current = target

    async def _conclude(
        self,
        response: aiohttp.ClientResponse,
        final_url: str,
        *,
        started: float,
        sent_etag: str | None,
        sent_last_modified: str | None,
        previous_hash: str | None,
        permanent_to: str | None,
    ) -> FetchResult:
        """Turn the last hop's response into a FetchResult, or raise for its status/size."""
        status = response.status
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        reason = response.reason or ""
        if status == 429 or (status == 503 and retry_after is not None):
            wait = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
            raise FetchError(
                FetchErrorKind.RATE_LIMITED,
                f"HTTP {status} {reason}{wait}".replace("  ", " "),
                status=status,
                retry_after=retry_after,
            )
        if 400 <= status < 500:
            raise FetchError(
                FetchErrorKind.HTTP_4XX, f"HTTP {status} {reason}".strip(), status=status
            )
        if status in _REDIRECT_STATUSES:
            raise FetchError(
                FetchErrorKind.HTTP_5XX, f"HTTP {status} without a Location header", status=status
            )
        if status != 304 and not 200 <= status < 300:
            raise FetchError(
                FetchErrorKind.HTTP_5XX, f"HTTP {status} {reason}".strip(), status=status
            )

        kept = {
            name: value
            for name in _KEPT_HEADERS
            if (value := _header_value(response.headers.get(name))) is not None
        }
        kept["content-location"] = final_url
        etag = _header_value(response.headers.get("ETag"))
        last_modified = _header_value(response.headers.get("Last-Modified"))
        cache_max_age = parse_max_age(response.headers.get("Cache-Control"))

        if status == 304:
            body = b""
            content_hash = None
            etag = etag or sent_etag
            last_modified = last_modified or sent_last_modified
        else:
            body = await self._read_capped(response)
            content_hash = hashlib.sha256(body).hexdigest()
        return FetchResult(
            final_url=final_url,
            status=status,
            headers=MappingProxyType(kept),
            body=body,
            etag=etag,
            last_modified=last_modified,
            content_hash=content_hash,
            not_modified=status == 304,
            unchanged=content_hash is not None and content_hash == previous_hash,
            permanent_redirect_to=permanent_to,
            retry_after_s=retry_after,
            cache_max_age_s=cache_max_age,
            elapsed_s=time.monotonic() - started,
        )

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        """The decompressed body, or FetchError(TOO_LARGE) as soon as it passes the cap."""
        cap = self.limits.max_bytes
        declared = response.content_length
        if declared is not None and declared > cap:
            # Content-Length counts encoded bytes; decoded can only be larger.
            raise FetchError(
                FetchErrorKind.TOO_LARGE,
                f"Content-Length {declared} is over the {_mib(cap)} cap",
            )
        chunks: list[bytes] = []
        size = 0
        # Never ask for more than one byte past the cap, so at most cap + 1 decoded bytes are
        # taken from aiohttp. aiohttp inflates incrementally (bounded output per input chunk)
        # and pauses the socket while its buffer is full, so a bomb never inflates in full.
        while chunk := await response.content.read(min(_READ_CHUNK, cap + 1 - size)):
            size += len(chunk)
            if size > cap:
                raise FetchError(
                    FetchErrorKind.TOO_LARGE,
                    f"body is over the {_mib(cap)} cap after decompression",
                )
            chunks.append(chunk)
        return b"".join(chunks)
