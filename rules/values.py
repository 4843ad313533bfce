"""Readers of one value of a rule file, for the loader (``newswatch.rules.loader``).

Each reader takes the shared ``_Context``, the YAML value, its line and what it is called in
messages; it records what is wrong in the context (``path:line`` issues, with hints such as
the country code meant or the quotes a YAML boolean needed) and returns a usable default, so
that the rest of the rule is still checked. Pure, as the loader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from newswatch.core.article import FIELDS, Field
from newswatch.core.durations import parse_duration
from newswatch.core.errors import Issue
from newswatch.core.schema import did_you_mean
from newswatch.core.yamlfile import YamlList, YamlMap, describe
from newswatch.rules.model import (
    DEFAULT_MIN_SCORE,
    DEFAULT_NEAR,
    SEVERITIES,
    DedupPolicy,
    Escalation,
    Examples,
    Person,
    Severity,
)

T = TypeVar("T")

LABEL = "error: "

PERSON_KEYS = ("name", "aliases", "min_score")
DEDUP_KEYS = ("window", "max_per_hour", "digest_interval")
MIN_DIGEST_INTERVAL = 60.0  # a digest more often than every minute is just more alerts
ESCALATE_KEYS = ("sources", "languages", "notify")
EXAMPLE_KEYS = ("match", "no_match")

_RULE_ID = re.compile(r"[a-z0-9_-]+\Z")
_LANGUAGE = re.compile(r"[a-z]{2}\Z")
_COUNTRY = re.compile(r"[A-Z]{2}\Z")
_WORD_SEPARATORS = re.compile(r"[\s\-/]+")  # hyphens and slashes separate words (contract)
_BOOLEAN_WORDS = frozenset({"yes", "no", "on", "off", "y", "n"})
# Codes people often write that are not ISO 3166-1 alpha-2.
_COMMON_CODE_MISTAKES = {"UK": "GB", "EL": "GR"}


# --------------------------------------------------------------------------- context


@dataclass
class _Context:
    """What validators share: where we are, what is known, and the issues found so far."""

    path: str
    known_codes: frozenset[str]
    receivers: frozenset[str] | None
    issues: list[Issue]
    rule_id: str | None = None

    def error(self, line: int, message: str) -> None:
        self.issues.append(Issue(self.path, line, message, self.rule_id, LABEL))


Validator = Callable[[_Context, Any, int, str], T]


# --------------------------------------------------------------------------- messages


def _wrong_type(
    ctx: _Context, line: int, what: str, expected: str, value: object, hint: str = ""
) -> None:
    ctx.error(line, f"{what}: expected {expected}, got {describe(value)}{hint}")


def _quote_hint(value: object) -> str:
    """For a number or boolean where text is expected: YAML typed it, quotes would not."""
    if isinstance(value, bool):
        return f' (put it in quotes if you mean text: "{str(value).lower()}")'
    if isinstance(value, int | float):
        return f' (put it in quotes if you mean text: "{value}")'
    return ""


def _check_keys(ctx: _Context, mapping: YamlMap, allowed: Sequence[str], where: str) -> None:
    """Report keys not in ``allowed``, with a did-you-mean when one is close."""
    for key in mapping:
        if key in allowed:
            continue
        hint = did_you_mean(key, allowed) or f" (expected one of: {', '.join(allowed)})"
        prefix = f"{where}: " if where else ""
        ctx.error(mapping.line_of(key), f"{prefix}unknown key '{key}'{hint}")


# --------------------------------------------------------------------------- scalars


def _text(ctx: _Context, value: Any, line: int, what: str) -> str | None:
    """A non-empty string, kept exactly as written (no expansion of any kind)."""
    if not isinstance(value, str):
        _wrong_type(ctx, line, what, "text", value, _quote_hint(value))
        return None
    if not value.strip():
        ctx.error(line, f"{what}: must not be empty")
        return None
    return value


def _text_list(ctx: _Context, value: Any, line: int, what: str) -> tuple[str, ...]:
    return _list_of(ctx, value, line, what, _text, "a list of text")


def _list_of(
    ctx: _Context,
    value: Any,
    line: int,
    what: str,
    item: Validator[T | None],
    expected: str,
) -> tuple[T, ...]:
    """Validate every item of a YAML list; invalid items are reported and left out."""
    if not isinstance(value, YamlList):
        hint = f" (write [{value}])" if isinstance(value, str) else ""
        _wrong_type(ctx, line, what, expected, value, hint)
        return ()
    checked = (item(ctx, element, value.line_of(index), what) for index, element in
               enumerate(value))
    return tuple(element for element in checked if element is not None)


def _boolean(ctx: _Context, value: Any, line: int, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS:
        # The strict YAML loader keeps yes/no/on/off as text; say how to write a boolean.
        ctx.error(line, f"{what}: expected true or false, got '{value}' (write true or false)")
    else:
        ctx.error(line, f"{what}: expected true or false, got {describe(value)}")
    return False


def _near(ctx: _Context, value: Any, line: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        got = describe(value)
        ctx.error(line, f"{what}: expected a whole number of words (0 or more), got {got}")
        return DEFAULT_NEAR
    if value < 0:
        ctx.error(line, f"{what}: must be 0 or more, got {value}")
        return DEFAULT_NEAR
    return value


def _severity(ctx: _Context, value: Any, line: int, what: str) -> Severity:
    for severity in SEVERITIES:
        if value == severity:
            return severity
    choices = ", ".join(SEVERITIES)
    if isinstance(value, str):
        hint = did_you_mean(value.lower(), SEVERITIES)
        ctx.error(line, f"{what}: unknown severity '{value}'{hint}; expected one of {choices}")
    else:
        ctx.error(line, f"{what}: expected one of {choices}, got {describe(value)}")
    return "medium"


def _rule_id(ctx: _Context, value: Any, line: int, what: str) -> str | None:
    rule_id = _text(ctx, value, line, what)
    if rule_id is not None and not _RULE_ID.match(rule_id):
        ctx.error(
            line,
            f"{what}: '{rule_id}' may only use lowercase letters, digits, '-' and '_'",
        )
    return rule_id


# --------------------------------------------------------------------------- items


def _country(ctx: _Context, value: Any, line: int, what: str) -> str | None:
    """An upper-case ISO 3166-1 alpha-2 code the gazetteer knows, exactly as written."""
    if not isinstance(value, str):
        _wrong_type(ctx, line, what, "a country code such as MA", value)
        return None
    if _COUNTRY.match(value) and value in ctx.known_codes:
        return value
    ctx.error(line, f"{what}: unknown country code '{value}'{_country_hint(ctx, value)}")
    return None


def _country_hint(ctx: _Context, code: str) -> str:
    """Suggest a code only when the intent is plain: wrong case, a common non-ISO code, or
    swapped letters. (Nearly every two-letter string is one edit away from some code, so a
    fuzzy suggestion would be noise.)"""
    candidates = (
        code.strip().upper(),
        _COMMON_CODE_MISTAKES.get(code.strip().upper(), ""),
        code.strip().upper()[::-1],
    )
    for candidate in candidates:
        if candidate != code and candidate in ctx.known_codes:
            return f" (did you mean '{candidate}'?)"
    if not re.fullmatch(r"[A-Za-z]{2}", code):
        return " (expected a two-letter ISO 3166-1 code such as 'MA')"
    return ""


def _phrase(ctx: _Context, value: Any, line: int, what: str) -> str | None:
    """A phrase as written; ``=`` in front (exact phrase) is kept for the matcher.

    A ``*`` may only end a word, after at least two letters (prefix wildcard).
    """
    text = _text(ctx, value, line, what)
    if text is None:
        return None
    body = text[1:] if text.startswith("=") else text
    if not any(char.isalnum() for char in body):
        ctx.error(line, f"{what}: phrase '{text}' has no words")
        return None
    for word in _WORD_SEPARATORS.split(body):
        problem = _wildcard_problem(word)
        if problem:
            ctx.error(line, f"{what}: phrase '{text}': {problem}")
            return None
    return text


def _wildcard_problem(word: str) -> str:
    if "*" not in word:
        return ""
    if word.count("*") > 1 or not word.endswith("*"):
        return f"'*' is allowed only once, at the end of a word ('{word}')"
    if sum(char.isalpha() for char in word[:-1]) < 2:
        return f"'*' needs at least two letters before it ('{word}')"
    return ""


def _person(ctx: _Context, value: Any, line: int, what: str) -> Person | None:
    """A name, or ``{name, aliases, min_score}``."""
    if isinstance(value, str):
        name = _text(ctx, value, line, what)
        return Person(name) if name is not None else None
    if not isinstance(value, YamlMap):
        _wrong_type(ctx, line, what, "a name or {name, aliases, min_score}", value)
        return None
    before = len(ctx.issues)
    _check_keys(ctx, value, PERSON_KEYS, what)
    if "name" not in value:
        ctx.error(value.line, f"{what}: a person needs a 'name'")
        return None
    name = _text(ctx, value["name"], value.line_of("name"), f"{what}.name")
    aliases: tuple[str, ...] = _optional(ctx, value, "aliases", _text_list, (), f"{what}.aliases")
    min_score = _optional(ctx, value, "min_score", _score, DEFAULT_MIN_SCORE, f"{what}.min_score")
    if name is None or len(ctx.issues) > before:
        return None
    return Person(name, aliases, min_score)


def _score(ctx: _Context, value: Any, line: int, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        ctx.error(line, f"{what}: expected a number from 0 to 100, got {describe(value)}")
        return DEFAULT_MIN_SCORE
    if not 0 <= value <= 100:
        ctx.error(line, f"{what}: must be from 0 to 100, got {value}")
        return DEFAULT_MIN_SCORE
    return float(value)


def _language(ctx: _Context, value: Any, line: int, what: str) -> str | None:
    if not isinstance(value, str):
        _wrong_type(ctx, line, what, "a two-letter language code such as fr", value)
        return None
    if not _LANGUAGE.match(value):
        lower = value.strip().lower()
        hint = f" (did you mean '{lower}'?)" if _LANGUAGE.match(lower) else ""
        ctx.error(line, f"{what}: '{value}' is not a two-letter lowercase language code{hint}")
        return None
    return value


def _field_name(ctx: _Context, value: Any, line: int, what: str) -> Field | None:
    for name in FIELDS:
        if value == name:
            return name
    choices = ", ".join(FIELDS)
    if isinstance(value, str):
        ctx.error(line, f"{what}: unknown field '{value}'{did_you_mean(value, FIELDS)}; "
                        f"expected some of {choices}")
    else:
        _wrong_type(ctx, line, what, f"one of {choices}", value)
    return None


def _receiver(ctx: _Context, value: Any, line: int, what: str) -> str | None:
    name = _text(ctx, value, line, what)
    if name is None or ctx.receivers is None or name in ctx.receivers:
        return name
    ctx.error(line, f"{what}: unknown receiver '{name}'{did_you_mean(name, ctx.receivers)}")
    return None


# --------------------------------------------------------------------------- lists


def _reject_empty(ctx: _Context, value: Any, line: int, what: str, reason: str) -> None:
    """Report an explicitly empty list where emptiness would silently match nothing."""
    if isinstance(value, YamlList) and not value:
        ctx.error(line, f"{what}: empty list ({reason})")


def _phrase_list(ctx: _Context, value: Any, line: int, what: str) -> tuple[str, ...]:
    return _list_of(ctx, value, line, what, _phrase, "a list of phrases")


def _languages(ctx: _Context, value: Any, line: int, what: str) -> frozenset[str] | None:
    codes = _list_of(ctx, value, line, what, _language, "a list of language codes")
    _reject_empty(ctx, value, line, what, "remove the key to accept every language")
    return frozenset(codes)


def _feeds(ctx: _Context, value: Any, line: int, what: str) -> frozenset[str] | None:
    names = _list_of(ctx, value, line, what, _text, "a list of feed names")
    _reject_empty(ctx, value, line, what, "remove the key to accept every feed")
    return frozenset(names)


def _fields(ctx: _Context, value: Any, line: int, what: str) -> tuple[Field, ...]:
    names: tuple[Field, ...] = _list_of(ctx, value, line, what, _field_name, "a list of fields")
    _reject_empty(ctx, value, line, what, "remove the key to look everywhere")
    return tuple(dict.fromkeys(names)) or FIELDS  # order kept, repeats dropped


def _notify(ctx: _Context, value: Any, line: int, what: str) -> tuple[str, ...]:
    return _list_of(ctx, value, line, what, _receiver, "a list of receiver names")


# --------------------------------------------------------------------------- mappings


def _dedup(ctx: _Context, value: Any, line: int, what: str) -> DedupPolicy:
    if not isinstance(value, YamlMap):
        message = f"{what}: expected a mapping such as {{window: 24h}}, got {describe(value)}"
        if isinstance(value, str | int) and not isinstance(value, bool):
            message += f" (write {{window: {value}}})"
        ctx.error(line, message)
        return DedupPolicy()
    _check_keys(ctx, value, DEDUP_KEYS, what)
    defaults = DedupPolicy()
    return DedupPolicy(
        window=_dedup_duration(ctx, value, "window", what, defaults.window, 0.0),
        max_per_hour=_optional(ctx, value, "max_per_hour", _max_per_hour,
                               defaults.max_per_hour, f"{what}.max_per_hour"),
        digest_interval=_dedup_duration(ctx, value, "digest_interval", what,
                                        defaults.digest_interval, MIN_DIGEST_INTERVAL),
    )


def _dedup_duration(
    ctx: _Context, value: YamlMap, key: str, what: str, default: float, minimum: float
) -> float:
    if key not in value:
        return default
    try:
        seconds = parse_duration(value[key])
    except ValueError as exc:
        ctx.error(value.line_of(key), f"{what}.{key}: {exc}")
        return default
    if seconds < minimum:
        ctx.error(value.line_of(key), f"{what}.{key}: must be at least {minimum:.0f}s")
        return default
    return seconds


def _max_per_hour(ctx: _Context, value: Any, line: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.error(line, f"{what}: expected a whole number of alerts (0 or more), "
                        f"got {describe(value)}")
        return DedupPolicy().max_per_hour
    if value < 0:
        ctx.error(line, f"{what}: must be 0 or more, got {value}")
        return DedupPolicy().max_per_hour
    return value


def _escalate(ctx: _Context, value: Any, line: int, what: str) -> Escalation | None:
    """``{sources: N, languages: M, notify: [receivers]}``: ``sources`` is required (2 or
    more: one source is every story), ``languages`` defaults to 1."""
    if not isinstance(value, YamlMap):
        _wrong_type(ctx, line, what, "a mapping such as {sources: 5, languages: 2, "
                    "notify: [duty-editor]}", value)
        return None
    _check_keys(ctx, value, ESCALATE_KEYS, what)
    if "sources" not in value:
        ctx.error(value.line, f"{what}: needs 'sources' (how many feeds make a story grow)")
        return None
    sources = _at_least(ctx, value["sources"], value.line_of("sources"), f"{what}.sources",
                        2, "feeds")
    languages = (_at_least(ctx, value["languages"], value.line_of("languages"),
                           f"{what}.languages", 1, "languages")
                 if "languages" in value else 1)
    notify: tuple[str, ...] = _optional(ctx, value, "notify", _notify, (), f"{what}.notify")
    if sources is None or languages is None:
        return None
    return Escalation(sources=sources, languages=languages, notify=notify)


def _at_least(ctx: _Context, value: Any, line: int, what: str, minimum: int,
              unit: str) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.error(line, f"{what}: expected a whole number of {unit}, got {describe(value)}")
        return None
    if value < minimum:
        ctx.error(line, f"{what}: must be at least {minimum}, got {value}")
        return None
    return value


def _examples(ctx: _Context, value: Any, line: int, what: str) -> Examples:
    if not isinstance(value, YamlMap):
        _wrong_type(ctx, line, what, "a mapping with 'match' and/or 'no_match'", value)
        return Examples()
    _check_keys(ctx, value, EXAMPLE_KEYS, what)
    return Examples(
        match=_optional(ctx, value, "match", _text_list, (), f"{what}.match"),
        no_match=_optional(ctx, value, "no_match", _text_list, (), f"{what}.no_match"),
    )


def _optional(
    ctx: _Context, mapping: YamlMap, key: str, validate: Validator[T], default: T,
    what: str | None = None,
) -> T:
    """The validated value of ``key``, or ``default`` when the key is absent."""
    if key not in mapping:
        return default
    return validate(ctx, mapping[key], mapping.line_of(key), what or key)


