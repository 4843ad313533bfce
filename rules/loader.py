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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from newswatch.core.article import FIELDS
from newswatch.core.errors import Issue, RuleError
from newswatch.core.yamlfile import YamlError, YamlList, YamlMap, load_yaml
from newswatch.rules.model import (
    DEFAULT_NEAR,
    AllOf,
    AnyOf,
    Condition,
    Countries,
    DedupPolicy,
    Examples,
    Group,
    Location,
    Not,
    People,
    Phrases,
    Rule,
    RuleSet,
)
from newswatch.rules.values import (
    LABEL,
    Validator,
    _boolean,
    _check_keys,
    _Context,
    _country,
    _dedup,
    _escalate,
    _examples,
    _feeds,
    _fields,
    _languages,
    _list_of,
    _near,
    _notify,
    _optional,
    _person,
    _phrase,
    _phrase_list,
    _rule_id,
    _severity,
    _text,
    _text_list,
    _wrong_type,
)

__all__ = ["parse_rules"]

T = TypeVar("T")

TOP_KEYS = ("aliases", "rules")
RULE_KEYS = (
    "id", "title", "severity", "countries", "phrases", "people", "exclude", "languages",
    "feeds", "fields", "near", "capitals", "notify", "dedup", "escalate", "examples",
    "match",
)
GROUP_KEYS = ("countries", "phrases", "people")  # flat-form order, kept in the model
GROUP_PART_KEYS = ("all", "any")
NODE_KEYS = ("all", "any", "not", *GROUP_KEYS)




# --------------------------------------------------------------------------- registry


@dataclass
class _Registry:
    """State that spans files: rule ids seen (for uniqueness) and merged aliases."""

    first_seen: dict[str, Location] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)


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
