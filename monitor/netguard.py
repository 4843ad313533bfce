"""SSRF policy: which URLs newswatch may fetch and which addresses it may connect to.

Feed URLs, redirect targets and DNS answers are attacker-controlled (docs/reliability.md item 9,
table D). The policy, after Miniflux's fix:

* only ``http`` and ``https`` URLs with a host and without user info;
* a literal IP host (including the legacy forms ``2130706433``, ``0177.0.0.1``, ``0x7f.1``,
  ``127.1`` that ``inet_aton``/``getaddrinfo`` accept, and IPv4-mapped IPv6) must be public;
* a host name is resolved and every address in the answer must be public; the check runs in
  the resolver aiohttp connects through, so the address checked is the address connected to
  (a second, rebinding lookup is checked again, never trusted from an earlier one);
* every redirect hop goes through the same check, and https → http downgrades are refused;
* the operator may exempt exact ``host:port`` destinations (``allow``), e.g. an internal
  RSS-Bridge; entries are matched against the URL's host (name or IP literal) and, in the
  resolver, also against each resolved ``ip:port``.

Every refusal raises ``FetchError(FetchErrorKind.BLOCKED, …)`` without opening a connection.
Proxies are not supported (the fetcher ignores ``HTTP(S)_PROXY``), so the check always applies
to the real destination.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import TypeAlias

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from newswatch.core.errors import FetchError, FetchErrorKind

__all__ = [
    "GuardedResolver",
    "allow_key",
    "check_redirect",
    "check_url",
    "is_public_address",
    "normalize_allow",
    "parse_ip_literal",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Not covered (or not covered on every Python version) by ipaddress' own flags.
_NON_PUBLIC_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("0.0.0.0/8"),  # "this network"
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT (shared address space)
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
    ipaddress.ip_network("fc00::/7"),  # unique local
    ipaddress.ip_network("fe80::/10"),  # link-local
    ipaddress.ip_network("fec0::/10"),  # site-local (deprecated)
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64
    ipaddress.ip_network("2001::/23"),  # IETF protocol assignments, incl. Teredo 2001::/32
    ipaddress.ip_network("2001:db8::/32"),  # documentation
)
# Well-known NAT64 prefix: the last 32 bits are the IPv4 destination. (IPv4-compatible
# ``::a.b.c.d`` is deprecated and falls under the reserved ::/8, so it is never public.)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _blocked(message: str) -> FetchError:
    return FetchError(FetchErrorKind.BLOCKED, message)


def is_public_address(ip: IPAddress | str) -> bool:
    """True only for a globally routable unicast address.

    False for loopback, private (RFC 1918), link-local, CGNAT 100.64/10, multicast,
    unspecified, reserved, 0.0.0.0/8, documentation/benchmark ranges, fc00::/7, fe80::/10,
    site-local, and for IPv6 forms that embed a non-public IPv4 address (IPv4-mapped
    ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``); Teredo and IPv4-compatible
    ``::a.b.c.d`` are refused outright. A string that is not an IP address is not public.
    """
    if isinstance(ip, str):
        try:
            ip = ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
        if ip.scope_id:
            return False
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    ):
        return False
    if any(ip in net for net in _NON_PUBLIC_NETWORKS if net.version == ip.version):
        return False
    return ip.is_global


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _parse_ipv4_part(part: str) -> int | None:
    """One dotted part as inet_aton reads it: 0x… hex, 0… octal, else decimal."""
    if part[:2].lower() == "0x":
        digits, base = part[2:], 16
        if digits == "":
            return 0
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits.isascii() or not digits.isalnum():
        return None
    try:
        return int(digits, base)
    except ValueError:
        return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, or None when it is a name to resolve.

    Understands IPv6 (with or without brackets and zone) and every IPv4 spelling the C library
    accepts: 1 to 4 dot-separated parts, each decimal, octal (leading 0) or hex (0x), the last
    part filling the remaining bytes (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``).
    One trailing dot is ignored.
    """
    host = host.strip().strip("[]")
    if not host:
        return None
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    if host.endswith("."):
        host = host[:-1]
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or any(p == "" for p in parts):
        return None
    values = [_parse_ipv4_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    numbers = [v for v in values if v is not None]
    *leading, last = numbers
    if any(v > 0xFF for v in leading) or last >= 1 << (8 * (5 - len(numbers))):
        return None
    value = 0
    for v in leading:
        value = (value << 8) | v
    value = (value << (8 * (5 - len(numbers)))) | last
    return ipaddress.IPv4Address(value)


def allow_key(host: str, port: int) -> str:
    """The allow-list spelling of a destination: ``host:port``, host lower-cased without a
    trailing dot, IPv6 in brackets (``[::1]:8080``)."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def normalize_allow(entries: Iterable[str]) -> frozenset[str]:
    """Allow-list entries (``host:port``; IDN and upper case accepted) in ``allow_key`` form.

    Raises ValueError for an entry without an explicit port.
    """
    keys: set[str] = set()
    for entry in entries:
        url = URL(f"http://{entry.strip()}")
        if url.raw_host is None or url.explicit_port is None:
            raise ValueError(f"allow-list entry {entry!r} is not host:port")
        keys.add(allow_key(url.raw_host, url.explicit_port))
    return frozenset(keys)


def _parse(url: str) -> URL:
    """Parse exactly as aiohttp will (yarl), refusing what parsers disagree about."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        # urllib silently drops tab/CR/LF; other parsers do not. Refuse the ambiguity.
        raise _blocked("URL contains control characters")
    try:
        parsed = URL(url.strip())
    except (ValueError, TypeError) as exc:
        raise _blocked(f"not a valid URL ({exc})") from None
    return parsed


def check_url(url: str, allow: frozenset[str] = frozenset()) -> None:
    """Refuse a URL that must never be fetched, without any DNS lookup or connection.

    Raises FetchError(BLOCKED) for: a scheme other than http/https, a missing host, user info
    (``user:pass@`` or ``trusted.example@10.0.0.1``), a backslash or whitespace in the
    authority, an invalid port, ``localhost``/``*.localhost``, and a literal IP host that is
    not public — unless ``allow_key(host, port)`` is in ``allow`` (see ``normalize_allow``).
    Host names pass here; their addresses are checked at connect time by GuardedResolver.
    """
    parsed = _parse(url)
    scheme = (parsed.scheme or "").lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"scheme {scheme!r}" if scheme else "a URL without a scheme"
        raise _blocked(f"{shown} is not allowed (only http and https)")
    authority = parsed.raw_authority
    if "@" in authority or parsed.raw_user is not None or parsed.raw_password is not None:
        raise _blocked("user name or password in the URL is not allowed")
    if "\\" in authority or any(c.isspace() for c in authority):
        raise _blocked("malformed host in URL")
    host = parsed.raw_host
    if not host:
        raise _blocked("URL has no host")
    try:
        port = parsed.port
    except ValueError:
        raise _blocked("invalid port in URL") from None
    if port is None:
        raise _blocked("URL has no port")
    if allow_key(host, port) in allow:
        return
    ip = parse_ip_literal(parsed.host or host)
    if ip is not None:
        if not is_public_address(ip):
            raise _blocked(f"{host} is not a public address")
        return
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        raise _blocked(f"{host} is a local name")


def check_redirect(source: str, target: str, allow: frozenset[str] = frozenset()) -> None:
    """Refuse a redirect hop: everything ``check_url`` refuses, plus https → http."""
    check_url(target, allow)
    if URL(source).scheme.lower() == "https" and URL(target).scheme.lower() == "http":
        raise _blocked("redirect from https to http refused")


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses non-public answers; install it in the TCPConnector.

    ``inner`` does the actual lookup (default: aiohttp's ThreadedResolver, created on first
    use so no event loop is needed at construction). Tests inject a stub mapping names to
    addresses. aiohttp connects only to the addresses this returns, so the checked address
    is the connected address (DNS-rebinding safe). If any address in an answer is not public
    the whole answer is refused: a public name that also resolves inward is an attack, not a
    configuration to work around. Literal IP hosts never reach a resolver in aiohttp; they
    are covered by ``check_url`` on every hop.
    """

    def __init__(
        self, allow: frozenset[str] = frozenset(), inner: AbstractResolver | None = None
    ) -> None:
        self._allow = allow
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()
        answers = await self._inner.resolve(host, port, family)
        if allow_key(host, port) in self._allow:
            return answers
        for answer in answers:
            address = answer["host"]
            if allow_key(address, port) in self._allow:
                continue
            if not is_public_address(address.split("%", 1)[0]):
                raise _blocked(f"{host} resolves to {address}, which is not a public address")
        return answers

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
