"""A real SMTP server (aiosmtpd ``Controller`` on 127.0.0.1, a free port) that records mail.

Every accepted message is kept in :attr:`SMTPSink.messages` with its envelope (MAIL FROM,
RCPT TO), the raw bytes of DATA, and the message parsed with ``policy.default``.

Replies are scriptable per stage, consumed in order::

    sink.script("DATA", "451 4.3.0 Try again later")        # next DATA: 451, then OK
    sink.script("RCPT", "550 5.1.1 No such user", address="bad@example.com")
    sink.script("MAIL", "421 4.7.0 Closing", times=2)

Use ``async with SMTPSink() as sink:`` or the ``smtp_sink`` fixture in
:mod:`tests.fakes.fixtures`. The server runs in aiosmtpd's own thread and loop, so shared
state is guarded by a lock; an SMTP client sees DATA's reply only after the handler has
recorded the message, so tests can inspect ``messages`` as soon as their send returns.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Literal, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["ReceivedMessage", "SMTPSink"]

Stage = Literal["MAIL", "RCPT", "DATA"]


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One accepted message: envelope sender and recipients, raw DATA bytes, parsed form."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage


@dataclass(slots=True)
class _Script:
    reply: str
    address: str | None


class _FreePortController(Controller):
    """aiosmtpd 1.4's Controller cannot bind port 0 (its readiness probe connects to
    ``self.port``); read the real port from the bound socket before the probe."""

    def _trigger_server(self) -> None:
        server = cast(asyncio.Server, self.server)
        self.port = int(server.sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SMTPSink:
    """See module docstring."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMessage] = []
        #: (stage, address or None, reply) for every scripted refusal that was used.
        self.refusals: list[tuple[Stage, str | None, str]] = []
        self.data_attempts = 0
        self._scripts: dict[Stage, deque[_Script]] = {
            "MAIL": deque(),
            "RCPT": deque(),
            "DATA": deque(),
        }
        self._lock = threading.Lock()
        self._controller: _FreePortController | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        controller = _FreePortController(
            self,
            hostname=self.host,
            port=0,
            # A fixed name: otherwise aiosmtpd calls socket.getfqdn(), a DNS lookup.
            server_hostname="sink.newswatch.test",
            enable_SMTPUTF8=True,
            ready_timeout=5.0,
        )
        # start()/stop() block on a thread: keep them off the test's event loop.
        await asyncio.to_thread(controller.start)
        self._controller = controller
        self.port = controller.port

    async def close(self) -> None:
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)
            self._controller = None

    async def __aenter__(self) -> SMTPSink:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- scripting ----------------------------------------------------------------------

    def script(
        self, stage: Stage, reply: str, *, address: str | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` commands of ``stage`` with ``reply`` (e.g. ``"451 4.3.0
        Try later"``). For RCPT, ``address`` limits the script to that recipient."""
        with self._lock:
            for _ in range(times):
                self._scripts[stage].append(_Script(reply, address))

    def _take(self, stage: Stage, address: str | None = None) -> str | None:
        with self._lock:
            queue = self._scripts[stage]
            for i, item in enumerate(queue):
                if item.address is None or item.address == address:
                    del queue[i]
                    self.refusals.append((stage, address, item.reply))
                    return item.reply
            return None

    # -- aiosmtpd handler hooks (run in the server thread) ------------------------------

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        scripted = self._take("MAIL")
        if scripted is not None:
            return scripted
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        scripted = self._take("RCPT", address)
        if scripted is not None:
            return scripted
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.data_attempts += 1
        scripted = self._take("DATA")
        if scripted is not None:
            return scripted
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        received = ReceivedMessage(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=raw,
            message=parsed,
        )
        with self._lock:
            self.messages.append(received)
        return "250 OK: queued"
