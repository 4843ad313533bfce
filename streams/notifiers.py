"""Notifiers: deliver one rendered :class:`~newswatch.streams.alerts.Match` to one receiver.

A notifier makes exactly **one attempt** per call. It never sleeps, never retries and never
reads the environment or configuration: the caller passes the secrets in (it reads
``SLACK_BOT_TOKEN`` / ``SMTP_PASSWORD``), and the caller's dispatcher owns retries, backoff,
the dedup outbox and the DLQ (docs/reliability.md §1, §11, group H). Every failure is raised as a
:class:`~newswatch.core.errors.DeliveryError` whose ``retryable`` says whether the same call may
succeed later and whose ``reason`` is a short machine word for metrics and the DLQ.

A retryable error after the receiver may already have stored the message (an HTTP 5xx or a
connection drop after the request was written, H4/H5/H10) can lead to a duplicate on
retry: neither Slack nor SMTP offers an idempotency key. Reconciliation is the dispatcher's
job, not the notifier's.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TextIO, runtime_checkable

import aiohttp
import aiosmtplib
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from newswatch.core.errors import DeliveryError
from newswatch.streams.alerts import Digest, Match
from newswatch.streams.render import (
    SlackMessage,
    clean_text,
    render_console,
    render_console_digest,
    render_email,
    render_email_digest,
    render_slack,
    render_slack_digest,
    render_slack_reply,
)

__all__ = [
    "METADATA_EVENT",
    "Addressable",
    "ConsoleNotifier",
    "EmailNotifier",
    "Notifier",
    "Receipt",
    "RefusedRecipient",
    "SlackNotifier",
]


@dataclass(frozen=True, slots=True)
class RefusedRecipient:
    """One e-mail recipient the server refused while others were accepted."""

    address: str
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof of one delivery, enough to thread a reply or update the message later.

    ``receiver`` is the notifier's name; ``ref`` the receiver's id for the message (Slack:
    the message ``ts``; e-mail: the ``Message-ID``; console: ``rule_id:article_id``);
    ``channel`` the Slack channel *id* returned by Slack (``chat.update`` needs the id, not
    a ``#name``); ``refused`` the e-mail recipients refused in a partial delivery.
    """

    receiver: str
    ref: str
    channel: str | None = None
    refused: tuple[RefusedRecipient, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "receiver": self.receiver,
            "ref": self.ref,
            "channel": self.channel,
            "refused": [[r.address, r.code, r.message] for r in self.refused],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Receipt:
        return cls(
            receiver=str(data["receiver"]),
            ref=str(data["ref"]),
            channel=None if data.get("channel") is None else str(data["channel"]),
            refused=tuple(
                RefusedRecipient(str(a), int(c), str(m)) for a, c, m in data.get("refused", ())
            ),
        )


@runtime_checkable
class Notifier(Protocol):
    """One configured receiver (a Slack channel, a list of e-mail addresses, the console).

    ``send`` delivers a new alert; ``reply`` attaches a later report of the same story to
    the first delivery (``parent``); ``update_sources`` rewrites the first delivery with a
    new "reported by N sources" count where the receiver supports editing; ``digest`` sends
    one message listing queued matches. All raise :class:`~newswatch.core.errors.DeliveryError` on
    failure and make one attempt only. ``ident`` is the dispatcher's id of the delivery;
    a receiver that can store it with the message (Slack metadata) lets :meth:`find` look
    for it later (``find`` returns None when it cannot look, or did not find it).

    ``lane`` names the conversation the receiver posts to (the Slack channel): the
    dispatcher sends one lane's messages in order, at most one per ``min_interval``
    seconds, and a rate limit pauses that lane only. ``threads`` says whether ``reply``
    shows in a thread (otherwise later reports go to the digest).
    """

    name: str
    lane: str
    min_interval: float
    threads: bool

    async def send(self, match: Match, ident: str | None = None) -> Receipt: ...

    async def reply(self, match: Match, parent: Receipt, ident: str | None = None
                    ) -> Receipt: ...

    async def update_sources(self, parent: Receipt, match: Match, sources: int) -> None: ...

    async def digest(self, digest: Digest, ident: str | None = None) -> Receipt: ...

    async def find(self, ident: str, *, since: float, where: Receipt | None,
                   in_thread: bool = False) -> Receipt | None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Addressable(Protocol):
    """A receiver with several addresses that can resend to some of them (e-mail)."""

    async def send_to(self, match: Match, recipients: Sequence[str]) -> Receipt: ...


#: Slack message metadata event type carrying the dispatcher's delivery id.
METADATA_EVENT = "newswatch_delivery"


# --------------------------------------------------------------------------- Slack

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
    ) -> None:
        self.name = name
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
        return await self._post(render_slack(match), ident)

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
        message = render_slack(match, sources=sources)
        await self._call(
            "chat.update",
            channel=parent.channel or self.channel,
            ts=parent.ref,
            text=message.text,
            blocks=message.blocks,
        )

    async def aclose(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._client = None


# --------------------------------------------------------------------------- e-mail


def _smtp_reason(code: int) -> tuple[str, bool]:
    if 400 <= code <= 499:
        return "smtp_4xx", True
    if 500 <= code <= 599:
        return "smtp_5xx", False
    # No usable code (e.g. -1 when the reply could not be read): treat as a broken line.
    return "connection", True


class EmailNotifier:
    """Sends alerts by SMTP to a fixed list of recipients (never taken from the article).

    One SMTP transaction per alert via ``aiosmtplib.send``. ``tls=True`` is implicit TLS
    (port 465); ``starttls=True`` requires STARTTLS, ``starttls=False`` never upgrades
    (exactly as configured, no opportunistic guess); both True is a ValueError. ``timeout``
    bounds each SMTP step.

    Failure mapping (all :class:`DeliveryError`):

    * SMTP 4xx at any step (421/450/451/452 …) → ``smtp_4xx``, retryable;
    * connection refused/reset/dropped, timeouts → ``connection``, retryable;
    * SMTP 5xx (550/553/554, authentication 535 …) → ``smtp_5xx``, not retryable;
    * every recipient refused → ``smtp_4xx`` (retryable) when all refusals were 4xx, else
      ``smtp_5xx`` (not retryable); the message lists each refused address and reply;
    * server lacks a required extension (STARTTLS, AUTH, SMTPUTF8) → ``smtp_unsupported``, and
      an address that cannot be put on an SMTP command line → ``bad_address``; not
      retryable (configuration problems).

    Partial delivery: when the server accepts some recipients and refuses others, the
    message is delivered to the accepted ones and :meth:`send` *returns* normally; the
    receipt's ``refused`` tuple lists each refused address with its code and text, so the
    dispatcher can dead-letter exactly those (H9). Retrying the whole send would duplicate
    the mail for the accepted recipients.
    """

    threads = False
    min_interval = 0.0

    def __init__(
        self,
        name: str,
        sender: str,
        recipients: Sequence[str],
        host: str,
        port: int,
        starttls: bool,
        tls: bool,
        username: str | None,
        password: str | None,
        timeout: float = 30,
    ) -> None:
        if not recipients:
            raise ValueError(f"email receiver {name!r} has no recipients")
        if tls and starttls:
            raise ValueError(f"email receiver {name!r}: tls and starttls are exclusive")
        self.name = name
        self.sender = sender
        self.recipients: tuple[str, ...] = tuple(recipients)
        self.host = host
        self.port = port
        self.starttls = starttls
        self.tls = tls
        self._username = username
        self._password = password
        self.timeout = timeout
        self.lane = f"email:{name}"

    def __repr__(self) -> str:  # never show the password
        return f"EmailNotifier(name={self.name!r}, host={self.host!r}, port={self.port})"

    async def send(self, match: Match, ident: str | None = None) -> Receipt:
        """Send the alert; the receipt's ``ref`` is the Message-ID (see partial delivery)."""
        return await self.send_to(match, self.recipients)

    async def send_to(self, match: Match, recipients: Sequence[str]) -> Receipt:
        """Send the alert to ``recipients`` only (a replay of refused recipients)."""
        return await self._transmit(
            render_email(match, sender=self.sender, recipients=recipients), recipients)

    async def digest(self, digest: Digest, ident: str | None = None) -> Receipt:
        """Send one e-mail listing the digest's matches."""
        return await self._transmit(
            render_email_digest(digest, sender=self.sender, recipients=self.recipients),
            self.recipients)

    async def find(self, ident: str, *, since: float, where: Receipt | None,
                   in_thread: bool = False) -> Receipt | None:
        """None: an SMTP server cannot be asked what it already accepted."""
        return None

    async def _transmit(self, message: EmailMessage, recipients: Sequence[str]) -> Receipt:
        message_id = str(message["Message-ID"])
        try:
            errors, _reply = await aiosmtplib.send(
                message,
                sender=self.sender,
                recipients=list(recipients),
                hostname=self.host,
                port=self.port,
                username=self._username,
                password=self._password,
                use_tls=self.tls,
                start_tls=self.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            listed = "; ".join(f"{r.recipient} ({r.code} {r.message})" for r in exc.recipients)
            temporary = all(400 <= r.code <= 499 for r in exc.recipients)
            reason = "smtp_4xx" if temporary else "smtp_5xx"
            raise DeliveryError(
                reason, f"all recipients refused: {listed}", retryable=temporary
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            reason, retryable = _smtp_reason(exc.code)
            raise DeliveryError(
                reason, f"{type(exc).__name__}: {exc.code} {exc.message}", retryable=retryable
            ) from exc
        except (OSError, TimeoutError) as exc:
            # SMTPConnectError and SMTPServerDisconnected are ConnectionErrors (OSError),
            # SMTPTimeoutError is a TimeoutError: the line broke, trying again may work.
            raise DeliveryError(
                "connection", f"{type(exc).__name__}: {exc}", retryable=True
            ) from exc
        except aiosmtplib.SMTPException as exc:
            # What is left (SMTPNotSupported, "STARTTLS/AUTH not supported by server") is
            # a mismatch between configuration and server: the same send fails again.
            raise DeliveryError("smtp_unsupported", str(exc), retryable=False) from exc
        except ValueError as exc:
            raise DeliveryError("bad_address", str(exc), retryable=False) from exc
        refused = tuple(
            RefusedRecipient(address, int(resp.code), resp.message)
            for address, resp in errors.items()
        )
        return Receipt(receiver=self.name, ref=message_id, refused=refused)

    async def reply(self, match: Match, parent: Receipt, ident: str | None = None) -> Receipt:
        """Sends nothing and returns ``parent``: later reports of the same story are not
        mailed one by one; the dispatcher puts them in the next digest (``threads`` is
        False)."""
        return parent

    async def update_sources(self, parent: Receipt, match: Match, sources: int) -> None:
        """No-op: a sent e-mail cannot be edited."""

    async def aclose(self) -> None:
        """No-op: each send opens and closes its own SMTP connection."""


# --------------------------------------------------------------------------- console


class ConsoleNotifier:
    """Prints :func:`~newswatch.streams.render.render_console` to ``stream`` (stdout by default).

    Useful for dry runs and the embedded mode. Never fails except on a broken stream, which
    is reported as a retryable ``console_io`` error."""

    threads = True
    min_interval = 0.0

    def __init__(self, name: str, stream: TextIO = sys.stdout) -> None:
        self.name = name
        self.stream = stream
        self.lane = f"console:{name}"

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            with contextlib.suppress(AttributeError):
                self.stream.flush()
        except (OSError, ValueError) as exc:
            raise DeliveryError("console_io", str(exc), retryable=True) from exc

    async def send(self, match: Match, ident: str | None = None) -> Receipt:
        """Print the alert; ``ref`` is ``rule_id:article_id``."""
        self._write(render_console(match))
        return Receipt(receiver=self.name, ref=f"{match.rule_id}:{match.article.id}")

    async def digest(self, digest: Digest, ident: str | None = None) -> Receipt:
        """Print the digest; ``ref`` is ``rule_id:digest:opened``."""
        self._write(render_console_digest(digest))
        return Receipt(receiver=self.name, ref=f"{digest.rule_id}:digest:{digest.opened:.0f}")

    async def find(self, ident: str, *, since: float, where: Receipt | None,
                   in_thread: bool = False) -> Receipt | None:
        """None: printed lines cannot be looked up."""
        return None

    async def reply(self, match: Match, parent: Receipt, ident: str | None = None) -> Receipt:
        """Print one indented "also reported by" line under the original alert."""
        article = match.article
        feed = clean_text(article.feed) or "(unknown source)"
        self._write(f"  ↳ also reported by {feed}: {clean_text(article.title)} [{parent.ref}]")
        return Receipt(receiver=self.name, ref=f"{match.rule_id}:{article.id}")

    async def update_sources(self, parent: Receipt, match: Match, sources: int) -> None:
        """No-op: printed lines cannot be edited."""

    async def aclose(self) -> None:
        """No-op."""
