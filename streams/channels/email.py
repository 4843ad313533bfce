"""The e-mail channel: a :class:`~newswatch.streams.alerts.Match` or a digest as an
``EmailMessage``, and :class:`EmailNotifier`, which sends it by SMTP.

Rendering is pure (no I/O; the only clock is the ``Date`` header). Feed text is first made
safe as :mod:`~newswatch.streams.channels.text` describes; then, for e-mail
(docs/reliability.md group F): ``EmailMessage`` with ``policy.SMTP`` (F2); the subject is
one line of at most 200 characters (F1); every feed-derived string in the HTML part goes
through ``html.escape`` and links exist only for http(s) URLs; no remote resources (F4).
"""

from __future__ import annotations

import base64
import email.policy
import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from newswatch.core.errors import DeliveryError
from newswatch.streams.alerts import Digest, Match
from newswatch.streams.channels.text import (
    DIGEST_KIND,
    FEED_CHARS,
    LONG_TITLE_CHARS,
    SPACES_RE,
    clean_inline,
    clean_text,
    cut_text,
    digest_headline,
    digest_period,
    ellipsised,
    entry_published_at,
    feed_plain,
    find_snippet,
    published_at,
    safe_link_url,
    snippet_plain,
    title_plain,
    why_items,
)
from newswatch.streams.notifiers import Receipt, RefusedRecipient

__all__ = ["EMAIL_SUBJECT_LIMIT", "EmailNotifier", "render_email", "render_email_digest"]

EMAIL_SUBJECT_LIMIT = 200
_EMAIL_WHY_LINES = 20


# --------------------------------------------------------------------------- rendering


def _subject(match: Match) -> str:
    escalated = "escalated " if match.escalation is not None else ""
    subject = clean_text(f"[newswatch] {escalated}{match.severity} {match.title}: "
                         f"{clean_text(match.article.title)}")
    return cut_text(subject, EMAIL_SUBJECT_LIMIT)


class _Subject(str):
    """A Subject header value that folds itself.

    ``EmailPolicy.header_store_parse`` stores a value unchanged when it has a matching
    ``name`` attribute, and the generator then calls its ``fold``. We fold ourselves because
    CPython's folder (3.11, before the gh-144156 fix) can split an encoded word across lines
    (``=?utf-8?q?…?`` / ``=?utf-8?b?PSA…?=``), garbling the subject for every reader.

    Pure-ASCII subjects are folded at spaces. Anything else — non-ASCII text, ASCII holding
    a word too long for one line, or ASCII containing ``=?`` (which a reader would otherwise
    decode as an encoded word) — is sent as RFC 2047 base64
    encoded words of at most 42 UTF-8 bytes each, split on character boundaries; readers
    ignore the folding whitespace between adjacent encoded words, so the text round-trips
    exactly. Every line stays ≤ 78 characters.
    """

    __slots__ = ()
    name = "Subject"
    _WORD_BYTES = 42  # base64 → 56 characters; "=?utf-8?b?…?=" → 68; with the fold ≤ 78

    def fold(self, *, policy: email.policy.Policy) -> str:
        linesep = policy.linesep
        first = "Subject:"
        text = str(self)
        # ASCII folds at spaces unless one word alone would overflow a line ("Subject: "
        # plus the word must fit in 78); such a subject is encoded like non-ASCII text.
        if text.isascii() and "=?" not in text and all(len(w) <= 69 for w in text.split(" ")):
            lines = [first]
            for word in text.split(" "):
                if len(lines[-1]) + 1 + len(word) > 78 and lines[-1] != first:
                    lines.append("")
                lines[-1] += " " + word
            return linesep.join(lines) + linesep
        words: list[str] = []
        chunk = b""
        for char in text:
            encoded = char.encode("utf-8")
            if len(chunk) + len(encoded) > self._WORD_BYTES:
                words.append(chunk.decode("utf-8"))
                chunk = b""
            chunk += encoded
        if chunk:
            words.append(chunk.decode("utf-8"))
        encoded_words = [
            "=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words
        ]
        return f"{first} " + (linesep + " ").join(encoded_words) + linesep


def _mail_domain(sender: str) -> str:
    # make_msgid() without a domain calls socket.getfqdn(), a DNS lookup: never do that.
    domain = sender.rpartition("@")[2].strip(" <>\"'")
    if domain and re.fullmatch(r"[A-Za-z0-9.-]+", domain):
        return domain
    return "newswatch.invalid"


def _text_body(match: Match) -> str:
    article = match.article
    lines = [title_plain(match, LONG_TITLE_CHARS)]
    url = clean_text(article.url)
    if url:
        lines.append(url if safe_link_url(url) else f"(link not shown as clickable) {url}")
    lines.append("")
    meta = feed_plain(match)
    if published := published_at(match):
        meta = f"{meta} · {published}"
    lines.append(f"Source: {meta}")
    lines.append(f"Rule: {clean_text(match.title)} [{clean_text(match.rule_id)}]")
    lines.append(f"Severity: {match.severity}")
    if match.escalation is not None:
        lines.append(clean_text(f"Escalated: {match.escalation.summary()}"))
    snippet = find_snippet(match)
    if snippet and (text := snippet_plain(snippet)):
        lines += ["", text]
    why = why_items(match)
    if why:
        lines += ["", "Why:"]
        lines += [f"- {item}" for item in why[:_EMAIL_WHY_LINES]]
        if len(why) > _EMAIL_WHY_LINES:
            lines.append(f"- … and {len(why) - _EMAIL_WHY_LINES} more")
    return "\n".join(lines) + "\n"


def _html_body(match: Match, subject: str) -> str:
    e = html.escape
    article = match.article
    title = e(title_plain(match, LONG_TITLE_CHARS))
    safe = safe_link_url(article.url)
    if safe is not None:
        heading = f'<a href="{e(safe)}" rel="noopener noreferrer">{title}</a>'
    else:
        heading = title
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{e(subject)}</title></head><body>",
        f"<p><b>{e(match.severity.upper())}</b> · {e(clean_text(match.title))}</p>",
        f"<h2>{heading}</h2>",
    ]
    if match.escalation is not None:
        parts.insert(-2, f"<p><b>Escalated: {e(clean_text(match.escalation.summary()))}</b></p>")
    if safe is None and clean_text(article.url):
        parts.append(f"<p>Link (not clickable): {e(clean_text(article.url))}</p>")
    meta = e(feed_plain(match))
    if published := published_at(match):
        meta = f"{meta} · {e(published)}"
    parts.append(f"<p>{meta}</p>")
    snippet = find_snippet(match)
    if snippet is not None:
        pieces = []
        for text, is_match in snippet.pieces:
            piece = e(clean_inline(text))
            pieces.append(f"<b>{piece}</b>" if is_match and piece.strip() else piece)
        body = SPACES_RE.sub(" ", "".join(pieces)).strip()
        if body:
            parts.append(f"<p>{ellipsised(snippet, body)}</p>")
    why = why_items(match)
    if why:
        items = "".join(f"<li>{e(item)}</li>" for item in why[:_EMAIL_WHY_LINES])
        if len(why) > _EMAIL_WHY_LINES:
            items += f"<li>… and {len(why) - _EMAIL_WHY_LINES} more</li>"
        parts.append(f"<p>Why:</p><ul>{items}</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_email(match: Match, *, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """A ``multipart/alternative`` message (text, then HTML) using ``policy.SMTP``.

    Headers: From ``sender``, To ``recipients`` (only ever from the arguments — nothing in the
    article can add a recipient, F5), Subject ``"[newswatch] <severity> <rule title>:
    <article title>"`` as one line of at most 200 characters (F1), Date, Message-ID (domain
    taken from ``sender``), ``Auto-Submitted: auto-generated``. Serialising the result never
    raises for any article text. Raises ValueError if ``recipients`` is empty.
    """
    if not recipients:
        raise ValueError("render_email needs at least one recipient")
    subject = _subject(match)
    return _message(sender, recipients, subject, _text_body(match),
                    _html_body(match, subject))


def _message(sender: str, recipients: Sequence[str], subject: str, text: str,
             html_body: str) -> EmailMessage:
    """The one place an e-mail's headers are set: recipients only from the arguments."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = _Subject(subject)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=_mail_domain(sender))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(html_body, subtype="html")
    return msg


def _digest_subject(digest: Digest) -> str:
    return cut_text(clean_text(f"[newswatch] {digest.severity} {digest_headline(digest)}"),
                EMAIL_SUBJECT_LIMIT)


def render_email_digest(
    digest: Digest, *, sender: str, recipients: Sequence[str]
) -> EmailMessage:
    """A digest as one ``multipart/alternative`` e-mail: same headers and escaping as
    :func:`render_email`, one entry per line (text) or list item (HTML)."""
    if not recipients:
        raise ValueError("render_email_digest needs at least one recipient")
    e = html.escape
    subject = _digest_subject(digest)
    text_lines = [digest_headline(digest), f"Queued {digest_period(digest)}", ""]
    items: list[str] = []
    for entry in digest.entries:
        title = cut_text(clean_text(entry.title), LONG_TITLE_CHARS) or "(untitled)"
        feed = cut_text(clean_text(entry.feed), FEED_CHARS) or "(unknown source)"
        meta = f"{feed} · {p}" if (p := entry_published_at(entry)) else feed
        kind = DIGEST_KIND.get(entry.kind, clean_text(entry.kind))
        url = clean_text(entry.url)
        safe = safe_link_url(url) if url else None
        text_lines.append(f"- {title} ({meta}; {kind})")
        if url:
            text_lines.append(f"  {url}" if safe else f"  (link not shown as clickable) {url}")
        heading = (f'<a href="{e(safe)}" rel="noopener noreferrer">{e(title)}</a>'
                   if safe is not None else e(title))
        items.append(f"<li>{heading} — {e(meta)} ({e(kind)})</li>")
    if digest.more:
        text_lines.append(f"- … and {digest.more} more")
        items.append(f"<li>… and {digest.more} more</li>")
    html_body = "\n".join([
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{e(subject)}</title></head><body>",
        f"<p><b>{e(digest.severity.upper())}</b> · {e(digest_headline(digest))}</p>",
        f"<p>Queued {e(digest_period(digest))}</p>",
        f"<ul>{''.join(items)}</ul>",
        "</body></html>",
    ]) + "\n"
    return _message(sender, recipients, subject, "\n".join(text_lines) + "\n", html_body)


# --------------------------------------------------------------------------- sending


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
