"""A real HTTP server on 127.0.0.1 serving feed bodies and article pages, counting hits per
path; a path can also redirect, answer an error status, start a body that never ends, or
be held until the test releases it."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import TracebackType
from xml.sax.saxutils import escape

from aiohttp import web


def rss(items: list[dict[str, str]], *, title: str = "Test feed",
        language: str | None = None) -> bytes:
    """An RSS 2.0 document; each item dict may hold title, link, guid, description, pubDate;
    ``language``: the channel's ``<language>``."""
    parts = [f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
             f"<title>{escape(title)}</title><link>http://example.org/</link>"
             "<description>test</description>"]
    if language is not None:
        parts.append(f"<language>{escape(language)}</language>")
    for item in items:
        parts.append("<item>")
        for key in ("title", "link", "guid", "description", "pubDate"):
            if key in item:
                parts.append(f"<{key}>{escape(item[key])}</{key}>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


class FeedServer:
    """``server.serve("/a.xml", body)`` then fetch ``server.url("/a.xml")``."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.redirects: dict[str, str] = {}
        self.endless: set[str] = set()
        self.statuses: dict[str, int] = {}
        self.failing: dict[str, list[int]] = {}
        self.held: dict[str, asyncio.Event] = {}
        self.asked: dict[str, asyncio.Event] = {}
        self.hits: Counter[str] = Counter()
        self.slow_paths: dict[str, float] = {}
        self.in_flight = 0  # requests being answered now
        self.most_in_flight = 0  # the most answered at once
        self._runner: web.AppRunner | None = None
        self.port = 0

    def serve(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.bodies[path] = (body, {"Content-Type": "application/rss+xml", **(headers or {})})

    def page(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Serve an HTML page (no charset in the header: the page declares its own)."""
        self.bodies[path] = (body, {"Content-Type": "text/html", **(headers or {})})

    def redirect(self, path: str, to: str) -> None:
        """Answer ``path`` with ``302 Location: to``."""
        self.redirects[path] = to

    def never_ending(self, path: str) -> None:
        """Answer ``path`` with the start of an HTML page, then nothing, forever (until the
        client gives up: the handler is then cancelled)."""
        self.endless.add(path)

    def status(self, path: str, status: int) -> None:
        """Answer ``path`` with ``status`` and a short text body."""
        self.statuses[path] = status

    def fail_first(self, path: str, *statuses: int) -> None:
        """Answer the next requests for ``path`` with ``statuses``, one each, then as
        before (a site down for a while)."""
        self.failing[path] = list(statuses)

    def slow(self, path: str, seconds: float) -> None:
        """Answer ``path`` ``seconds`` late (a slow site: requests that overlap show in
        ``most_in_flight``)."""
        self.slow_paths[path] = seconds

    def hold(self, path: str) -> None:
        """Keep requests for ``path`` waiting until ``release(path)``; ``asked(path)``
        returns once one has arrived."""
        self.held[path] = asyncio.Event()
        self.asked[path] = asyncio.Event()

    def release(self, path: str) -> None:
        self.held[path].set()

    async def asked_for(self, path: str) -> None:
        """Return once a request for the held ``path`` has arrived."""
        await self.asked[path].wait()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def allow(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if request.path in self.slow_paths:
                await asyncio.sleep(self.slow_paths[request.path])
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        if request.path in self.redirects:
            raise web.HTTPFound(self.redirects[request.path])
        if request.path in self.endless:
            return await self._never_ending(request)
        if request.path in self.statuses:
            return web.Response(status=self.statuses[request.path], text="unavailable")
        if self.failing.get(request.path):
            return web.Response(status=self.failing[request.path].pop(0), text="unavailable")
        if request.path in self.held:
            self.asked[request.path].set()
            await self.held[request.path].wait()
        if request.path not in self.bodies:
            return web.Response(status=404, text="not found")
        body, headers = self.bodies[request.path]
        return web.Response(body=body, headers=headers)

    async def _never_ending(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        await response.write(b"<html><body><p>")
        await asyncio.Event().wait()  # never set: only the client's giving up ends this
        return response

    async def __aenter__(self) -> FeedServer:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        # handler_cancellation: a never-ending answer stops when the client gives up;
        # shutdown_timeout: teardown does not wait for it.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
