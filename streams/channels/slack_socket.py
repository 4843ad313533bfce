"""Slack Socket Mode: clicks on alert buttons come in over a WebSocket the monitor opens
itself, so no public URL is needed (docs/slack.md).

:class:`SlackSocket` is the :class:`~newswatch.streams.interactive.ClickSource` over
slack_sdk's asyncio Socket Mode client (``slack_sdk.socket_mode.aiohttp``): it asks the
Web API (``apps.connections.open``, with the app-level token) for a WebSocket URL,
connects, and acknowledges every envelope the moment it arrives — Slack wants the
acknowledgement within 3 seconds, so it is sent before the payload is even read. Then a
``block_actions`` payload is verified (streams/channels/slack_actions.py) and its clicks
handed to the sink; a payload that does not verify is logged and dropped. Reconnecting
(Slack's ``disconnect`` messages, a dropped socket, failed pings) is slack_sdk's.

:class:`SlackAnswers` is the :class:`~newswatch.streams.interactive.ClickAnswers` in Slack:
``chat.update`` of the clicked alert and ``chat.postEphemeral`` to the clicker, through the
notifier of the alert's receiver (its bot token and base URL), retried a few times on rate
limits and transient errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackClientError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from newswatch.core.errors import DeliveryError
from newswatch.core.printable import one_line
from newswatch.streams.channels.slack import SlackNotifier
from newswatch.streams.channels.slack_actions import parse_block_actions, with_feedback
from newswatch.streams.feedback import Click, ClickRefused
from newswatch.streams.interactive import ClickSink

__all__ = ["SlackAnswers", "SlackSocket"]

log = logging.getLogger("newswatch.slack")

FIRST_RETRY = 5.0  # seconds before asking apps.connections.open again, doubling
MAX_RETRY = 300.0


def _slack_error(error: SlackClientError) -> str:
    data = getattr(getattr(error, "response", None), "data", None)
    if isinstance(data, dict) and data.get("error"):
        return f"Slack answered {one_line(str(data['error']))!r}"
    return f"{type(error).__name__}: {one_line(str(error))}"


class SlackSocket:
    """Clicks in over Socket Mode: ``app_token`` is the app-level token (``xapp-…``, scope
    ``connections:write``); ``key`` verifies button values; ``base_url`` is the Web API
    that opens connections (the interactive receivers' ``base_url``)."""

    def __init__(self, app_token: str, *, key: bytes, base_url: str | None = None,
                 ping_interval: float = 5.0, timeout: float = 10.0) -> None:
        self._app_token = app_token
        self._key = key
        self._base_url = base_url or AsyncWebClient.BASE_URL
        self._ping_interval = ping_interval
        self._timeout = timeout
        self._sink: ClickSink | None = None

    def __repr__(self) -> str:  # never show the token
        return f"SlackSocket(base_url={self._base_url!r})"

    async def run(self, sink: ClickSink, stop: asyncio.Event) -> None:
        """Receive clicks until ``stop`` is set."""
        self._sink = sink
        web = AsyncWebClient(base_url=self._base_url, timeout=int(self._timeout) or 1,
                             retry_handlers=[])
        client = SocketModeClient(app_token=self._app_token, web_client=web,
                                  logger=logging.getLogger("newswatch.slack.socket"),
                                  ping_interval=self._ping_interval)
        client.message_listeners.append(self._on_message)
        client.socket_mode_request_listeners.append(self._on_request)
        connecting: asyncio.Task[None] | None = None
        try:
            url = await self._open(web, stop)
            if url is not None:
                client.wss_uri = url
                # connect() retries by itself until it succeeds or the client is closed
                connecting = asyncio.create_task(
                    client.connect())  # type: ignore[no-untyped-call]  # slack_sdk: untyped
                await stop.wait()
        finally:
            with contextlib.suppress(Exception):  # closing a broken socket may fail: stopping
                await client.close()  # type: ignore[no-untyped-call]  # slack_sdk: untyped
            if connecting is not None:
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)

    async def _open(self, web: AsyncWebClient, stop: asyncio.Event) -> str | None:
        """A WebSocket URL from ``apps.connections.open``, asked again (5 s doubling to
        5 min) while it fails, each failure logged with what to check; None if stopped."""
        delay = FIRST_RETRY
        while not stop.is_set():
            try:
                response = await web.apps_connections_open(app_token=self._app_token)
                url = response.get("url")
                if isinstance(url, str) and url.startswith(("wss://", "ws://")):
                    return url
                problem = "the answer has no WebSocket URL"
            except SlackClientError as error:
                problem = _slack_error(error)
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                problem = f"{type(error).__name__}: {one_line(str(error))}"
            log.error("Slack Socket Mode: apps.connections.open at %s failed (%s): clicks on "
                      "alert buttons get no answer until it works; check SLACK_APP_TOKEN (an "
                      "app-level token with connections:write) and that Socket Mode is on. "
                      "Trying again in %.0fs", self._base_url, problem, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, MAX_RETRY)
        return None

    async def _on_message(self, client: AsyncBaseSocketModeClient, message: dict[str, Any],
                          raw: str | None) -> None:
        # Slack's "disconnect" (reconnect now) never reaches listeners: slack_sdk
        # reconnects and logs it itself.
        if message.get("type") == "hello":
            log.info("Slack Socket Mode connected (%s connection(s) for this app)",
                     one_line(str(message.get("num_connections", "?"))))

    async def _on_request(self, client: AsyncBaseSocketModeClient,
                          request: SocketModeRequest) -> None:
        # The acknowledgement first, before anything that may take time.
        try:
            await client.send_socket_mode_response(
                SocketModeResponse(envelope_id=request.envelope_id))
        except Exception as error:  # a socket being replaced: Slack sends the envelope again
            log.warning("Slack Socket Mode: could not acknowledge envelope %s: %s",
                        one_line(str(request.envelope_id))[:80], one_line(str(error)))
        if request.type != "interactive" or request.payload.get("type") != "block_actions":
            return  # events and other interactions: acknowledged, not ours to act on
        try:
            clicks = parse_block_actions(request.payload, self._key)
        except ClickRefused as refused:
            user = request.payload.get("user")
            log.warning("Slack: refused a click (envelope %s, user %s): %s",
                        one_line(str(request.envelope_id))[:80],
                        one_line(str(user.get("id") if isinstance(user, dict) else None))[:40],
                        refused)
            return
        for click in clicks:
            try:
                assert self._sink is not None  # set by run() before connecting
                await self._sink(click)
            except Exception:  # a bug or a broken state: this click is lost, not the socket
                log.exception("Slack: a click (%s on rule %s) could not be applied",
                              click.action, click.alert.rule_id)


class SlackAnswers:
    """Answers clicks in Slack through ``notifiers`` (by receiver name; the first one for a
    receiver no longer configured). ``attempts`` tries per answer, waiting as Slack says
    (``Retry-After``) or 2 s, 4 s … at most ``max_wait`` between them."""

    def __init__(self, notifiers: Mapping[str, SlackNotifier], *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 attempts: int = 3, max_wait: float = 30.0) -> None:
        self._notifiers = notifiers
        self._sleep = sleep
        self._attempts = attempts
        self._max_wait = max_wait

    async def show(self, click: Click, line: str) -> None:
        blocks = with_feedback(click.message.get("blocks"), line)
        channel, ts = click.channel, click.ts
        if blocks is None or channel is None or ts is None:
            # nothing to update in place: the clicker at least hears what happened
            await self.whisper(click, line.replace(f"<@{click.user_id}>", "you"))
            return
        text = str(click.message.get("text") or "") or line
        await self._attempt("chat.update", click, lambda slack: slack.update_message(
            channel, ts, text, blocks))

    async def whisper(self, click: Click, text: str) -> None:
        channel = click.channel
        if channel is None:
            log.warning("Slack: no channel to answer a click on rule %s in: %s",
                        click.alert.rule_id, text)
            return
        await self._attempt("chat.postEphemeral", click, lambda slack: slack.post_ephemeral(
            channel, click.user_id, text))

    async def _attempt(self, method: str, click: Click,
                       call: Callable[[SlackNotifier], Awaitable[None]]) -> None:
        slack = self._notifiers.get(click.alert.receiver) or next(
            iter(self._notifiers.values()), None)
        if slack is None:
            log.warning("Slack: no Slack receiver to answer a click on rule %s",
                        click.alert.rule_id)
            return
        for attempt in range(1, self._attempts + 1):
            try:
                await call(slack)
                return
            except DeliveryError as error:
                if not error.retryable or attempt == self._attempts:
                    log.warning("Slack %s answering a click (%s on rule %s) failed: %s; the "
                                "click itself is applied", method, click.action,
                                click.alert.rule_id, error)
                    return
                wait = error.retry_after if error.retry_after is not None else 2.0 ** attempt
                await self._sleep(min(wait, self._max_wait))
