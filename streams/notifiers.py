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

This module holds the ports only; the channels that implement them (Slack, e-mail,
console), each with its renderer, are in :mod:`newswatch.streams.channels`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from newswatch.streams.alerts import Digest, Match

__all__ = ["Addressable", "Notifier", "Receipt", "RefusedRecipient"]


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
