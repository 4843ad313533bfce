"""The Slack channel: :class:`SlackNotifier` posts with a bot token what
:mod:`~newswatch.streams.channels.slack_render` renders.

One attempt per call, failures raised as :class:`~newswatch.core.errors.DeliveryError`: the
contract of :class:`~newswatch.streams.notifiers.Notifier`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from newswatch.core.errors import DeliveryError
from newswatch.streams.alerts import Digest, Match
from newswatch.streams.channels.slack_actions import SlackButtons, feedback_block
from newswatch.streams.channels.slack_render import (
    SlackMessage,
    render_slack,
    render_slack_digest,
    render_slack_reply,
    slack_escape,
)
from newswatch.streams.notifiers import Receipt

__all__ = ["METADATA_EVENT", "SLACK_PERMANENT_ERRORS", "SLACK_TRANSIENT_ERRORS", "SlackNotifier"]

#: Slack message metadata event type carrying the dispatcher's delivery id.
METADATA_EVENT = "newswatch_delivery"

#: ``ok: false`` errors that will fail the same way every time: DLQ, never retry (H6).
SLACK_PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "msg_too_long",
        "msg_blocks_too_long",
        "invalid_blocks",
        "invalid_blocks_format",
        "no_text",
        "missing_scope",
        "restricted_action",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
    }
)
#: ``ok: false`` errors Slack documents as transient (``ratelimited`` is mapped separately).
SLACK_TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), else None."""
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _is_channel_id(channel: str) -> bool:
    return bool(re.fullmatch(r"[CGD][A-Z0-9]{6,}", channel))


def _slack_error(method: str, error: SlackApiError) -> DeliveryError:
    """Map a failed Slack call to a DeliveryError (rules in :class:`SlackNotifier`)."""
    response = error.response
    # AsyncSlackResponse has status_code; on an undecodable body slack_sdk puts the raw
    # aiohttp response (status) there instead.
    status = getattr(response, "status_code", None) or getattr(response, "status", None) or 0
    headers: Mapping[str, str] | None = getattr(response, "headers", None)
    data = getattr(response, "data", None)
    slack_err = str(data.get("error", "")) if isinstance(data, dict) else ""
    where = f"{method}: HTTP {status}" + (f" {slack_err}" if slack_err else "")

    if status == 429 or slack_err == "ratelimited":
        return DeliveryError(
            "rate_limited", where, retryable=True, retry_after=_retry_after(headers)
        )
    if 500 <= status <= 599:
        return DeliveryError("http_5xx", where, retryable=True, retry_after=_retry_after(headers))
    if slack_err:
        return DeliveryError(slack_err, where, retryable=slack_err in SLACK_TRANSIENT_ERRORS)
    if status != 200:
        return DeliveryError(f"http_{status // 100}xx", where, retryable=False)
    return DeliveryError("bad_response", f"{where}: not a Slack API answer", retryable=False)


class SlackNotifier:
    """Posts alerts to one Slack channel with a bot token.

    Payload contract: ``chat.postMessage`` with ``channel``, ``text`` (fallback), ``blocks``,
    ``unfurl_links=False`` and ``unfurl_media=False`` (E7); ``link_names`` and ``parse`` are
    never sent (E2). Replies are thread replies (``thread_ts`` = the parent's ts).

    slack_sdk's own retry handlers are disabled (``retry_handlers=[]``): they retry only
    some statuses and would hide failures from *our* retry policy (docs/reliability.md §11).
    Failure mapping (all :class:`DeliveryError`):

    * HTTP 429, or ``ok: false`` ``ratelimited`` → ``rate_limited``, retryable,
      ``retry_after`` from the ``Retry-After`` header;
    * any HTTP 5xx (500/502/503/504 …) → ``http_5xx``, retryable;
    * connection errors and timeouts → ``connection``, retryable;
    * ``ok: false`` with an error in :data:`SLACK_PERMANENT_ERRORS` or any unknown error →
      not retryable, ``reason`` = Slack's error string; the documented transient errors in
      :data:`SLACK_TRANSIENT_ERRORS` are retryable with ``reason`` = the error string;
    * another HTTP status without a Slack error → ``http_4xx``, not retryable.

    The HTTP session is created on first use in the running loop; call :meth:`aclose`.

    ``buttons`` makes the receiver interactive: alerts carry its feedback and mute buttons
    (docs/slack.md), and ``feedback`` (channel id, ts → answer lines) gives the lines a
    re-rendered alert (``update_sources``) keeps under it.
    """

    threads = True

    def __init__(
        self,
        name: str,
        channel: str,
        token: str,
        base_url: str | None = None,
        timeout: float = 10,
        min_interval: float = 1.0,
        reconcile: bool = True,
        buttons: SlackButtons | None = None,
        feedback: Callable[[str, str], Sequence[str]] | None = None,
    ) -> None:
        self.name = name
        self.buttons = buttons
        self._feedback = feedback
        self.channel = channel
        self._token = token
        self._base_url = base_url or AsyncWebClient.BASE_URL
        self._timeout = timeout
        self.min_interval = min_interval
        self.reconcile = reconcile
        self.lane = f"slack:{self._base_url}#{channel.lstrip('#')}"
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None

    def __repr__(self) -> str:  # never show the token
        return f"SlackNotifier(name={self.name!r}, channel={self.channel!r})"

    def _web(self) -> AsyncWebClient:
        if self._client is None or self._session is None or self._session.closed:
            # Our own session: keep-alive across sends, and one total deadline per call.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
            self._client = AsyncWebClient(
                token=self._token,
                base_url=self._base_url,
                timeout=int(self._timeout) or 1,
                session=self._session,
                retry_handlers=[],
            )
        return self._client

    async def _call(self, method: str, **kwargs: Any) -> Mapping[str, Any]:
        client = self._web()
        try:
            if method == "chat.update":
                response = await client.chat_update(**kwargs)
            elif method == "chat.postEphemeral":
                response = await client.chat_postEphemeral(**kwargs)
            elif method == "conversations.history":
                response = await client.conversations_history(**kwargs)
            elif method == "conversations.replies":
                response = await client.conversations_replies(**kwargs)
            else:
                response = await client.chat_postMessage(**kwargs)
        except SlackApiError as exc:
            raise _slack_error(method, exc) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # asyncio.TimeoutError is TimeoutError on 3.11; aiohttp connection errors
            # are OSErrors too, but not all ClientErrors are.
            raise DeliveryError(
                "connection", f"{method}: {type(exc).__name__}: {exc}", retryable=True
            ) from exc
        except SlackClientError as exc:
            raise DeliveryError("client_error", f"{method}: {exc}", retryable=False) from exc
        data = response.data
        if not isinstance(data, dict):
            raise DeliveryError("bad_response", f"{method}: body is not JSON", retryable=False)
        return data

    def _receipt(self, method: str, data: Mapping[str, Any]) -> Receipt:
        ts, channel = data.get("ts"), data.get("channel")
        if not isinstance(ts, str) or not isinstance(channel, str):
            raise DeliveryError("bad_response", f"{method}: no ts/channel", retryable=False)
        return Receipt(receiver=self.name, ref=ts, channel=channel)

    @staticmethod
    def _metadata(ident: str | None) -> dict[str, Any]:
        if ident is None:
            return {}
        return {"metadata": {"event_type": METADATA_EVENT, "event_payload": {"id": ident}}}

    async def _post(
        self, message: SlackMessage, ident: str | None, *, channel: str | None = None,
        thread_ts: str | None = None,
    ) -> Receipt:
        """The one place that calls chat.postMessage: unfurling is always off and
        ``link_names``/``parse`` are never set, whatever the message."""
        thread = {"thread_ts": thread_ts} if thread_ts is not None else {}
        data = await self._call(
            "chat.postMessage",
            channel=channel or self.channel,
            text=message.text,
            blocks=message.blocks,
            unfurl_links=False,
            unfurl_media=False,
            **thread,
            **self._metadata(ident),
        )
        return self._receipt("chat.postMessage", data)

    async def send(self, match: Match, ident: str | None = None) -> Receipt:
        """Post a new alert; the receipt carries the message ts and the channel id.
        ``ident`` travels as message metadata so :meth:`find` can recognise the message."""
        return await self._post(render_slack(match, tail=self._tail(match, None)), ident)

    async def reply(self, match: Match, parent: Receipt, ident: str | None = None) -> Receipt:
        """Post "also reported by …" in the thread of ``parent``."""
        return await self._post(render_slack_reply(match), ident, channel=parent.channel,
                                thread_ts=parent.ref)

    async def digest(self, digest: Digest, ident: str | None = None) -> Receipt:
        """Post one message listing the digest's matches."""
        return await self._post(render_slack_digest(digest), ident)

    async def find(self, ident: str, *, since: float, where: Receipt | None,
                   in_thread: bool = False) -> Receipt | None:
        """The message posted with metadata id ``ident`` at or after ``since`` (Unix time),
        or None. ``where`` locates the conversation: for a thread reply (``in_thread``) the
        parent's receipt, searched with ``conversations.replies``; otherwise any earlier
        receipt of this receiver, whose channel *id* ``conversations.history`` needs (a
        configured channel id works too). Needs the ``channels:history`` scope; failures raise
        DeliveryError and the dispatcher then sends (at-least-once)."""
        if not self.reconcile:
            return None
        channel = where.channel if where is not None and where.channel else None
        if channel is None and _is_channel_id(self.channel):
            channel = self.channel
        if channel is None:
            return None
        params: dict[str, Any] = {"channel": channel, "oldest": f"{max(since - 5, 0):.6f}",
                                  "include_all_metadata": True, "limit": 200}
        if in_thread and where is not None and where.channel:
            method = "conversations.replies"
            params["ts"] = where.ref
        else:
            method = "conversations.history"
        for _page in range(5):  # at most 1,000 messages: the lane's head is recent
            data = await self._call(method, **params)
            for message in data.get("messages", []) or []:
                meta = message.get("metadata") if isinstance(message, dict) else None
                if (isinstance(meta, dict) and meta.get("event_type") == METADATA_EVENT
                        and (meta.get("event_payload") or {}).get("id") == ident
                        and isinstance(message.get("ts"), str)):
                    return Receipt(receiver=self.name, ref=message["ts"], channel=channel)
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not data.get("has_more") or not cursor:
                return None
            params["cursor"] = cursor
        return None

    async def update_sources(self, parent: Receipt, match: Match, sources: int) -> None:
        """Rewrite the first message (``chat.update``) with "reported by ``sources``".

        ``match`` must be the match first sent, since the whole message is re-rendered."""
        message = render_slack(match, sources=sources, tail=self._tail(match, parent))
        await self.update_message(parent.channel or self.channel, parent.ref, message.text,
                                  message.blocks)

    def _tail(self, match: Match, parent: Receipt | None) -> list[dict[str, Any]]:
        """An interactive alert's last blocks: the answers to its clicks (when ``parent``
        is the message being re-rendered), then its buttons."""
        if self.buttons is None:
            return []
        lines = (self._feedback(parent.channel, parent.ref)
                 if self._feedback is not None and parent is not None and parent.channel
                 else ())
        blocks = [feedback_block(lines), self.buttons.block(match)]
        return [b for b in blocks if b is not None]

    async def update_message(self, channel: str, ts: str, text: str,
                             blocks: list[dict[str, Any]]) -> None:
        """Replace the message ``ts`` in ``channel`` (an id) with ``text`` and ``blocks``."""
        await self._call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)

    async def post_ephemeral(self, channel: str, user: str, text: str) -> None:
        """Show ``text`` (plain words, escaped here) to ``user`` only, in ``channel``."""
        await self._call("chat.postEphemeral", channel=channel, user=user,
                         text=slack_escape(text))

    async def aclose(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._client = None
