"""The one error tree of newswatch.

    NewswatchError
    ├── ConfigError          bad configuration (carries every Issue found)
    ├── RuleError            bad watch-rules (carries every Issue found)
    ├── StateError           the state store cannot be opened or written
    ├── FeedError            one feed could not be turned into articles
    │   ├── FetchError       transport or HTTP failure; ``kind`` is a FetchErrorKind
    │   ├── ParseError       the body is not a usable feed
    │   └── ExtractError     an article page gave no usable main text (full text)
    └── DeliveryError        a receiver refused or failed; ``retryable`` says if trying again helps

The CLI prints ``str(error)`` and exits 2 for configuration and rule errors; no traceback.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a user-written file, located to a line (1-based; 0 when unknown)."""

    path: str
    line: int
    message: str
    rule_id: str | None = None
    #: "error: " for rule files (docs/rules.md), "" for the config file (docs/configuration.md).
    label: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        suffix = f" [{self.rule_id}]" if self.rule_id else ""
        return f"{where}: {self.label}{self.message}{suffix}"


class NewswatchError(Exception):
    """Base of every error newswatch raises on purpose."""


class _IssuesError(NewswatchError):
    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class ConfigError(_IssuesError):
    """The configuration file is unusable; ``issues`` lists every problem found."""


class RuleError(_IssuesError):
    """Watch-rule files are unusable; ``issues`` lists every problem found."""


class StateError(NewswatchError):
    """The state database cannot be opened, migrated or written."""


class FetchErrorKind(enum.StrEnum):
    """Closed set of reasons a fetch fails; drives health, backoff, metrics and `status`."""

    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    NOT_A_FEED = "not_a_feed"
    PARSE = "parse"
    BLOCKED = "blocked"
    # Only for article pages (full text, docs/full-text.md): the page is not an article
    # (not HTML, or too little main text), or the extraction library failed on it.
    NOT_AN_ARTICLE = "not_an_article"
    EXTRACT = "extract"


class FeedError(NewswatchError):
    """A feed could not be turned into articles this time."""

    kind: FetchErrorKind = FetchErrorKind.PARSE


class FetchError(FeedError):
    """Transport or HTTP failure.

    ``status`` is the HTTP status when one was received; ``retry_after`` (seconds) when the
    server asked for a delay (429/503 Retry-After).
    """

    def __init__(
        self,
        kind: FetchErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after


class ParseError(FeedError):
    """The body is not a usable feed (HTML page, truncated XML without entries, ...)."""

    def __init__(self, message: str, *, kind: FetchErrorKind = FetchErrorKind.PARSE) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class ExtractError(FeedError):
    """An article page gave no usable main text; ``kind`` is NOT_AN_ARTICLE or EXTRACT."""

    def __init__(self, message: str, *, kind: FetchErrorKind) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class DeliveryError(NewswatchError):
    """A receiver did not accept an alert.

    ``retryable`` is True when the same send may succeed later (rate limits, 5xx, network);
    ``retry_after`` (seconds) when the receiver named a delay; ``reason`` is a short machine
    word such as ``rate_limited``, ``channel_not_found`` or ``smtp_550``.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
