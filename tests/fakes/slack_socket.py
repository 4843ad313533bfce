"""A real local WebSocket server speaking Slack's Socket Mode protocol, and the payloads a
click on an alert's buttons makes.

``FakeSocketMode`` listens on 127.0.0.1 (a free port) at ``/link/``. Point
:attr:`FakeSlackAPI.socket_url <tests.fakes.slack_api.FakeSlackAPI.socket_url>` at
:attr:`FakeSocketMode.url` and ``apps.connections.open`` hands that URL to the client. As
Slack does, on each connection the server sends ``{"type": "hello", …}``; then
:meth:`FakeSocketMode.send` pushes an envelope ``{"envelope_id", "type", "payload",
"accepts_response_payload"}`` to the newest connection, and every ``{"envelope_id": …}``
the client sends back is an acknowledgement, kept in :attr:`FakeSocketMode.acks` with the
monotonic time it arrived. :meth:`FakeSocketMode.disconnect` sends Slack's
``{"type": "disconnect"}`` (the client must reconnect). Waits are on a condition the server
notifies on every change, never on sleeps.

:func:`block_actions` builds the ``block_actions`` payload Slack sends when someone clicks
one of the buttons of a message the fake Web API holds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.local import LocalApp
from tests.fakes.slack_api import StoredMessage

__all__ = ["Ack", "FakeSocketMode", "block_actions"]


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledgement: the envelope it names, when it arrived (monotonic), its body."""

    envelope_id: str
    at: float
    body: dict[str, Any]


class FakeSocketMode(LocalApp):
    """See module docstring."""

    def __init__(self, app_id: str = "A0FAKEAPP") -> None:
        self.app_id = app_id
        self.connections = 0  # connections accepted (a reconnect adds one)
        self.acks: list[Ack] = []
        self.sent: dict[str, float] = {}  # envelope id → monotonic time it was sent
        self.received: list[Any] = []  # every other message the client sent
        self._sockets: list[web.WebSocketResponse] = []
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=fake-ticket"

    @property
    def open(self) -> int:
        """Connections open now."""
        return sum(1 for ws in self._sockets if not ws.closed)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/link/", self._handle)
        return app

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        await super().close()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()  # answers the client's pings itself, as Slack does
        await ws.prepare(request)
        self._sockets.append(ws)
        self.connections += 1
        await ws.send_json({"type": "hello", "num_connections": self.open,
                            "debug_info": {"host": "fake-socket-mode", "build_number": 1,
                                           "approximate_connection_time": 18060},
                            "connection_info": {"app_id": self.app_id}})
        await self._notify()
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            body = json.loads(message.data)
            if isinstance(body, dict) and set(body) <= {"envelope_id", "payload"} \
                    and "envelope_id" in body:
                self.acks.append(Ack(str(body["envelope_id"]), time.monotonic(), body))
            else:
                self.received.append(body)
            await self._notify()
        await self._notify()
        return ws

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_connected(self, connections: int = 1, timeout: float = 15.0) -> None:
        """Until ``connections`` connections were accepted and one is open."""
        await self._wait(lambda: self.connections >= connections and self.open > 0, timeout)

    async def wait_open(self, connections: int, timeout: float = 15.0) -> None:
        """Until exactly ``connections`` connections are open (0: the client closed)."""
        await self._wait(lambda: self.open == connections, timeout)

    async def send(self, payload: dict[str, Any], kind: str = "interactive") -> str:
        """Push an envelope to the newest open connection; its envelope id."""
        ws = next(ws for ws in reversed(self._sockets) if not ws.closed)
        envelope_id = f"env-{next(self._ids)}-{int(time.time() * 1000)}"
        await ws.send_json({"envelope_id": envelope_id, "type": kind, "payload": payload,
                            "accepts_response_payload": False})
        self.sent[envelope_id] = time.monotonic()
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        """The acknowledgement of ``envelope_id``, once it arrives."""
        await self._wait(lambda: any(a.envelope_id == envelope_id for a in self.acks), timeout)
        return next(a for a in self.acks if a.envelope_id == envelope_id)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect, as Slack does every few hours."""
        ws = next(ws for ws in reversed(self._sockets) if not ws.closed)
        await ws.send_json({"type": "disconnect", "reason": reason,
                            "debug_info": {"host": "fake-socket-mode"}})


def button_value(message: StoredMessage, action: str) -> str:
    """The value of the button ``newswatch_<action>`` in ``message``."""
    for block in message.payload.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == f"newswatch_{action}":
                return str(element["value"])
    raise KeyError(f"no {action} button in the message")


def block_actions(message: StoredMessage, action: str, *, user_id: str = "U0ALICE01",
                  user_name: str = "alice", value: str | None = None,
                  action_ts: str | None = None) -> dict[str, Any]:
    """What Slack sends when ``user_id`` clicks ``newswatch_<action>`` on ``message``
    (``value`` replaces the button's value: a forged click)."""
    pressed = value if value is not None else button_value(message, action)
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": "T0FAKE"},
        "api_app_id": "A0FAKEAPP", "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message.ts,
                      "channel_id": message.channel, "is_ephemeral": False},
        "trigger_id": f"trigger-{time.monotonic_ns()}",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "channel": {"id": message.channel, "name": "alerts"},
        "message": {"type": "message", "ts": message.ts, "bot_id": "B0FAKE",
                    "text": message.payload.get("text", ""),
                    "blocks": message.payload.get("blocks", [])},
        "response_url": "https://hooks.slack.invalid/actions/T0FAKE/1/x",
        "actions": [{"type": "button", "action_id": f"newswatch_{action}",
                     "block_id": "newswatch-actions", "value": pressed,
                     "text": {"type": "plain_text", "text": action},
                     "action_ts": action_ts or f"{time.time():.6f}"}],
    }
