"""A programmable feed server on 127.0.0.x (aiohttp.web): one handler per path, every
request recorded. Handlers for well-behaved and hostile feeds (docs/reliability.md table C):
conditional GET, status codes, redirects, a gzip bomb, an endless body, a lying
Content-Length, slowloris.

``LocalServer(host="127.0.0.2")`` binds another loopback address, so a test can keep a
healthy feed on a different host than hostile ones (the fetcher's per-host limit is per
host name, not per port).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RSS = "application/rss+xml"


@dataclass
class Request:
    path: str
    headers: dict[str, str]


@dataclass
class LocalServer:
    host: str = "127.0.0.1"
    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> LocalServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a slow handler stops when the client gives up;
        # shutdown_timeout: teardown does not wait for it.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.2,
                                     access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Request(request.path, dict(request.headers)))
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="not found")
        return await handler(request)

    @property
    def allow(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    def last(self, path: str) -> Request:
        return [r for r in self.requests if r.path == path][-1]


def feed(body: bytes, content_type: str = RSS, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type, **headers})

    return handler


class Conditional:
    """A feed honouring If-None-Match / If-Modified-Since; ``body`` may be replaced."""

    def __init__(self, body: bytes, *, etag: str = '"v1"',
                 last_modified: str = "Fri, 02 Oct 2020 10:00:00 GMT", **headers: str) -> None:
        self.body, self.etag, self.last_modified = body, etag, last_modified
        self.headers = headers

    def update(self, body: bytes, etag: str, last_modified: str) -> None:
        self.body, self.etag, self.last_modified = body, etag, last_modified

    async def __call__(self, request: web.Request) -> web.Response:
        validators = {"ETag": self.etag, "Last-Modified": self.last_modified, **self.headers}
        if (request.headers.get("If-None-Match") == self.etag
                or request.headers.get("If-Modified-Since") == self.last_modified):
            return web.Response(status=304, headers=validators)
        return web.Response(body=self.body, headers={"Content-Type": RSS, **validators})


def status(code: int, text: str = "no", **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=code, text=text, headers=headers)

    return handler


def redirect(code: int, location: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=code, headers={"Location": location})

    return handler


def gzip_bomb(inflated: int) -> Handler:
    """``inflated`` zero bytes, gzip-compressed (ratio ~1000:1), sent as a feed."""
    bomb = gzip.compress(b"\0" * inflated, compresslevel=9)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Type": RSS,
                                                "Content-Encoding": "gzip"})

    return handler


def endless(chunk: bytes = b"<rss><channel>" + b"x" * 65_536) -> Handler:
    """A chunked body that never ends (until the client hangs up)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": RSS})
        await response.prepare(request)
        while True:
            await response.write(chunk)

    return handler


def lying_length(declared: int) -> Handler:
    """Headers announce ``declared`` bytes; a few are sent, then the server waits."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": RSS})
        response.content_length = declared
        await response.prepare(request)
        await response.write(b"<rss>")
        await asyncio.Event().wait()  # until the client hangs up (handler cancelled)
        return response

    return handler


def slowloris(every: float = 2.0) -> Handler:
    """Headers at once, then one body byte every ``every`` seconds, forever."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": RSS})
        await response.prepare(request)
        for byte in b"<rss version='2.0'><channel>" * 1000:
            await response.write(bytes([byte]))
            await asyncio.sleep(every)  # the server's pace, not test synchronisation
        return response

    return handler
