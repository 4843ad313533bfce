"""Durations as people write them: ``30s``, ``5m``, ``24h``, ``1d``, ``1h30m``; a bare
number is seconds. Shared by the config and the rule loaders so both accept the same text."""

from __future__ import annotations

import math
import re

from newswatch.core.yamlfile import describe

# ASCII digits only, at most 12 of them: no Unicode digits, no giant numbers.
_DURATION = re.compile(
    r"(?:([0-9]{1,12})d)?(?:([0-9]{1,12})h)?(?:([0-9]{1,12})m)?(?:([0-9]{1,12})s)?\Z"
)
_SECONDS = re.compile(r"[0-9]{1,12}\Z")
_MAX_DURATION = 10 * 366 * 86400  # far beyond any sane window; keeps float() from overflowing


def parse_duration(value: object) -> float:
    """Seconds in a duration written ``30s``, ``5m``, ``24h``, ``1d`` or ``1h30m``.

    Units are ``d``, ``h``, ``m``, ``s`` in that order, each at most once; a plain
    non-negative number (or a string of digits) is seconds. Anything else raises
    ``ValueError`` with a message fit to show the user.
    """
    # bool is an int, but ``window: true`` is surely a mistake, as is ``.inf``.
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        seconds: float = value
    elif isinstance(value, str):
        seconds = _duration_text_seconds(value.strip())
    else:
        raise ValueError(f"expected a duration such as 30s, 5m, 24h or 1d, got {describe(value)}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value}")
    if seconds > _MAX_DURATION:
        raise ValueError(f"duration {value} is longer than 10 years")
    return float(seconds)


def _duration_text_seconds(text: str) -> int:
    if _SECONDS.match(text):
        return int(text)
    found = _DURATION.match(text)
    if not text or found is None or not any(found.groups()):
        raise ValueError(f"expected a duration such as 30s, 5m, 24h, 1d or 1h30m, got '{text}'")
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_duration(seconds: float) -> str:
    """Short human form: 45s, 5m, 2h05m, 3d04h."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f"{s % 60:02d}s" if s % 60 else "")
    if s < 86400:
        return f"{s // 3600}h" + (f"{(s % 3600) // 60:02d}m" if s % 3600 >= 60 else "")
    return f"{s // 86400}d" + (f"{(s % 86400) // 3600:02d}h" if s % 86400 >= 3600 else "")
