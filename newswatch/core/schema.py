"""Typed reading of strict-YAML mappings, collecting every problem with its line.

``MapReader`` wraps one ``YamlMap``: each accessor returns the value (or a default) and, on a
wrong type, records an ``Issue`` and returns the default, so validation goes on and the user
sees every problem at once. ``finish()`` reports unknown keys with a "did you mean".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from newswatch.core.durations import parse_duration
from newswatch.core.errors import Issue
from newswatch.core.yamlfile import YamlList, YamlMap, describe


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when one of ``choices`` is close to ``word``, else ''."""
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class MapReader:
    """Reads keys of one mapping; problems go to ``issues`` with ``label`` and ``rule_id``."""

    def __init__(
        self,
        data: YamlMap,
        path: str,
        issues: list[Issue],
        *,
        allowed: Iterable[str],
        label: str = "",
        rule_id: str | None = None,
        where: str = "",
    ) -> None:
        self.data = data
        self.path = path
        self.issues = issues
        self.allowed = tuple(allowed)
        self.label = label
        self.rule_id = rule_id
        self.where = where  # e.g. "feeds[2]" for messages

    def line(self, key: str | None = None) -> int:
        return self.data.line_of(key) if key is not None else self.data.line

    def error(self, message: str, line: int) -> None:
        prefix = f"{self.where}: " if self.where else ""
        self.issues.append(Issue(self.path, line, prefix + message, self.rule_id, self.label))

    def finish(self) -> None:
        for key in self.data:
            if key not in self.allowed:
                self.error(f"unknown key '{key}'{did_you_mean(key, self.allowed)}", self.line(key))

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def _typed(self, key: str, kinds: tuple[type, ...], name: str, required: bool) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                self.error(f"missing required key '{key}'", self.line())
            return None
        value = self.data[key]
        if isinstance(value, bool) and bool not in kinds:
            self.error(f"'{key}' must be {name}, got true/false", self.line(key))
            return None
        if not isinstance(value, kinds):
            hint = ""
            if bool in kinds and isinstance(value, str):
                hint = " (write true or false)"
            self.error(f"'{key}' must be {name}, got {describe(value)}{hint}", self.line(key))
            return None
        return value

    def text(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self._typed(key, (str,), "text", required)
        if value is not None and not value.strip():
            self.error(f"'{key}' must not be empty", self.line(key))
            return default
        return default if value is None else str(value)

    def integer(self, key: str, *, default: int, minimum: int | None = None) -> int:
        value = self._typed(key, (int,), "a whole number", False)
        if value is None:
            return default
        if minimum is not None and value < minimum:
            self.error(f"'{key}' must be at least {minimum}", self.line(key))
            return default
        return int(value)

    def flag(self, key: str, *, default: bool) -> bool:
        value = self._typed(key, (bool,), "true or false", False)
        return default if value is None else bool(value)

    def duration(self, key: str, *, default: float) -> float:
        if not self.has(key):
            return default
        try:
            return parse_duration(self.data[key])
        except ValueError as error:
            self.error(f"'{key}': {error}", self.line(key))
            return default

    def durations(self, key: str, *, default: tuple[float, ...]) -> tuple[float, ...]:
        """A list of durations, in seconds (``[]`` is an empty tuple)."""
        if not self.has(key):
            return default
        value = self.data[key]
        if not isinstance(value, YamlList):
            self.error(f"'{key}' must be a list of durations, got {describe(value)}",
                       self.line(key))
            return default
        out = []
        for i, item in enumerate(value):
            try:
                out.append(parse_duration(item))
            except ValueError as error:
                self.error(f"'{key}[{i}]': {error}", value.line_of(i))
                return default
        return tuple(out)

    def texts(self, key: str, *, required: bool = False) -> list[str] | None:
        """A list of non-empty strings (a single string is accepted as a one-item list)."""
        if not self.has(key):
            if required:
                self.error(f"missing required key '{key}'", self.line())
            return None
        value = self.data[key]
        if isinstance(value, str):
            return [value]
        if not isinstance(value, YamlList):
            self.error(f"'{key}' must be a list of text, got {describe(value)}", self.line(key))
            return None
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.error(
                    f"'{key}' items must be text, got {describe(item)}", value.line_of(i)
                )
                continue
            out.append(item)
        return out

    def mapping(self, key: str, *, required: bool = False) -> YamlMap | None:
        value = self._typed(key, (dict,), "a mapping", required)
        return value if isinstance(value, YamlMap) else None

    def sequence(self, key: str, *, required: bool = False) -> YamlList | None:
        value = self._typed(key, (list,), "a list", required)
        return value if isinstance(value, YamlList) else None
