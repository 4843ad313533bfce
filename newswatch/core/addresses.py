"""Checks of the addresses a config names (feed and receiver URLs, e-mail addresses, SMTP
hosts): each returns what is wrong, in words for a ``path:line: message``, or None. Pure.

They refuse what can never work, so ``config check`` says so before any alert is retried
for an hour against it: a URL without scheme or host, an address with a line break (a
header injection too), anything but one plain ``local@domain`` address."""

from __future__ import annotations

import re
from email.utils import getaddresses
from urllib.parse import urlsplit

__all__ = ["email_problem", "host_problem", "url_problem"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LOCAL = re.compile(r"[^\s@<>()\[\],;:\"\\]+")
_IP = re.compile(r"\[?[0-9A-Fa-f:.]+\]?")
_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]*[^\W_])?\.)*[^\W_](?:[\w-]*[^\W_])?")


def url_problem(url: str) -> str | None:
    """Why ``url`` is not an http(s) URL with a host, or None."""
    if _CONTROL.search(url) or " " in url:
        return "contains a space or a control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as error:
        return f"is not a URL ({error})"
    if parts.scheme.lower() not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    return None


def email_problem(address: str) -> str | None:
    """Why ``address`` is not one e-mail address (``desk@example.org`` or
    ``Desk <desk@example.org>``), or None."""
    if _CONTROL.search(address):
        return "contains a line break or a control character"
    found = getaddresses([address])
    if len(found) != 1 or not found[0][1]:
        return "is not one e-mail address"
    local, at, domain = found[0][1].rpartition("@")
    if not at or not _LOCAL.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        return "is not an e-mail address like desk@example.org"
    return None


def host_problem(host: str) -> str | None:
    """Why ``host`` is not a host name or IP address (no scheme, port or path), or None."""
    if "://" in host or "/" in host:
        return "must be a host name, without scheme or path"
    if _DOMAIN.fullmatch(host) or _IP.fullmatch(host):
        return None
    return "is not a host name or IP address"
