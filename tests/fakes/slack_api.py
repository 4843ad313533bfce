"""A real local HTTP server speaking the subset of the Slack Web API that newswatch uses.

``FakeSlackAPI`` listens on 127.0.0.1 (a free port) and serves ``POST /api/chat.postMessage``
and ``POST /api/chat.update`` with JSON or form bodies, as slack_sdk sends them. It checks the
``Authorization: Bearer`` token (``invalid_auth``/``not_authed`` otherwise), records every
call in :attr:`FakeSlackAPI.calls`, stores posted messages in :attr:`FakeSlackAPI.messages`
and answers like Slack: ``{"ok": true, "channel": <id>, "ts": <increasing>, "message": …}``.

Failures are scripted per method and consumed in order (FIFO)::

    fake.script("chat.postMessage", status=429, headers={"Retry-After": "1"})
    fake.script("chat.postMessage", status=500)
    fake.script("chat.postMessage", ok=False, error="channel_not_found")
    fake.unscript("chat.postMessage")    # drop what is still queued: calls succeed again
    fake.ambiguous("chat.postMessage")   # store the message, then answer 500 (H4)
    fake.storm(60, channel="#desk")      # 429 (Retry-After 1..5) for 60 s, then normal

``chat.postEphemeral`` keeps what it was asked to show in :attr:`FakeSlackAPI.ephemerals`;
``apps.connections.open`` (authorised by the app-level token :attr:`FakeSlackAPI.app_token`)
answers :attr:`FakeSlackAPI.socket_url`, the ``ws://`` URL of a fake Socket Mode server
(tests/fakes/slack_socket.py), or ``{"ok": false}`` while none is set.

``GET``/``POST /api/conversations.history`` and ``conversations.replies`` list stored
messages newest first (``oldest``/``latest``/``limit``/``cursor``), with their ``metadata``
when ``include_all_metadata`` is set, as Slack does; message ``ts`` values follow the wall
clock (strictly increasing), so ``oldest`` works with Unix times.

Use it as ``async with FakeSlackAPI() as fake:`` or through the ``slack_api`` fixture in
:mod:`tests.fakes.fixtures`; point a client at :attr:`FakeSlackAPI.base_url`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.local import LocalApp

__all__ = ["Call", "FakeSlackAPI", "Scripted", "StoredMessage", "fired_control_sequences"]

# Control sequences Slack turns into mentions or links when they reach it unescaped.
_CONTROL_RE = re.compile(r"<(?:!channel|!here|!everyone|!subteam\^[^>]*|@[^>]*|#[^>]*)>")
_ID_RE = re.compile(r"[CGD][A-Z0-9]{6,}")


def fired_control_sequences(text: str) -> list[str]:
    """Every unescaped ``<!channel>``/``<!here>``/``<!everyone>``/``<!subteam^…>``/
    ``<@…>``/``<#…>`` in ``text`` — what would notify people in a real workspace."""
    return _CONTROL_RE.findall(text)


def _texts(value: Any) -> Iterator[str]:
    """Every ``text`` string in a message payload (top level and nested blocks)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


@dataclass(frozen=True, slots=True)
class Call:
    """One request received: API method, parsed payload, monotonic time, HTTP status
    answered, and whether the bearer token was the expected one."""

    method: str
    payload: dict[str, Any]
    at: float
    status: int
    authorized: bool


@dataclass(slots=True)
class Scripted:
    """One scripted answer. ``store`` keeps the message before failing (ambiguous)."""

    status: int = 200
    ok: bool = True
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    store: bool = False
    hang: bool = False


@dataclass(slots=True)
class StoredMessage:
    """A message as the fake workspace holds it (updated in place by chat.update)."""

    channel: str
    ts: str
    payload: dict[str, Any]
    thread_ts: str | None = None
    edits: int = 0

    def texts(self) -> list[str]:
        return list(_texts(self.payload))


class FakeSlackAPI(LocalApp):
    """See module docstring. ``token`` is the only bearer token accepted."""

    def __init__(self, token: str = "xoxb-test-token",
                 app_token: str = "xapp-test-token") -> None:
        self.token = token
        self.app_token = app_token
        self.socket_url: str | None = None
        self.calls: list[Call] = []
        self.messages: list[StoredMessage] = []
        self.ephemerals: list[dict[str, Any]] = []
        self._scripts: dict[str, deque[Scripted]] = {}
        self._refused: dict[str, str] = {}  # channel id → the error its posts answer
        self._ts = 0.0
        self._storms: list[tuple[float, str | None, tuple[int, int]]] = []
        #: (monotonic time, channel id, Retry-After seconds) of every storm 429 answered.
        self.rate_limited: list[tuple[float, str, int]] = []
        self._rng = random.Random(7)
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/api/`` — pass as ``base_url`` to slack_sdk."""
        return f"http://127.0.0.1:{self.port}/api/"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/{method}", self._handle)
        return app

    async def close(self) -> None:
        self._closing.set()  # release hanging handlers
        await super().close()

    # -- scripting ----------------------------------------------------------------------

    def script(
        self,
        method: str,
        *,
        status: int = 200,
        ok: bool = True,
        error: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: str | None = None,
        store: bool = False,
        hang: bool = False,
        times: int = 1,
    ) -> None:
        """Queue ``times`` answers for ``method``. A non-200 status without ``body`` answers
        ``{"ok": false, "error": error or "ratelimited"}`` for 429 and plain text for 5xx
        (as Slack's load balancers do); ``ok=False`` answers ``{"ok": false, "error": …}``.
        ``hang=True`` never answers (until the server closes): a read timeout for the client."""
        queue = self._scripts.setdefault(method, deque())
        for _ in range(times):
            queue.append(
                Scripted(
                    status=status,
                    ok=ok,
                    error=error,
                    headers=dict(headers or {}),
                    body=body,
                    store=store,
                    hang=hang,
                )
            )

    def refuse(self, channel: str, error: str = "not_in_channel") -> None:
        """Answer every post to ``channel`` (name or id) ``{"ok": false, "error": error}``
        until ``admit``: a permanent failure of one channel while the others work."""
        self._refused[self._channel_id(channel)] = error

    def admit(self, channel: str) -> None:
        """Posts to ``channel`` succeed again."""
        self._refused.pop(self._channel_id(channel), None)

    def unscript(self, method: str) -> int:
        """Drop the answers still queued for ``method`` (calls succeed again); returns how
        many were dropped."""
        queue = self._scripts.pop(method, deque())
        return len(queue)

    def storm(
        self, seconds: float, *, channel: str | None = None, retry_after: tuple[int, int] = (1, 5)
    ) -> None:
        """For ``seconds`` from now, answer every ``chat.postMessage`` (to ``channel``, or
        to any channel) with HTTP 429 and a ``Retry-After`` drawn from ``retry_after``
        (inclusive, seconds); nothing is stored. Afterwards calls succeed again."""
        target = None if channel is None else self._channel_id(channel)
        self._storms.append((time.monotonic() + seconds, target, retry_after))

    def _stormy(self, method: str, payload: dict[str, Any]) -> web.Response | None:
        if method != "chat.postMessage":
            return None
        now = time.monotonic()
        channel = self._channel_id(str(payload.get("channel", "")))
        for until, target, (low, high) in self._storms:
            if now < until and target in (None, channel):
                wait = self._rng.randint(low, high)
                self.rate_limited.append((now, channel, wait))
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": str(wait)})
        return None

    def ambiguous(self, method: str = "chat.postMessage", *, status: int = 500) -> None:
        """Next ``method`` call stores the message, then answers ``status`` (H4)."""
        self.script(method, status=status, store=True)

    # -- inspection ---------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def fired_mentions(self) -> list[str]:
        """Unescaped mention/link control sequences in every stored message."""
        return [seq for m in self.messages for t in m.texts() for seq in fired_control_sequences(t)]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait (on the server's change events, not a sleep) until ``predicate()`` holds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_for_calls(self, n: int, timeout: float = 5.0) -> None:
        """Wait (on an event, not a sleep) until at least ``n`` calls were received."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.calls) >= n)

    # -- server -------------------------------------------------------------------------

    def _next_ts(self) -> str:
        self._ts = max(round(time.time(), 6), round(self._ts + 0.000001, 6))
        return f"{self._ts:.6f}"

    @staticmethod
    def _channel_id(channel: str) -> str:
        if _ID_RE.fullmatch(channel):
            return channel
        digest = hashlib.sha256(channel.lstrip("#").encode()).hexdigest()[:8].upper()
        return f"C{digest}"

    @staticmethod
    async def _payload(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            data = await request.json()
            return dict(data) if isinstance(data, dict) else {}
        form = await request.post() if request.method == "POST" else request.query
        payload: dict[str, Any] = {k: str(v) for k, v in form.items()}
        for key in ("blocks", "attachments", "metadata"):
            if key in payload:
                # On bad JSON keep the raw string; Slack would answer invalid_blocks.
                with contextlib.suppress(ValueError):
                    payload[key] = json.loads(payload[key])
        return payload

    def _find(self, channel: str, ts: str) -> StoredMessage | None:
        for message in self.messages:
            if message.channel == channel and message.ts == ts:
                return message
        return None

    def _apply(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Do what Slack would do for a successful call; return the JSON answer."""
        if method == "apps.connections.open":
            if self.socket_url is None:
                return {"ok": False, "error": "internal_error"}
            return {"ok": True, "url": self.socket_url}
        channel = self._channel_id(str(payload.get("channel", "")))
        if not payload.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if method == "chat.postMessage":
            if channel in self._refused:
                return {"ok": False, "error": self._refused[channel]}
            if not payload.get("text") and not payload.get("blocks"):
                return {"ok": False, "error": "no_text"}
            ts = self._next_ts()
            thread_ts = payload.get("thread_ts")
            self.messages.append(
                StoredMessage(channel, ts, payload, None if thread_ts is None else str(thread_ts))
            )
            message = {k: v for k, v in payload.items() if k in ("text", "blocks", "thread_ts")}
            return {"ok": True, "channel": channel, "ts": ts, "message": {**message, "ts": ts}}
        if method == "chat.update":
            ts = str(payload.get("ts", ""))
            stored = self._find(channel, ts)
            if stored is None:
                return {"ok": False, "error": "message_not_found"}
            stored.payload = {**stored.payload, **payload}
            stored.edits += 1
            message = {k: v for k, v in payload.items() if k in ("text", "blocks")}
            return {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "text": payload.get("text", ""),
                "message": message,
            }
        if method in ("conversations.history", "conversations.replies"):
            return self._history(method, channel, payload)
        if method == "chat.postEphemeral":
            if not payload.get("user") or not payload.get("text"):
                return {"ok": False, "error": "invalid_arguments"}
            self.ephemerals.append({**payload, "channel": channel})
            return {"ok": True, "message_ts": self._next_ts()}
        return {"ok": False, "error": "unknown_method"}

    def _history(self, method: str, channel: str, payload: dict[str, Any]) -> dict[str, Any]:
        if not _ID_RE.fullmatch(str(payload.get("channel", ""))):
            return {"ok": False, "error": "channel_not_found"}  # Slack wants the id here
        oldest = float(payload.get("oldest") or 0)
        latest = float(payload.get("latest") or "inf")
        limit = int(payload.get("limit") or 100)
        offset = int(payload.get("cursor") or 0)
        with_meta = str(payload.get("include_all_metadata", "")).lower() in ("1", "true")
        if method == "conversations.history":
            # Top-level messages only: thread replies are not in the channel history.
            found = [m for m in self.messages if m.channel == channel and m.thread_ts is None]
        else:
            parent = str(payload.get("ts", ""))
            found = [m for m in self.messages if m.channel == channel
                     and (m.ts == parent or m.thread_ts == parent)]
        found = [m for m in found if oldest <= float(m.ts) <= latest]
        found.sort(key=lambda m: float(m.ts), reverse=method == "conversations.history")
        page = found[offset: offset + limit]
        out = []
        for m in page:
            item: dict[str, Any] = {"type": "message", "ts": m.ts,
                                    "text": m.payload.get("text", "")}
            if m.thread_ts is not None:
                item["thread_ts"] = m.thread_ts
            metadata = m.payload.get("metadata")
            if with_meta and isinstance(metadata, dict):
                item["metadata"] = metadata
            out.append(item)
        more = offset + limit < len(found)
        return {"ok": True, "messages": out, "has_more": more,
                "response_metadata": {"next_cursor": str(offset + limit) if more else ""}}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        payload = await self._payload(request)
        auth = request.headers.get("Authorization", "")
        token = self.app_token if method == "apps.connections.open" else self.token
        authorized = auth == f"Bearer {token}"
        scripted = self._scripts.get(method)
        answer: web.StreamResponse
        if not auth:
            answer = web.json_response({"ok": False, "error": "not_authed"})
        elif not authorized:
            answer = web.json_response({"ok": False, "error": "invalid_auth"})
        elif (stormy := self._stormy(method, payload)) is not None:
            answer = stormy
        elif scripted:
            step = scripted.popleft()
            if step.hang:
                self.calls.append(Call(method, payload, time.monotonic(), 0, authorized))
                async with self._changed:
                    self._changed.notify_all()
                await self._closing.wait()
                raise web.HTTPServiceUnavailable()
            if step.store:
                self._apply(method, payload)
            answer = self._scripted(step)
        else:
            answer = web.json_response(self._apply(method, payload))
        self.calls.append(Call(method, payload, time.monotonic(), answer.status, authorized))
        async with self._changed:
            self._changed.notify_all()
        return answer

    @staticmethod
    def _scripted(step: Scripted) -> web.Response:
        if step.body is not None:
            return web.Response(status=step.status, text=step.body, headers=step.headers)
        if step.status == 200:
            body: dict[str, Any] = {"ok": step.ok}
            if not step.ok:
                body["error"] = step.error or "internal_error"
            return web.json_response(body, headers=step.headers)
        if step.status == 429 or step.error is not None:
            error = step.error or "ratelimited"
            return web.json_response(
                {"ok": False, "error": error}, status=step.status, headers=step.headers
            )
        return web.Response(
            status=step.status, text=f"{step.status} upstream error", headers=step.headers
        )
