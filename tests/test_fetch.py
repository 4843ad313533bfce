"""The fetch layer against real local servers (aiohttp.web and raw asyncio on 127.0.0.1).

No mocks and no sleeps used for synchronisation: every test talks HTTP to a server bound to
127.0.0.1 on a free port, and the fetcher allow-lists exactly that host:port. Address-policy
tests that need other addresses never connect: they fail in check_url or in the resolver.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import brotli
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from newswatch.core.errors import FetchError, FetchErrorKind
from newswatch.monitor.feedparse import parse_feed
from newswatch.monitor.fetch import (
    USER_AGENT,
    Fetcher,
    FetchLimits,
    parse_max_age,
    parse_retry_after,
)
from newswatch.monitor.netguard import (
    GuardedResolver,
    check_redirect,
    check_url,
    is_public_address,
    normalize_allow,
)

FEEDS = Path(__file__).parent / "data" / "feeds"
RSS_BODY = (FEEDS / "rss2_bbc.xml").read_bytes()
MIB = 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class LocalServer:
    """aiohttp.web on 127.0.0.1:<free port>; records every request; routes set per test."""

    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a slow handler stops when the client gives up;
        # shutdown_timeout: teardown does not wait for it.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.path, dict(request.headers)))
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404)
        return await handler(request)

    @property
    def allow(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def hits(self) -> int:
        return len(self.seen)


@dataclass
class RawServer:
    """asyncio TCP server that answers every request with fixed bytes, then waits for the
    client to hang up (for responses aiohttp.web will not produce, e.g. a lying length)."""

    response: bytes
    hits: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.hits += 1
            writer.write(self.response)
            await writer.drain()
            await reader.read()  # until the client closes
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class StubResolver(AbstractResolver):
    """Name lookup from a table; a list value is answered one entry per call (rebinding)."""

    def __init__(self, table: dict[str, str | list[str]]) -> None:
        self.table = table
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answer = self.table[host]
        address = answer.pop(0) if isinstance(answer, list) else answer
        self.calls += 1
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=family,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    local = LocalServer()
    await local.start()
    yield local
    await local.close()


@pytest.fixture
async def other_server() -> AsyncIterator[LocalServer]:
    """A second server that is NOT on the allow-list (an internal service)."""
    local = LocalServer()
    await local.start()
    yield local
    await local.close()


@pytest.fixture
async def fetcher(server: LocalServer) -> AsyncIterator[Fetcher]:
    async with Fetcher(FetchLimits(), allow=[server.allow]) as f:
        yield f


async def expect_error(coro: Awaitable[object], kind: FetchErrorKind) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await coro
    assert caught.value.kind == kind, str(caught.value)
    return caught.value


def serve_feed(**headers: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=RSS_BODY, content_type="application/rss+xml", headers=headers)

    return handler


def redirect(status: int, location: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": location})

    return handler


def status(code: int, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=code, headers=headers, text="no")

    return handler


# --- success paths -----------------------------------------------------------------------


async def test_200_returns_real_feed_with_validators(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = serve_feed(
        ETag='"v1"',
        **{
            "Last-Modified": "Thu, 25 Feb 2021 10:15:00 GMT",
            "Cache-Control": "public, max-age=300",
        },
    )
    result = await fetcher.fetch(server.url("/feed"))

    assert result.status == 200
    assert result.body == RSS_BODY
    assert result.content_hash == hashlib.sha256(RSS_BODY).hexdigest()
    assert result.etag == '"v1"'
    assert result.last_modified == "Thu, 25 Feb 2021 10:15:00 GMT"
    assert result.cache_max_age_s == 300
    assert result.final_url == server.url("/feed")
    assert result.headers["content-type"].startswith("application/rss+xml")
    assert result.headers["content-location"] == server.url("/feed")
    assert not result.not_modified and not result.unchanged and result.has_new_content
    assert result.permanent_redirect_to is None
    assert result.elapsed_s >= 0
    assert server.seen[0].headers["User-Agent"] == USER_AGENT
    assert "If-None-Match" not in server.seen[0].headers
    parsed = parse_feed(result.body, feed="bbc", headers=result.headers, language=None)
    assert [a.title for a in parsed.articles] == ["Marcus Aurelius"]


async def test_304_sends_validators_and_reports_not_modified(
    server: LocalServer, fetcher: Fetcher
) -> None:
    async def conditional(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304)
        return web.Response(body=RSS_BODY, headers={"ETag": '"v1"'})

    server.routes["/feed"] = conditional
    first = await fetcher.fetch(server.url("/feed"))
    second = await fetcher.fetch(
        server.url("/feed"), etag=first.etag, last_modified="Thu, 25 Feb 2021 10:15:00 GMT"
    )

    assert second.not_modified and not second.has_new_content
    assert second.status == 304 and second.body == b"" and second.content_hash is None
    assert second.etag == '"v1"'  # carried over although the 304 repeated nothing
    assert server.seen[1].headers["If-None-Match"] == '"v1"'
    assert server.seen[1].headers["If-Modified-Since"] == "Thu, 25 Feb 2021 10:15:00 GMT"


async def test_same_body_is_reported_unchanged_by_hash(
    server: LocalServer, fetcher: Fetcher
) -> None:
    server.routes["/feed"] = serve_feed()  # no validators: only the hash can tell
    first = await fetcher.fetch(server.url("/feed"))
    second = await fetcher.fetch(server.url("/feed"), previous_hash=first.content_hash)

    assert second.unchanged and not second.has_new_content
    assert not second.not_modified


async def test_validators_with_line_breaks_are_not_sent(
    server: LocalServer, fetcher: Fetcher
) -> None:
    server.routes["/feed"] = serve_feed()
    await fetcher.fetch(server.url("/feed"), etag='"x"\r\nX-Injected: 1')

    assert "If-None-Match" not in server.seen[0].headers
    assert "X-Injected" not in server.seen[0].headers


# --- HTTP status errors ------------------------------------------------------------------


async def test_429_with_retry_after_seconds(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = status(429, **{"Retry-After": "120"})
    error = await expect_error(fetcher.fetch(server.url("/feed")), FetchErrorKind.RATE_LIMITED)
    assert error.status == 429
    assert error.retry_after == 120.0


async def test_429_with_retry_after_http_date(server: LocalServer, fetcher: Fetcher) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    server.routes["/feed"] = status(429, **{"Retry-After": when})
    error = await expect_error(fetcher.fetch(server.url("/feed")), FetchErrorKind.RATE_LIMITED)
    assert error.retry_after is not None and 80 <= error.retry_after <= 90


async def test_503_with_retry_after_is_rate_limited(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = status(503, **{"Retry-After": "30"})
    error = await expect_error(fetcher.fetch(server.url("/feed")), FetchErrorKind.RATE_LIMITED)
    assert (error.status, error.retry_after) == (503, 30.0)


async def test_503_without_retry_after_is_http_5xx(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = status(503)
    error = await expect_error(fetcher.fetch(server.url("/feed")), FetchErrorKind.HTTP_5XX)
    assert error.status == 503 and error.retry_after is None


async def test_410_gone_is_http_4xx_with_status(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = status(410)
    error = await expect_error(fetcher.fetch(server.url("/feed")), FetchErrorKind.HTTP_4XX)
    assert error.status == 410
    assert "410" in str(error)


# --- redirects ---------------------------------------------------------------------------


async def test_301_to_valid_path_reports_permanent_move(
    server: LocalServer, fetcher: Fetcher
) -> None:
    server.routes["/old"] = redirect(301, "/new")
    server.routes["/new"] = serve_feed()
    result = await fetcher.fetch(server.url("/old"))

    assert result.status == 200 and result.body == RSS_BODY
    assert result.final_url == server.url("/new")
    assert result.permanent_redirect_to == server.url("/new") and result.moved_permanently


async def test_temporary_redirect_is_not_a_move(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/a"] = redirect(308, "/b")  # permanent
    server.routes["/b"] = redirect(302, "/c")  # temporary: /b stays the address
    server.routes["/c"] = serve_feed()
    result = await fetcher.fetch(server.url("/a"))

    assert result.final_url == server.url("/c")
    assert result.permanent_redirect_to == server.url("/b")


async def test_redirect_to_unlisted_local_port_is_blocked(
    server: LocalServer, other_server: LocalServer, fetcher: Fetcher
) -> None:
    other_server.routes["/secret"] = serve_feed()
    server.routes["/feed"] = redirect(301, other_server.url("/secret"))

    error = await expect_error(fetcher.fetch(server.url("/feed")), FetchErrorKind.BLOCKED)
    assert "not a public address" in str(error)
    assert other_server.hits == 0


async def test_redirect_loop_is_an_error(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/a"] = redirect(302, "/b")
    server.routes["/b"] = redirect(302, "/a")
    error = await expect_error(fetcher.fetch(server.url("/a")), FetchErrorKind.BLOCKED)
    assert "loop" in str(error)
    assert server.hits == 2


async def test_six_redirects_refused_five_followed(server: LocalServer, fetcher: Fetcher) -> None:
    for n in range(1, 7):
        server.routes[f"/hop/{n}"] = redirect(302, f"/hop/{n - 1}")
    server.routes["/hop/0"] = serve_feed()

    error = await expect_error(fetcher.fetch(server.url("/hop/6")), FetchErrorKind.BLOCKED)
    assert "more than 5 redirects" in str(error)
    assert server.hits == 6  # the start plus five followed hops; the sixth target not asked
    server.seen.clear()

    result = await fetcher.fetch(server.url("/hop/5"))
    assert result.final_url == server.url("/hop/0")
    assert server.hits == 6


def test_https_to_http_downgrade_is_refused() -> None:
    with pytest.raises(FetchError) as caught:
        check_redirect("https://news.example/feed", "http://news.example/feed")
    assert caught.value.kind == FetchErrorKind.BLOCKED
    check_redirect("http://news.example/feed", "https://news.example/feed")  # upgrade is fine


# --- hostile bodies ----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_compression_bomb_stops_at_the_cap(
    server: LocalServer, fetcher: Fetcher, encoding: str
) -> None:
    zeros = b"\0" * (20 * MIB)
    bomb = gzip.compress(zeros) if encoding == "gzip" else brotli.compress(zeros)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Encoding": encoding, "Content-Type": "application/xml"}
        )

    server.routes["/bomb"] = handler
    error = await expect_error(fetcher.fetch(server.url("/bomb")), FetchErrorKind.TOO_LARGE)
    assert "after decompression" in str(error)


async def test_body_cap_boundary(server: LocalServer) -> None:
    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query["n"]))

    server.routes["/sized"] = sized
    async with Fetcher(FetchLimits(max_bytes=1000), allow=[server.allow]) as fetcher:
        result = await fetcher.fetch(server.url("/sized?n=1000"))
        assert len(result.body) == 1000
        error = await expect_error(
            fetcher.fetch(server.url("/sized?n=1001")), FetchErrorKind.TOO_LARGE
        )
    assert "Content-Length 1001" in str(error)


async def test_endless_chunked_body_stops_at_the_cap(server: LocalServer, fetcher: Fetcher) -> None:
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/xml"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"<item>" + b"x" * 65_530
        while True:  # ends when the client hangs up (write raises) or the handler is cancelled
            await response.write(chunk)
            sent += len(chunk)

    server.routes["/endless"] = endless
    await expect_error(fetcher.fetch(server.url("/endless")), FetchErrorKind.TOO_LARGE)
    assert sent >= 10 * MIB


async def test_content_length_over_cap_is_refused_up_front() -> None:
    raw = RawServer(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
        b"Content-Length: 10000000000\r\n\r\n<rss>"
    )
    await raw.start()
    try:
        async with Fetcher(allow=[f"127.0.0.1:{raw.port}"]) as fetcher:
            # refused from the header: reading the body first would end in a timeout
            error = await expect_error(
                fetcher.fetch(f"http://127.0.0.1:{raw.port}/feed"), FetchErrorKind.TOO_LARGE
            )
        assert "Content-Length 10000000000" in str(error)
        assert raw.hits == 1
    finally:
        await raw.close()


async def test_slowloris_is_stopped_by_the_total_deadline(server: LocalServer) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/xml"})
        response.content_length = 1000
        await response.prepare(request)
        for _ in range(1000):  # 1 byte every 2 s: every single read is quick enough
            await response.write(b" ")
            await asyncio.sleep(2)
        return response

    server.routes["/slow"] = slow
    async with Fetcher(FetchLimits(total=1.5), allow=[server.allow]) as fetcher:
        started = time.monotonic()
        # without the overall deadline the body would trickle in for 2,000 s: a minute's
        # guard fails the test instead of hanging it, whatever the machine's load
        error = await asyncio.wait_for(
            expect_error(fetcher.fetch(server.url("/slow")), FetchErrorKind.TIMEOUT), 60)
        elapsed = time.monotonic() - started
    assert "1.5 s" in str(error)
    assert elapsed >= 1.4, f"aborted after {elapsed:.2f} s, before the deadline"


# --- transport errors --------------------------------------------------------------------


async def test_connection_refused_is_connect() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with Fetcher(allow=[f"127.0.0.1:{port}"]) as fetcher:
        error = await expect_error(
            fetcher.fetch(f"http://127.0.0.1:{port}/feed"), FetchErrorKind.CONNECT
        )
    assert f"127.0.0.1:{port}" in str(error)


async def test_unresolvable_name_is_dns() -> None:
    async with Fetcher() as fetcher:
        error = await expect_error(fetcher.fetch("http://feed.invalid/rss"), FetchErrorKind.DNS)
    assert "feed.invalid" in str(error)


async def test_tls_to_a_plain_http_port_is_tls(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/feed"] = serve_feed()
    await expect_error(fetcher.fetch(f"https://127.0.0.1:{server.port}/feed"), FetchErrorKind.TLS)


async def test_blackholed_connect_hits_the_connect_timeout() -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, like a blackhole.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(3)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    try:
        limits = FetchLimits(connect=0.5, total=5)
        async with Fetcher(limits, allow=[f"127.0.0.1:{port}"]) as fetcher:
            error = await expect_error(
                fetcher.fetch(f"http://127.0.0.1:{port}/feed"), FetchErrorKind.TIMEOUT
            )
        # the connect limit (0.5 s) fired, not the overall one (5 s): their messages differ
        assert "could not connect" in str(error) and "within 0.5 s" in str(error)
    finally:
        for sock in (*fillers, listener):
            sock.close()


async def test_hung_tls_handshake_hits_the_connect_timeout() -> None:
    silent = RawServer(b"")  # accepts, reads, never answers the ClientHello
    await silent.start()
    try:
        limits = FetchLimits(connect=0.5, total=5)
        async with Fetcher(limits, allow=[f"127.0.0.1:{silent.port}"]) as fetcher:
            error = await expect_error(
                fetcher.fetch(f"https://127.0.0.1:{silent.port}/feed"), FetchErrorKind.TIMEOUT
            )
        # the connect limit fired (0.5 s), not the overall deadline (5 s)
        assert "could not connect" in str(error) and "within 0.5 s" in str(error)
    finally:
        await silent.close()


async def test_per_host_concurrency_is_two(server: LocalServer, fetcher: Fetcher) -> None:
    in_flight = 0
    most = 0
    two_arrived = asyncio.Event()

    async def gated(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 2:
            two_arrived.set()
        await two_arrived.wait()  # the first request waits for the second one
        in_flight -= 1
        return web.Response(body=RSS_BODY)

    server.routes["/feed"] = gated
    results = await asyncio.gather(*(fetcher.fetch(server.url("/feed")) for _ in range(6)))
    assert len(results) == 6
    assert most == 2


# --- SSRF policy -------------------------------------------------------------------------

D1_URLS = [
    "http://127.0.0.1/",
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    # beyond D1: other spellings and neighbours
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://127.1/",
    "http://127.0.0.1./",
    "http://[::ffff:7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://localhost/",
    "http://api.localhost/",
]


@pytest.mark.parametrize("url", D1_URLS)
def test_check_url_rejects_internal_addresses(url: str) -> None:
    with pytest.raises(FetchError) as caught:
        check_url(url, frozenset())
    assert caught.value.kind == FetchErrorKind.BLOCKED


async def test_internal_spellings_never_reach_the_server(server: LocalServer) -> None:
    server.routes["/feed"] = serve_feed()
    port = server.port
    spellings = [
        f"http://127.0.0.1:{port}/feed",
        f"http://2130706433:{port}/feed",
        f"http://0177.0.0.1:{port}/feed",
        f"http://0x7f.1:{port}/feed",
        f"http://127.1:{port}/feed",
        f"http://[::ffff:127.0.0.1]:{port}/feed",
        f"http://localhost:{port}/feed",
    ]
    async with Fetcher() as fetcher:  # nothing allow-listed
        for url in spellings:
            await expect_error(fetcher.fetch(url), FetchErrorKind.BLOCKED)
    assert server.hits == 0


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://ftp.example.com/feed.xml",
        "gopher://example.com/",
        "feed://example.com/rss",
        "data:text/xml,<rss/>",
        "javascript:alert(1)",
        "/etc/passwd",
        "",
        "http:///nohost",
        "http://user:secret@example.com/feed",
        "http://example.com@127.0.0.1/feed",
        "http://example.com\\@127.0.0.1/feed",
        "http://example.com/\r\nX-Injected: 1",
    ],
)
async def test_unfetchable_urls_are_blocked(url: str) -> None:
    async with Fetcher() as fetcher:
        await expect_error(fetcher.fetch(url), FetchErrorKind.BLOCKED)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/feed.xml",
        "http://93.184.216.34/rss",
        "http://[2606:4700::1111]/",
        "https://news.example:8443/a?b=c",
    ],
)
def test_check_url_accepts_public_urls(url: str) -> None:
    check_url(url, frozenset())


def test_allow_list_exempts_exactly_host_and_port() -> None:
    allow = normalize_allow(["127.0.0.1:8080", "Bridge.Internal:3000", "[::1]:9000"])
    check_url("http://127.0.0.1:8080/feed", allow)
    check_url("http://bridge.internal:3000/x", allow)
    check_url("http://[::1]:9000/", allow)
    for refused in ("http://127.0.0.1:8081/feed", "http://127.0.0.2:8080/feed"):
        with pytest.raises(FetchError):
            check_url(refused, allow)
    with pytest.raises(ValueError):
        normalize_allow(["127.0.0.1"])


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.0.0.5", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.127.255.254", False),
        ("0.0.0.0", False),
        ("0.1.2.3", False),
        ("224.0.0.251", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("::", False),
        ("::1", False),
        ("fc00::1", False),
        ("fd00::1", False),
        ("fe80::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::127.0.0.1", False),
        ("2002:7f00:1::1", False),
        ("2002:0a00:0001::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
        ("64:ff9b::10.0.0.1", False),
        ("2001:db8::1", False),
        ("not an address", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public


async def test_resolver_refuses_public_name_with_private_answer() -> None:
    guard = GuardedResolver(frozenset(), StubResolver({"public.example": "10.0.0.5"}))
    with pytest.raises(FetchError) as caught:
        await guard.resolve("public.example", 80)
    assert caught.value.kind == FetchErrorKind.BLOCKED
    assert "10.0.0.5" in str(caught.value)


async def test_resolver_checks_every_lookup_against_rebinding() -> None:
    stub = StubResolver({"rebind.example": ["93.184.216.34", "127.0.0.1"]})
    guard = GuardedResolver(frozenset(), stub)
    first = await guard.resolve("rebind.example", 80)
    assert [a["host"] for a in first] == ["93.184.216.34"]
    with pytest.raises(FetchError):
        await guard.resolve("rebind.example", 80)
    assert stub.calls == 2


async def test_fetch_checks_the_resolved_address(server: LocalServer) -> None:
    server.routes["/feed"] = serve_feed()
    name = "public.example"
    async with Fetcher(dns=StubResolver({name: "127.0.0.1"})) as fetcher:
        error = await expect_error(
            fetcher.fetch(f"http://{name}:{server.port}/feed"), FetchErrorKind.BLOCKED
        )
    assert "127.0.0.1" in str(error)
    assert server.hits == 0

    # The same name, allow-listed by name, is fetched from the address the stub gives.
    allow = [f"{name}:{server.port}"]
    async with Fetcher(allow=allow, dns=StubResolver({name: "127.0.0.1"})) as fetcher:
        result = await fetcher.fetch(f"http://{name}:{server.port}/feed")
    assert result.status == 200 and server.hits == 1


# --- header parsing ----------------------------------------------------------------------


def test_parse_retry_after() -> None:
    now = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after("Mon, 01 Jan 2024 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0.0
    for bad in (None, "", "soon", "-5", "1.5", "9" * 5000):
        assert parse_retry_after(bad, now=now) is None


def test_parse_max_age() -> None:
    assert parse_max_age("public, max-age=600") == 600
    assert parse_max_age('max-age="60", must-revalidate') == 60
    assert parse_max_age("s-maxage=5") is None
    assert parse_max_age("no-store") is None
    assert parse_max_age(None) is None
    assert parse_max_age("max-age=" + "9" * 5000) is None
