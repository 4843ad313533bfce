"""Watch-rule loader and validator: rule-file texts in, a frozen ``RuleSet`` out.

Pure: it receives ``(path, text)`` pairs (``newswatch.core.rulefiles`` reads them) and never touches
files, the network or the environment (``${SLACK_TOKEN}`` in a title stays as written).

Contract (docs/rules.md, sections "A rule file" and "Errors"):

- ``parse_rules`` returns the rules in file order, then document order, or raises
  ``RuleError`` carrying *every* issue of *every* file, each rendered
  ``path:line: error: message [rule id]`` (no ``[...]`` for file-level problems).
- Validation never stops at the first problem: each validator records what is wrong and
  returns a usable default, so the rest of the rule is still checked.
- Examples are stored, not evaluated (the matcher's ``rules check`` does that).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from newswatch.core.article import FIELDS, Field
from newswatch.core.durations import parse_duration
from newswatch.core.errors import Issue, RuleError
from newswatch.core.schema import did_you_mean
from newswatch.core.yamlfile import YamlError, YamlList, YamlMap, describe, load_yaml
from newswatch.rules.model import (
    DEFAULT_MIN_SCORE,
    DEFAULT_NEAR,
    SEVERITIES,
    AllOf,
    AnyOf,
    Condition,
    Countries,
    DedupPolicy,
    Escalation,
    Examples,
    Group,
    Location,
    Not,
    People,
    Person,
    Phrases,
    Rule,
    RuleSet,
    Severity,
)

__all__ = ["parse_rules"]

T = TypeVar("T")

LABEL = "error: "

TOP_KEYS = ("aliases", "rules")
RULE_KEYS = (
    "id", "title", "severity", "countries", "phrases", "people", "exclude", "languages",
    "feeds", "fields", "near", "capitals", "notify", "dedup", "escalate", "examples",
    "match",
)
GROUP_KEYS = ("countries", "phrases", "people")  # flat-form order, kept in the model
GROUP_PART_KEYS = ("all", "any")
PERSON_KEYS = ("name", "aliases", "min_score")
DEDUP_KEYS = ("window", "max_per_hour", "digest_interval")
MIN_DIGEST_INTERVAL = 60.0  # a digest more often than every minute is just more alerts
ESCALATE_KEYS = ("sources", "languages", "notify")
EXAMPLE_KEYS = ("match", "no_match")
NODE_KEYS = ("all", "any", "not", *GROUP_KEYS)

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


@dataclass
class _Registry:
    """State that spans files: rule ids seen (for uniqueness) and merged aliases."""

    first_seen: dict[str, Location] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)


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


# --------------------------------------------------------------------------- groups


def _group(
    ctx: _Context, value: Any, line: int, what: str, item: Validator[T | None]
) -> Group[T] | None:
    """A plain list (any one item) or ``{all: [...], any: [...]}``; empty is an error."""
    if isinstance(value, YamlList):
        if not value:
            ctx.error(line, f"{what}: empty group (list at least one item)")
            return None
        return Group(any=_list_of(ctx, value, line, what, item, "a list"))
    if not isinstance(value, YamlMap):
        _wrong_type(ctx, line, what, "a list or a mapping with 'all' and/or 'any'", value)
        return None
    _check_keys(ctx, value, GROUP_PART_KEYS, what)
    parts = {
        key: _list_of(ctx, value[key], value.line_of(key), f"{what}.{key}", item, "a list")
        for key in GROUP_PART_KEYS
        if key in value
    }
    # Judge emptiness on what was written: a list of invalid items or a misspelt key is
    # already reported and is not also an "empty group".
    written_empty = all(isinstance(part, YamlList) and not part for part in value.values())
    if written_empty and set(value) <= set(GROUP_PART_KEYS):
        ctx.error(line, f"{what}: empty group (give at least one item under 'all' or 'any')")
        return None
    return Group(all=parts.get("all", ()), any=parts.get("any", ()))


def _leaf(ctx: _Context, kind: str, value: Any, line: int, what: str) -> Condition | None:
    """One ``countries``/``phrases``/``people`` group as a model leaf."""
    if kind == "countries":
        countries = _group(ctx, value, line, what, _country)
        return Countries(countries) if countries is not None else None
    if kind == "phrases":
        phrases = _group(ctx, value, line, what, _phrase)
        return Phrases(phrases) if phrases is not None else None
    people = _group(ctx, value, line, what, _person)
    return People(people) if people is not None else None


def _flat_condition(ctx: _Context, rule: YamlMap) -> Condition | None:
    """The flat form: ``AllOf`` of the groups present, in countries/phrases/people order."""
    present = [key for key in GROUP_KEYS if key in rule]
    children = [_leaf(ctx, key, rule[key], rule.line_of(key), key) for key in present]
    valid = [child for child in children if child is not None]
    return AllOf(tuple(valid)) if len(valid) == len(children) else None


def _node(ctx: _Context, value: Any, line: int, what: str) -> Condition | None:
    """One node of a ``match:`` tree: exactly one of all/any/not/countries/phrases/people."""
    if not isinstance(value, YamlMap):
        _wrong_type(ctx, line, what, f"a mapping with one of {', '.join(NODE_KEYS)}", value)
        return None
    _check_keys(ctx, value, NODE_KEYS, what)
    if len(value) != 1:
        written = ", ".join(value) or "none"
        ctx.error(value.line, f"{what}: a node has exactly one key of {', '.join(NODE_KEYS)} "
                              f"(found: {written})")
        return None
    key, child = next(iter(value.items()))
    child_line = value.line_of(key)
    if key in ("all", "any"):
        return _branch(ctx, key, child, child_line, f"{what}.{key}")
    if key == "not":
        inner = _node(ctx, child, child_line, f"{what}.not")
        return Not(inner) if inner is not None else None
    if key in GROUP_KEYS:
        return _leaf(ctx, key, child, child_line, f"{what}.{key}")
    return None  # unknown key, already reported


def _branch(ctx: _Context, key: str, value: Any, line: int, what: str) -> Condition | None:
    if not isinstance(value, YamlList):
        _wrong_type(ctx, line, what, "a list of nodes", value)
        return None
    if not value:
        ctx.error(line, f"{what}: empty list (give at least one node)")
        return None
    children = [_node(ctx, item, value.line_of(index), what) for index, item in enumerate(value)]
    if any(child is None for child in children):
        return None
    valid = tuple(child for child in children if child is not None)
    return AllOf(valid) if key == "all" else AnyOf(valid)


def _condition(ctx: _Context, rule: YamlMap) -> Condition | None:
    flat = [key for key in GROUP_KEYS if key in rule]
    if flat and "match" in rule:
        ctx.error(rule.line_of("match"),
                  f"a rule has either flat groups ({', '.join(flat)}) or 'match', not both")
        # Still check both, so the author sees every other problem in one pass.
        _flat_condition(ctx, rule)
        _node(ctx, rule["match"], rule.line_of("match"), "match")
        return None
    if "match" in rule:
        return _node(ctx, rule["match"], rule.line_of("match"), "match")
    if not flat:
        ctx.error(_rule_line(rule),
                  "a rule needs at least one of countries, phrases, people or match")
        return None
    return _flat_condition(ctx, rule)


# --------------------------------------------------------------------------- rules


def _rule_line(rule: YamlMap) -> int:
    """Where a rule is said to be: its ``id`` line, else the mapping's first line."""
    return rule.line_of("id")


def _parse_rule(ctx: _Context, registry: _Registry, raw: Any, line: int) -> Rule | None:
    """One rule mapping; ``None`` when anything in it is wrong (issues recorded)."""
    ctx.rule_id = None
    if not isinstance(raw, YamlMap):
        _wrong_type(ctx, line, "rules", "a rule (a mapping with id, title, ...)", raw)
        return None
    raw_id = raw.get("id")
    ctx.rule_id = raw_id if isinstance(raw_id, str) and raw_id.strip() else None
    location = Location(ctx.path, _rule_line(raw))
    before = len(ctx.issues)
    _check_keys(ctx, raw, RULE_KEYS, "")
    rule_id = _required(ctx, raw, "id", _rule_id)
    if rule_id is not None:
        _register_id(ctx, registry, rule_id, location)
    title = _required(ctx, raw, "title", _text)
    condition = _condition(ctx, raw)
    # Build even when something failed so every optional key is still checked; the
    # placeholders never escape because an invalid rule returns None below.
    rule = Rule(
        id=rule_id or "",
        title=title or "",
        condition=condition or AllOf(()),
        severity=_optional(ctx, raw, "severity", _severity, "medium"),
        exclude=_optional(ctx, raw, "exclude", _phrase_list, ()),
        languages=_optional(ctx, raw, "languages", _languages, None),
        feeds=_optional(ctx, raw, "feeds", _feeds, None),
        fields=_optional(ctx, raw, "fields", _fields, FIELDS),
        near=_optional(ctx, raw, "near", _near, DEFAULT_NEAR),
        capitals=_optional(ctx, raw, "capitals", _boolean, False),
        notify=_optional(ctx, raw, "notify", _notify, ()),
        dedup=_optional(ctx, raw, "dedup", _dedup, DedupPolicy()),
        escalate=_optional(ctx, raw, "escalate", _escalate, None),
        examples=_optional(ctx, raw, "examples", _examples, Examples()),
        location=location,
    )
    return rule if len(ctx.issues) == before else None


def _required(
    ctx: _Context, mapping: YamlMap, key: str, validate: Validator[T | None]
) -> T | None:
    if key not in mapping:
        ctx.error(mapping.line, f"a rule needs '{key}'")
        return None
    return validate(ctx, mapping[key], mapping.line_of(key), key)


def _register_id(ctx: _Context, registry: _Registry, rule_id: str, location: Location) -> None:
    first = registry.first_seen.get(rule_id)
    if first is None:
        registry.first_seen[rule_id] = location
    else:
        ctx.error(location.line, f"duplicate rule id '{rule_id}' (first defined at {first})")


# --------------------------------------------------------------------------- files


def _parse_aliases(ctx: _Context, registry: _Registry, value: Any, line: int) -> None:
    """``aliases: {CODE: [names]}``, merged into the registry (order kept, no repeats)."""
    if not isinstance(value, YamlMap):
        _wrong_type(ctx, line, "aliases", "a mapping of country code to a list of names", value)
        return
    for code, names in value.items():
        code_line = value.line_of(code)
        valid_code = _country(ctx, code, code_line, "aliases")
        checked = _text_list(ctx, names, code_line, f"aliases.{code}")
        if valid_code is not None:
            merged = registry.aliases.setdefault(valid_code, [])
            merged.extend(name for name in checked if name not in merged)


def _parse_document(
    ctx: _Context, registry: _Registry, document: Any
) -> list[Rule]:
    if document is None:  # an empty file holds no rules; not an error
        return []
    if not isinstance(document, YamlMap):
        _wrong_type(ctx, getattr(document, "line", 1), "file",
                    "a mapping with 'rules' (and optionally 'aliases')", document)
        return []
    _check_keys(ctx, document, TOP_KEYS, "")
    if "aliases" in document:
        _parse_aliases(ctx, registry, document["aliases"], document.line_of("aliases"))
    raw_rules = document.get("rules")
    if raw_rules is None:  # absent, or every rule commented out
        return []
    if not isinstance(raw_rules, YamlList):
        _wrong_type(ctx, document.line_of("rules"), "rules", "a list of rules", raw_rules)
        return []
    parsed = [
        _parse_rule(ctx, registry, raw, raw_rules.line_of(index))
        for index, raw in enumerate(raw_rules)
    ]
    return [rule for rule in parsed if rule is not None]


def parse_rules(
    sources: Sequence[tuple[str, str]],
    *,
    known_codes: frozenset[str],
    receivers: frozenset[str] | None = None,
) -> RuleSet:
    """Validate rule-file texts and build the ``RuleSet`` they describe.

    ``sources`` are ``(path, text)`` pairs; ``path`` is only used in messages and
    ``Rule.location``. ``known_codes`` are the country codes rules may use. Receiver names in
    ``notify`` are checked only when ``receivers`` is given (``rules check`` without a
    config cannot know them). Raises ``RuleError`` with every issue of every file.
    """
    issues: list[Issue] = []
    registry = _Registry()
    rules: list[Rule] = []
    for path, text in sources:
        ctx = _Context(path, known_codes, receivers, issues)
        try:
            document = load_yaml(text, path)
        except YamlError as exc:
            issues.append(dataclasses.replace(exc.issue, label=LABEL, rule_id=None))
            continue
        first_issue = len(issues)
        rules.extend(_parse_document(ctx, registry, document))
        # Validators run key by key, not line by line; report in reading order.
        issues[first_issue:] = sorted(issues[first_issue:], key=lambda issue: issue.line)
    if issues:
        raise RuleError(issues)
    aliases = {code: tuple(names) for code, names in registry.aliases.items()}
    return RuleSet(rules=tuple(rules), aliases=aliases)
