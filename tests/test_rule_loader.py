"""The watch-rule loader (newswatch.rules.loader) and rule-file reader (newswatch.core.rulefiles).

Every check of the rule language (docs/rules.md) has a test that accepts good input and one that
rejects bad input with ``path:line: error: message [rule id]`` at the right line.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newswatch.core.durations import parse_duration
from newswatch.core.errors import ConfigError, RuleError
from newswatch.core.rulefiles import read_rule_sources
from newswatch.core.yamlfile import MAX_BYTES
from newswatch.rules.loader import parse_rules
from newswatch.rules.model import (
    AllOf,
    AnyOf,
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
)

CODES = frozenset({"US", "MA", "DZ", "TN", "LY", "MR", "FR", "NO", "GB"})

# Copied from docs/rules.md, "A rule file".
CONTRACT_EXAMPLE = """\
aliases:                      # optional, file-level: extra names for countries, any language
  MA: ["royaume chérifien"]
  US: ["pays de l'oncle Sam"]

rules:
  - id: us-maghreb-military   # required; lowercase letters, digits, '-', '_'; unique across all files
    title: US military agreements in the Maghreb   # required; shown in every alert
    severity: high            # low | medium (default) | high | critical
    countries: {all: [US], any: [MA, DZ, TN, LY, MR]}   # ISO 3166-1 alpha-2 codes
    phrases: ["accord militaire", "coopération militaire", "military agreement"]
    people:
      - Mark Esper
      - {name: "Kaïs Saïed", aliases: ["قيس سعيد"], min_score: 90}
    exclude: ["jeu vidéo", "match amical"]
    languages: [fr, en, ar]   # optional: only articles in these languages
    feeds: [lemonde-afrique]  # optional: only articles from these feeds (by feed name)
    fields: [title, summary, content]   # optional: where to look, for every clause and exclude (default: all)
    near: 3                   # optional: max words between consecutive phrase words (default 3)
    capitals: false           # optional: also count capitals as their country (Rabat → MA)
    notify: [maghreb-desk]    # receiver names defined in the main config
    dedup: {window: 24h}      # optional; see the delivery contract
    examples:                 # optional; `rules check` fails when an example disagrees
      match: ["Le Maroc et les États-Unis signent un accord militaire"]
      no_match: ["Maroc - États-Unis : match amical à Rabat"]
"""  # noqa: E501 - verbatim copy of the contract


def load(
    text: str, path: str = "w.yaml", receivers: frozenset[str] | None = None
) -> RuleSet:
    return parse_rules([(path, text)], known_codes=CODES, receivers=receivers)


def errors(
    text: str, path: str = "w.yaml", receivers: frozenset[str] | None = None
) -> list[str]:
    """Every issue of one file, as the CLI prints them."""
    with pytest.raises(RuleError) as caught:
        load(text, path, receivers)
    return [str(issue) for issue in caught.value.issues]


def rule(*body: str) -> str:
    """A one-rule file: ``rules:`` on line 1, ``id: r1`` line 2, title line 3, body from line 4."""
    lines = ["rules:", "  - id: r1", "    title: Test rule", *(f"    {line}" for line in body)]
    return "\n".join(lines) + "\n"


def only_rule(*body: str, receivers: frozenset[str] | None = None) -> Rule:
    rules = load(rule(*body), receivers=receivers).rules
    assert len(rules) == 1
    return rules[0]


# --------------------------------------------------------------------------- the contract


def test_contract_example_loads_into_expected_model() -> None:
    expected = Rule(
        id="us-maghreb-military",
        title="US military agreements in the Maghreb",
        condition=AllOf((
            Countries(Group(all=("US",), any=("MA", "DZ", "TN", "LY", "MR"))),
            Phrases(Group(any=("accord militaire", "coopération militaire",
                               "military agreement"))),
            People(Group(any=(
                Person("Mark Esper"),
                Person("Kaïs Saïed", aliases=("قيس سعيد",), min_score=90.0),
            ))),
        )),
        severity="high",
        exclude=("jeu vidéo", "match amical"),
        languages=frozenset({"fr", "en", "ar"}),
        feeds=frozenset({"lemonde-afrique"}),
        fields=("title", "summary", "content"),
        near=3,
        capitals=False,
        notify=("maghreb-desk",),
        dedup=DedupPolicy(window=24 * 3600.0),
        examples=Examples(
            match=("Le Maroc et les États-Unis signent un accord militaire",),
            no_match=("Maroc - États-Unis : match amical à Rabat",),
        ),
        location=Location("watch/maghreb.yaml", 6),
    )
    rule_set = load(CONTRACT_EXAMPLE, "watch/maghreb.yaml",
                    receivers=frozenset({"maghreb-desk"}))
    assert rule_set.rules == (expected,)
    assert rule_set.aliases == {"MA": ("royaume chérifien",), "US": ("pays de l'oncle Sam",)}


def test_defaults_for_a_minimal_rule() -> None:
    loaded = only_rule("phrases: [coup d'état]")
    assert loaded == Rule(
        id="r1", title="Test rule", condition=AllOf((Phrases(Group(any=("coup d'état",))),)),
        location=Location("w.yaml", 2),
    )


def test_several_errors_in_one_file_are_all_reported_in_line_order() -> None:
    text = rule(
        "severity: urgent",          # 4
        "countries: [XX]",           # 5
        "capitals: yes",             # 6
        "near: many",                # 7
    )
    assert errors(text) == [
        "w.yaml:4: error: severity: unknown severity 'urgent'; expected one of low, medium, "
        "high, critical [r1]",
        "w.yaml:5: error: countries: unknown country code 'XX' [r1]",
        "w.yaml:6: error: capitals: expected true or false, got 'yes' (write true or false) [r1]",
        "w.yaml:7: error: near: expected a whole number of words (0 or more), got text [r1]",
    ]


def test_errors_of_every_file_are_reported() -> None:
    with pytest.raises(RuleError) as caught:
        parse_rules(
            [("a.yaml", rule("countries: [XX]")), ("b.yaml", "rules: [\n"),
             ("c.yaml", "rules:\n  - {id: fine, title: Fine, phrases: [ok]}\n")],
            known_codes=CODES,
        )
    assert [(issue.path, issue.line) for issue in caught.value.issues] == [
        ("a.yaml", 4), ("b.yaml", 2),
    ]


def test_rules_keep_file_then_document_order() -> None:
    two = "rules:\n  - {id: b1, title: B1, phrases: [x]}\n  - {id: a1, title: A1, phrases: [y]}\n"
    one = "rules:\n  - {id: z9, title: Z9, phrases: [z]}\n"
    rule_set = parse_rules([("2.yaml", two), ("1.yaml", one)], known_codes=CODES)
    assert [loaded.id for loaded in rule_set.rules] == ["b1", "a1", "z9"]
    assert rule_set.by_id("z9").location == Location("1.yaml", 2)


# --------------------------------------------------------------------------- file level


def test_top_level_accepts_aliases_and_rules_only() -> None:
    assert load("aliases: {MA: [Maroc]}\nrules: []\n").rules == ()


def test_unknown_top_level_key_suggests_the_right_one() -> None:
    assert errors("aliases: {}\nrule: []\n") == [
        "w.yaml:2: error: unknown key 'rule' (did you mean 'rules'?)"
    ]


def test_unknown_key_without_close_match_lists_the_allowed_keys() -> None:
    assert errors("zzz: 1\n") == [
        "w.yaml:1: error: unknown key 'zzz' (expected one of: aliases, rules)"
    ]


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "rules:\n", "aliases: {}\n"])
def test_a_file_without_rules_is_valid(text: str) -> None:
    assert load(text).rules == ()


def test_a_file_that_is_a_list_is_rejected() -> None:
    assert errors("- id: r1\n") == [
        "w.yaml:1: error: file: expected a mapping with 'rules' (and optionally 'aliases'), "
        "got a list"
    ]


def test_rules_must_be_a_list_of_mappings() -> None:
    assert errors("rules: {id: r1}\n") == [
        "w.yaml:1: error: rules: expected a list of rules, got a mapping"
    ]
    assert errors("rules:\n  - just text\n") == [
        "w.yaml:2: error: rules: expected a rule (a mapping with id, title, ...), got text"
    ]


# --------------------------------------------------------------------------- YAML level


def test_yaml_syntax_error_is_located() -> None:
    text = "rules:\n  - id: r1\n    title: [unclosed\n    phrases: [x]\n"
    (message,) = errors(text)
    assert message.startswith("w.yaml:4: error: YAML syntax error: ")


def test_duplicate_key_is_rejected_naming_both_lines() -> None:
    text = rule("phrases: [x]", "severity: low", "severity: high")
    assert errors(text) == [
        "w.yaml:6: error: duplicate key 'severity' (first defined on line 5)"
    ]


def test_alias_bomb_is_rejected() -> None:
    bomb = (
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "rules: [*c]\n"
    )
    assert errors(bomb) == [
        "w.yaml:1: error: YAML syntax error: anchors (&name) are not allowed (column 4)"
    ]


def test_object_building_tag_is_rejected_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = rule("phrases: [x]", f'severity: !!python/object/apply:os.system ["touch {marker}"]')
    (message,) = errors(text)
    assert message.startswith("w.yaml:5: error: tag tag:yaml.org,2002:python/object/apply")
    assert message.endswith("is not allowed")
    assert not marker.exists()


@pytest.mark.parametrize("tagged", ['!!binary "aGVsbG8="', '!!python/name:os.system "x"',
                                    "!!python/object:builtins.dict {}"])
def test_explicit_tags_are_refused_even_on_quoted_text(tagged: str) -> None:
    (message,) = errors(rule("phrases: [x]", f"severity: {tagged}"))
    assert message.startswith("w.yaml:5: error: tag tag:yaml.org,2002:")
    assert message.endswith("is not allowed")


@pytest.mark.parametrize("nested", [
    "[" * 2000 + "]" * 2000,                      # flow style: a RecursionError once
    "\n" + "".join(" " * (2 * i) + "- " + "\n" for i in range(1, 200)),
    "[" * 1_000_000 + "]" * 1_000_000,            # would crash libyaml's C composer
])
def test_deep_nesting_is_refused_while_parsing(nested: str) -> None:
    (message,) = errors("rules:\n  - id: r1\n    title: T\n    phrases: " + nested + "\n")
    assert "nesting deeper than 64 levels" in message
    assert message.startswith("w.yaml:")


def test_a_document_of_too_many_nodes_is_refused_at_the_node_past_the_cap() -> None:
    text = "rules:\n" + "- x\n" * 450_000  # 1.8 MB: under the size cap, over the node cap
    (message,) = errors(text)
    # nodes 1-3 are the root mapping, the key "rules" and the list; item n is on line n + 1
    assert message.startswith("w.yaml:199999: error: YAML syntax error: document too large")


def test_a_nul_byte_is_located() -> None:
    (message,) = errors("rules:\n  - id: r1\n    title: T\x00\n")
    assert message == "w.yaml:3: error: character U+0000 is not allowed in YAML"


def test_yes_and_no_stay_strings_so_norway_is_no() -> None:
    loaded = only_rule("countries: [NO, MA]")
    assert loaded.condition == AllOf((Countries(Group(any=("NO", "MA"))),))


def test_environment_references_are_kept_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-secret")
    text = 'rules:\n  - {id: r1, title: "leak ${SLACK_TOKEN} $HOME", phrases: [x]}\n'
    assert load(text).rules[0].title == "leak ${SLACK_TOKEN} $HOME"


# --------------------------------------------------------------------------- id and title


def test_id_is_required() -> None:
    assert errors("rules:\n  - title: T\n    phrases: [x]\n") == [
        "w.yaml:2: error: a rule needs 'id'"
    ]


@pytest.mark.parametrize("rule_id", ["a", "us-maghreb_2", "0"])
def test_id_accepts_lowercase_digits_dash_underscore(rule_id: str) -> None:
    text = f"rules:\n  - {{id: '{rule_id}', title: T, phrases: [x]}}\n"
    assert load(text).rules[0].id == rule_id


@pytest.mark.parametrize("rule_id", ["Upper", "with space", "é", "a.b"])
def test_id_rejects_other_characters(rule_id: str) -> None:
    text = f"rules:\n  - id: '{rule_id}'\n    title: T\n    phrases: [x]\n"
    assert errors(text) == [
        f"w.yaml:2: error: id: '{rule_id}' may only use lowercase letters, digits, '-' and '_'"
        f" [{rule_id}]"
    ]


def test_id_must_be_text() -> None:
    assert errors("rules:\n  - id: 12\n    title: T\n    phrases: [x]\n") == [
        'w.yaml:2: error: id: expected text, got a number (put it in quotes if you mean text: '
        '"12")'
    ]


def test_location_is_the_id_line_even_when_id_is_not_first() -> None:
    text = "rules:\n  - title: T\n    phrases: [x]\n    id: late\n"
    assert load(text).rules[0].location == Location("w.yaml", 4)


def test_duplicate_rule_id_across_two_files_names_the_first() -> None:
    first = "rules:\n  - id: dup\n    title: One\n    phrases: [x]\n"
    second = "# other\nrules:\n  - id: ok\n    title: Ok\n    phrases: [y]\n  - id: dup\n" \
             "    title: Two\n    phrases: [z]\n"
    with pytest.raises(RuleError) as caught:
        parse_rules([("one.yaml", first), ("two.yaml", second)], known_codes=CODES)
    assert [str(issue) for issue in caught.value.issues] == [
        "two.yaml:6: error: duplicate rule id 'dup' (first defined at one.yaml:2) [dup]"
    ]


def test_duplicate_rule_id_in_one_file() -> None:
    text = "rules:\n  - {id: a, title: A, phrases: [x]}\n  - {id: a, title: B, phrases: [y]}\n"
    assert errors(text) == [
        "w.yaml:3: error: duplicate rule id 'a' (first defined at w.yaml:2) [a]"
    ]


def test_title_is_required() -> None:
    assert errors("rules:\n  - id: r1\n    phrases: [x]\n") == [
        "w.yaml:2: error: a rule needs 'title' [r1]"
    ]


def test_title_must_be_text_not_a_number() -> None:
    text = "rules:\n  - id: r1\n    title: 123\n    phrases: [x]\n"
    assert errors(text) == [
        'w.yaml:3: error: title: expected text, got a number (put it in quotes if you mean '
        'text: "123") [r1]'
    ]


def test_title_must_not_be_empty() -> None:
    text = "rules:\n  - id: r1\n    title: '  '\n    phrases: [x]\n"
    assert errors(text) == ["w.yaml:3: error: title: must not be empty [r1]"]


def test_title_no_is_text() -> None:
    assert load("rules:\n  - {id: r1, title: no, phrases: [x]}\n").rules[0].title == "no"


def test_unknown_rule_key_suggests_the_right_one() -> None:
    assert errors(rule("phrases: [x]", "countres: [MA]")) == [
        "w.yaml:5: error: unknown key 'countres' (did you mean 'countries'?) [r1]"
    ]


# --------------------------------------------------------------------------- severity


@pytest.mark.parametrize("severity", ["low", "medium", "high", "critical"])
def test_severity_accepts_the_four_levels(severity: str) -> None:
    assert only_rule("phrases: [x]", f"severity: {severity}").severity == severity


def test_severity_suggests_lowercase() -> None:
    assert errors(rule("phrases: [x]", "severity: High")) == [
        "w.yaml:5: error: severity: unknown severity 'High' (did you mean 'high'?); expected "
        "one of low, medium, high, critical [r1]"
    ]


def test_severity_rejects_a_number() -> None:
    assert errors(rule("phrases: [x]", "severity: 3")) == [
        "w.yaml:5: error: severity: expected one of low, medium, high, critical, got a number"
        " [r1]"
    ]


# --------------------------------------------------------------------------- groups


def test_group_as_plain_list_means_any() -> None:
    assert only_rule("countries: [MA, DZ]").condition == AllOf(
        (Countries(Group(any=("MA", "DZ"))),)
    )


def test_group_as_mapping_keeps_all_and_any() -> None:
    assert only_rule("countries: {all: [US], any: [MA]}").condition == AllOf(
        (Countries(Group(all=("US",), any=("MA",))),)
    )


def test_group_with_only_all_and_an_empty_any_is_fine() -> None:
    assert only_rule("countries: {all: [US], any: []}").condition == AllOf(
        (Countries(Group(all=("US",))),)
    )


def test_flat_groups_are_kept_in_countries_phrases_people_order() -> None:
    loaded = only_rule("people: [Mark Esper]", "phrases: [x]", "countries: [US]")
    assert loaded.condition == AllOf((
        Countries(Group(any=("US",))),
        Phrases(Group(any=("x",))),
        People(Group(any=(Person("Mark Esper"),))),
    ))


@pytest.mark.parametrize("group", ["[]", "{}", "{all: [], any: []}", "{all: []}"])
def test_empty_group_is_rejected(group: str) -> None:
    (message,) = errors(rule(f"phrases: {group}"))
    assert message.startswith("w.yaml:4: error: phrases: empty group")
    assert message.endswith("[r1]")


def test_group_with_unknown_part_suggests_the_right_one() -> None:
    assert errors(rule("countries: {al: [US]}")) == [
        "w.yaml:4: error: countries: unknown key 'al' (did you mean 'all'?) [r1]"
    ]


def test_group_of_wrong_type_is_rejected() -> None:
    assert errors(rule("countries: 12")) == [
        "w.yaml:4: error: countries: expected a list or a mapping with 'all' and/or 'any', "
        "got a number [r1]"
    ]


def test_group_part_of_wrong_type_is_rejected() -> None:
    assert errors(rule("countries: {all: MA}")) == [
        "w.yaml:4: error: countries.all: expected a list, got text (write [MA]) [r1]"
    ]


def test_rule_needs_a_group_or_match() -> None:
    assert errors(rule("severity: low")) == [
        "w.yaml:2: error: a rule needs at least one of countries, phrases, people or match [r1]"
    ]


# --------------------------------------------------------------------------- countries


def test_unknown_country_code_on_its_own_line() -> None:
    assert errors(rule("countries:", "  - MA", "  - XX")) == [
        "w.yaml:6: error: countries: unknown country code 'XX' [r1]"
    ]


def test_lowercase_country_code_is_rejected_with_the_uppercase_suggested() -> None:
    assert errors(rule("countries: [ma]")) == [
        "w.yaml:4: error: countries: unknown country code 'ma' (did you mean 'MA'?) [r1]"
    ]


def test_common_non_iso_code_suggests_the_iso_one() -> None:
    assert errors(rule("countries: [UK]")) == [
        "w.yaml:4: error: countries: unknown country code 'UK' (did you mean 'GB'?) [r1]"
    ]


def test_country_name_instead_of_code_is_explained() -> None:
    assert errors(rule("countries: [Morocco]")) == [
        "w.yaml:4: error: countries: unknown country code 'Morocco' (expected a two-letter "
        "ISO 3166-1 code such as 'MA') [r1]"
    ]


def test_country_code_must_be_text() -> None:
    assert errors(rule("countries: [12]")) == [
        "w.yaml:4: error: countries: expected a country code such as MA, got a number [r1]"
    ]


# --------------------------------------------------------------------------- phrases


@pytest.mark.parametrize(
    "phrase", ["accord militaire", "milit*", "accords milit*", "=exact phrase", "Niger-Mal*",
               "قيس سعيد"]
)
def test_valid_phrases_are_kept_as_written(phrase: str) -> None:
    assert only_rule(f"phrases: ['{phrase}']").condition == AllOf(
        (Phrases(Group(any=(phrase,))),)
    )


@pytest.mark.parametrize(
    ("phrase", "problem"),
    [
        ("*litaire", "'*' is allowed only once, at the end of a word ('*litaire')"),
        ("mi*litaire", "'*' is allowed only once, at the end of a word ('mi*litaire')"),
        ("mil** x", "'*' is allowed only once, at the end of a word ('mil**')"),
        ("m*", "'*' needs at least two letters before it ('m*')"),
        ("accord *", "'*' needs at least two letters before it ('*')"),
    ],
)
def test_wildcard_only_at_the_end_of_a_word(phrase: str, problem: str) -> None:
    assert errors(rule(f"phrases: ['{phrase}']")) == [
        f"w.yaml:4: error: phrases: phrase '{phrase}': {problem} [r1]"
    ]


@pytest.mark.parametrize(("phrase", "message"), [
    ("''", "phrases: must not be empty"),
    ("'='", "phrases: phrase '=' has no words"),
    ("'...'", "phrases: phrase '...' has no words"),
])
def test_phrases_need_words(phrase: str, message: str) -> None:
    assert errors(rule(f"phrases: [{phrase}]")) == [f"w.yaml:4: error: {message} [r1]"]


def test_phrase_must_be_text() -> None:
    assert errors(rule("phrases: [x, 5]")) == [
        'w.yaml:4: error: phrases: expected text, got a number (put it in quotes if you mean '
        'text: "5") [r1]'
    ]


# --------------------------------------------------------------------------- people


def test_people_as_names_and_mappings() -> None:
    loaded = only_rule(
        "people:",
        "  - Mark Esper",
        "  - {name: Kaïs Saïed, aliases: [Kais Saied], min_score: 85.5}",
        "  - {name: X Y, min_score: 0}",
    )
    assert loaded.condition == AllOf((People(Group(any=(
        Person("Mark Esper"),
        Person("Kaïs Saïed", ("Kais Saied",), 85.5),
        Person("X Y", (), 0.0),
    ))),))


@pytest.mark.parametrize(("item", "message"), [
    ("{aliases: [x]}", "people: a person needs a 'name'"),
    ("{name: A, min_score: 101}", "people.min_score: must be from 0 to 100, got 101"),
    ("{name: A, min_score: -1}", "people.min_score: must be from 0 to 100, got -1"),
    ("{name: A, min_score: high}", "people.min_score: expected a number from 0 to 100, got text"),
    ("{name: A, min_score: true}",
     "people.min_score: expected a number from 0 to 100, got true/false"),
    ("{name: A, alias: [B]}", "people: unknown key 'alias' (did you mean 'aliases'?)"),
    ("{name: A, aliases: B}", "people.aliases: expected a list of text, got text (write [B])"),
    ("{name: 7}",
     'people.name: expected text, got a number (put it in quotes if you mean text: "7")'),
    ("[A, B]", "people: expected a name or {name, aliases, min_score}, got a list"),
])
def test_bad_people_are_rejected(item: str, message: str) -> None:
    assert errors(rule("people:", f"  - {item}")) == [f"w.yaml:5: error: {message} [r1]"]


# --------------------------------------------------------------------------- exclude


def test_exclude_is_a_list_of_phrases() -> None:
    assert only_rule("phrases: [x]", "exclude: [jeu vidéo, match*]").exclude == (
        "jeu vidéo", "match*",
    )


def test_exclude_rejects_bad_phrases_and_wrong_types() -> None:
    assert errors(rule("phrases: [x]", "exclude: ['*x']")) == [
        "w.yaml:5: error: exclude: phrase '*x': '*' is allowed only once, at the end of a word "
        "('*x') [r1]"
    ]
    assert errors(rule("phrases: [x]", "exclude: {any: [x]}")) == [
        "w.yaml:5: error: exclude: expected a list of phrases, got a mapping [r1]"
    ]


# --------------------------------------------------------------------------- filters


def test_languages_are_two_letter_lowercase_codes() -> None:
    assert only_rule("phrases: [x]", "languages: [fr, ar]").languages == frozenset({"fr", "ar"})


@pytest.mark.parametrize(("value", "message"), [
    ("[FR]", "languages: 'FR' is not a two-letter lowercase language code (did you mean 'fr'?)"),
    ("[fra]", "languages: 'fra' is not a two-letter lowercase language code"),
    ("[]", "languages: empty list (remove the key to accept every language)"),
    ("fr", "languages: expected a list of language codes, got text (write [fr])"),
])
def test_bad_languages_are_rejected(value: str, message: str) -> None:
    assert errors(rule("phrases: [x]", f"languages: {value}")) == [
        f"w.yaml:5: error: {message} [r1]"
    ]


def test_feeds_are_names() -> None:
    assert only_rule("phrases: [x]", "feeds: [lemonde-afrique, bbc]").feeds == frozenset(
        {"lemonde-afrique", "bbc"}
    )


@pytest.mark.parametrize(("value", "message"), [
    ("[1]", 'feeds: expected text, got a number (put it in quotes if you mean text: "1")'),
    ("[]", "feeds: empty list (remove the key to accept every feed)"),
])
def test_bad_feeds_are_rejected(value: str, message: str) -> None:
    assert errors(rule("phrases: [x]", f"feeds: {value}")) == [f"w.yaml:5: error: {message} [r1]"]


def test_fields_are_a_subset_in_the_given_order() -> None:
    assert only_rule("phrases: [x]", "fields: [content, title, title]").fields == (
        "content", "title",
    )


@pytest.mark.parametrize(("value", "message"), [
    ("[titel]", "fields: unknown field 'titel' (did you mean 'title'?); expected some of "
                "title, summary, content, body"),
    ("[]", "fields: empty list (remove the key to look everywhere)"),
    ("title", "fields: expected a list of fields, got text (write [title])"),
])
def test_bad_fields_are_rejected(value: str, message: str) -> None:
    assert errors(rule("phrases: [x]", f"fields: {value}")) == [f"w.yaml:5: error: {message} [r1]"]


@pytest.mark.parametrize("near", [0, 3, 10])
def test_near_is_a_whole_number(near: int) -> None:
    assert only_rule("phrases: [x]", f"near: {near}").near == near


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "near: must be 0 or more, got -1"),
    ("'3'", "near: expected a whole number of words (0 or more), got text"),
    ("2.5", "near: expected a whole number of words (0 or more), got a number"),
    ("true", "near: expected a whole number of words (0 or more), got true/false"),
])
def test_bad_near_is_rejected(value: str, message: str) -> None:
    assert errors(rule("phrases: [x]", f"near: {value}")) == [f"w.yaml:5: error: {message} [r1]"]


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False)])
def test_capitals_is_a_boolean(value: str, expected: bool) -> None:
    assert only_rule("phrases: [x]", f"capitals: {value}").capitals is expected


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "Yes"])
def test_capitals_yes_no_on_off_get_the_hint(word: str) -> None:
    assert errors(rule("phrases: [x]", f"capitals: {word}")) == [
        f"w.yaml:5: error: capitals: expected true or false, got '{word}' (write true or false)"
        " [r1]"
    ]


def test_capitals_rejects_a_number() -> None:
    assert errors(rule("phrases: [x]", "capitals: 1")) == [
        "w.yaml:5: error: capitals: expected true or false, got a number [r1]"
    ]


# --------------------------------------------------------------------------- notify


def test_notify_is_not_checked_without_receivers() -> None:
    assert only_rule("phrases: [x]", "notify: [anyone]").notify == ("anyone",)


def test_notify_accepts_known_receivers() -> None:
    loaded = only_rule("phrases: [x]", "notify: [desk, duty]",
                       receivers=frozenset({"desk", "duty"}))
    assert loaded.notify == ("desk", "duty")


def test_unknown_receiver_is_rejected_when_receivers_are_given() -> None:
    text = rule("phrases: [x]", "notify:", "  - desk", "  - maghreb-dsk")
    assert errors(text, receivers=frozenset({"desk", "maghreb-desk"})) == [
        "w.yaml:7: error: notify: unknown receiver 'maghreb-dsk' (did you mean 'maghreb-desk'?)"
        " [r1]"
    ]


def test_notify_must_be_a_list() -> None:
    assert errors(rule("phrases: [x]", "notify: desk")) == [
        "w.yaml:5: error: notify: expected a list of receiver names, got text (write [desk]) [r1]"
    ]


# --------------------------------------------------------------------------- escalate


def test_escalate_names_a_threshold_and_its_receivers() -> None:
    loaded = only_rule("phrases: [x]", "notify: [desk]",
                       "escalate: {sources: 5, languages: 2, notify: [duty]}",
                       receivers=frozenset({"desk", "duty"}))
    assert loaded.escalate == Escalation(sources=5, languages=2, notify=("duty",))
    assert only_rule("phrases: [x]", "escalate: {sources: 3}").escalate == Escalation(3)
    assert only_rule("phrases: [x]").escalate is None


@pytest.mark.parametrize(("value", "message"), [
    ("{languages: 2}", "escalate: needs 'sources' (how many feeds make a story grow)"),
    ("{sources: 1}", "escalate.sources: must be at least 2, got 1"),
    ("{sources: five}", "escalate.sources: expected a whole number of feeds, got text"),
    ("{sources: 5, languages: 0}", "escalate.languages: must be at least 1, got 0"),
    ("{sources: 5, langs: 2}", "escalate: unknown key 'langs' (did you mean 'languages'?)"),
    ("{sources: 5, notify: [duty-editr]}",
     "escalate.notify: unknown receiver 'duty-editr' (did you mean 'duty-editor'?)"),
    ("5", "escalate: expected a mapping such as {sources: 5, languages: 2, notify: "
          "[duty-editor]}, got a number"),
])
def test_bad_escalate_is_rejected(value: str, message: str) -> None:
    text = rule("phrases: [x]", f"escalate: {value}")
    assert errors(text, receivers=frozenset({"duty-editor"})) == [
        f"w.yaml:5: error: {message} [r1]"]


# --------------------------------------------------------------------------- dedup, examples


@pytest.mark.parametrize(("value", "seconds"), [
    ("{window: 30m}", 1800.0), ("{window: 90}", 90.0), ("{}", 24 * 3600.0),
])
def test_dedup_window_is_a_duration(value: str, seconds: float) -> None:
    assert only_rule("phrases: [x]", f"dedup: {value}").dedup == DedupPolicy(seconds)


@pytest.mark.parametrize(("value", "message"), [
    ("{window: soon}",
     "dedup.window: expected a duration such as 30s, 5m, 24h, 1d or 1h30m, got 'soon'"),
    ("{windw: 1h}", "dedup: unknown key 'windw' (did you mean 'window'?)"),
    ("24h", "dedup: expected a mapping such as {window: 24h}, got text (write {window: 24h})"),
])
def test_bad_dedup_is_rejected(value: str, message: str) -> None:
    assert errors(rule("phrases: [x]", f"dedup: {value}")) == [f"w.yaml:5: error: {message} [r1]"]


def test_noise_control_defaults_to_20_per_hour_and_an_hourly_digest() -> None:
    policy = only_rule("phrases: [x]").dedup
    assert (policy.max_per_hour, policy.digest_interval) == (20, 3600.0)


@pytest.mark.parametrize(("value", "expected"), [
    ("{max_per_hour: 5}", DedupPolicy(max_per_hour=5)),
    ("{max_per_hour: 0, digest_interval: 15m}",
     DedupPolicy(max_per_hour=0, digest_interval=900.0)),
    ("{window: 2h, digest_interval: 1d}",
     DedupPolicy(window=7200.0, digest_interval=86400.0)),
])
def test_noise_control_keys_live_in_dedup(value: str, expected: DedupPolicy) -> None:
    assert only_rule("phrases: [x]", f"dedup: {value}").dedup == expected


@pytest.mark.parametrize(("value", "message"), [
    ("{max_per_hour: -1}", "dedup.max_per_hour: must be 0 or more, got -1"),
    ("{max_per_hour: '20'}",
     "dedup.max_per_hour: expected a whole number of alerts (0 or more), got text"),
    ("{max_per_hour: 2.5}",
     "dedup.max_per_hour: expected a whole number of alerts (0 or more), got a number"),
    ("{digest_interval: 30s}", "dedup.digest_interval: must be at least 60s"),
    ("{digest_interval: often}",
     "dedup.digest_interval: expected a duration such as 30s, 5m, 24h, 1d or 1h30m, "
     "got 'often'"),
    ("{max_per_hour: 5, digest_intervall: 1h}",
     "dedup: unknown key 'digest_intervall' (did you mean 'digest_interval'?)"),
])
def test_bad_noise_control_is_rejected(value: str, message: str) -> None:
    assert errors(rule("phrases: [x]", f"dedup: {value}")) == [f"w.yaml:5: error: {message} [r1]"]


def test_examples_are_stored_not_evaluated() -> None:
    loaded = only_rule("phrases: [x]", "examples: {match: [a, b], no_match: [c]}")
    assert loaded.examples == Examples(match=("a", "b"), no_match=("c",))


@pytest.mark.parametrize(("value", "message"), [
    ("{matches: [a]}", "examples: unknown key 'matches' (did you mean 'match'?)"),
    ("{match: a}", "examples.match: expected a list of text, got text (write [a])"),
    ("[a]", "examples: expected a mapping with 'match' and/or 'no_match', got a list"),
])
def test_bad_examples_are_rejected(value: str, message: str) -> None:
    assert errors(rule("phrases: [x]", f"examples: {value}")) == [
        f"w.yaml:5: error: {message} [r1]"
    ]


# --------------------------------------------------------------------------- match trees


def test_match_tree_is_built_as_written() -> None:
    loaded = only_rule(
        "match:",
        "  all:",
        "    - countries: [MA]",
        "    - any:",
        "        - phrases: [accord militaire]",
        "        - people: [Mark Esper]",
        "    - not: {phrases: {all: [jeu, vidéo]}}",
    )
    assert loaded.condition == AllOf((
        Countries(Group(any=("MA",))),
        AnyOf((
            Phrases(Group(any=("accord militaire",))),
            People(Group(any=(Person("Mark Esper"),))),
        )),
        Not(Phrases(Group(all=("jeu", "vidéo")))),
    ))


def test_match_can_be_a_single_leaf() -> None:
    assert only_rule("match: {phrases: [x]}").condition == Phrases(Group(any=("x",)))


@pytest.mark.parametrize(("lines", "message"), [
    (["match: {all: [{countries: [MA]}], any: [{phrases: [x]}]}"],
     "w.yaml:4: error: match: a node has exactly one key of all, any, not, countries, phrases, "
     "people (found: all, any)"),
    (["match: {}"],
     "w.yaml:4: error: match: a node has exactly one key of all, any, not, countries, phrases, "
     "people (found: none)"),
    (["match:", "  phrase: [x]"],
     "w.yaml:5: error: match: unknown key 'phrase' (did you mean 'phrases'?)"),
    (["match: {any: []}"], "w.yaml:4: error: match.any: empty list (give at least one node)"),
    (["match: {all: {phrases: [x]}}"],
     "w.yaml:4: error: match.all: expected a list of nodes, got a mapping"),
    (["match: {not: [{phrases: [x]}]}"],
     "w.yaml:4: error: match.not: expected a mapping with one of all, any, not, countries, "
     "phrases, people, got a list"),
    (["match:", "  any:", "    - phrases: [x]", "    - countries: [ZZ]"],
     "w.yaml:7: error: match.any.countries: unknown country code 'ZZ'"),
    (["match:", "  not:", "    people: []"], "w.yaml:6: error: match.not.people: empty group "
     "(list at least one item)"),
])
def test_bad_match_trees_are_rejected(lines: list[str], message: str) -> None:
    assert errors(rule(*lines)) == [f"{message} [r1]"]


def test_flat_groups_and_match_together_are_rejected_and_both_checked() -> None:
    assert errors(rule("phrases: [x]", "match: {countries: [XX]}")) == [
        "w.yaml:5: error: a rule has either flat groups (phrases) or 'match', not both [r1]",
        "w.yaml:5: error: match.countries: unknown country code 'XX' [r1]",
    ]


# --------------------------------------------------------------------------- aliases


def test_aliases_are_merged_across_files_without_repeats() -> None:
    rule_set = parse_rules(
        [("a.yaml", "aliases: {MA: [Maroc, Royaume], US: [Oncle Sam]}\n"),
         ("b.yaml", "aliases: {MA: [Royaume, Chérifien]}\n")],
        known_codes=CODES,
    )
    assert rule_set.aliases == {
        "MA": ("Maroc", "Royaume", "Chérifien"), "US": ("Oncle Sam",),
    }


@pytest.mark.parametrize(("text", "message"), [
    ("aliases:\n  MA: [x]\n  XX: [y]\n", "w.yaml:3: error: aliases: unknown country code 'XX'"),
    ("aliases:\n  MA: Maroc\n",
     "w.yaml:2: error: aliases.MA: expected a list of text, got text (write [Maroc])"),
    ("aliases: [MA]\n",
     "w.yaml:1: error: aliases: expected a mapping of country code to a list of names, "
     "got a list"),
])
def test_bad_aliases_are_rejected(text: str, message: str) -> None:
    assert errors(text) == [message]


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(("value", "seconds"), [
    ("30s", 30.0), ("5m", 300.0), ("24h", 86400.0), ("1d", 86400.0), ("1h30m", 5400.0),
    ("1d2h3m4s", 93784.0), (45, 45.0), (0, 0.0), ("90", 90.0), (" 5m ", 300.0), (1.5, 1.5),
])
def test_parse_duration_accepts(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [
    "", "5 minutes", "m", "30m1h", "5M", "1.5h", "-5m", -1, True, None, [5], "٣s",
    "99999999999999999999d", float("inf"), 10**12,
])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# --------------------------------------------------------------------------- rule files


def write(path: Path, text: str = "rules: []\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_read_a_file_given_by_name(tmp_path: Path) -> None:
    file = write(tmp_path / "watch.txt", "rules: [] # any name\n")
    assert read_rule_sources([file]) == [(str(file), "rules: [] # any name\n")]


def test_read_a_folder_recursively_in_sorted_order_skipping_temporaries(tmp_path: Path) -> None:
    for name in ["b.yaml", "a.yml", "sub/c.yaml", "sub/deeper/d.YAML", "notes.txt",
                 ".hidden.yaml", "~lock.yaml", "e.yaml~", "f.yaml.swp", "g.yaml.tmp",
                 ".#h.yaml", ".git/i.yaml", "~backup/j.yaml"]:
        write(tmp_path / name)
    shown = [path for path, _ in read_rule_sources([tmp_path])]
    assert shown == [str(tmp_path / name) for name in
                     ["a.yml", "b.yaml", "sub/c.yaml", "sub/deeper/d.YAML"]]


def test_relative_paths_stay_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "rules" / "one.yaml")
    monkeypatch.chdir(tmp_path)
    assert [path for path, _ in read_rule_sources([Path("rules")])] == [
        os.path.join("rules", "one.yaml")
    ]


def test_a_file_reached_twice_is_read_once(tmp_path: Path) -> None:
    file = write(tmp_path / "one.yaml")
    assert len(read_rule_sources([tmp_path, file])) == 1


def test_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    file = tmp_path / "bom.yaml"
    file.write_bytes(b"\xef\xbb\xbfrules: []\n")
    assert read_rule_sources([file]) == [(str(file), "rules: []\n")]


def test_missing_paths_are_all_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_rule_sources([tmp_path / "nope.yaml", tmp_path / "gone"])
    assert str(caught.value) == (
        f"{tmp_path / 'nope.yaml'}: no such file or folder\n"
        f"{tmp_path / 'gone'}: no such file or folder"
    )


def test_undecodable_file_is_reported_with_its_line(tmp_path: Path) -> None:
    file = tmp_path / "latin1.yaml"
    file.write_bytes("rules:\n  - title: Ma\xefs\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        read_rule_sources([file])
    assert str(caught.value) == f"{file}:2: not valid UTF-8 (byte 0xef)"


def test_oversized_file_is_reported(tmp_path: Path) -> None:
    file = tmp_path / "huge.yaml"
    file.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(ConfigError) as caught:
        read_rule_sources([file])
    assert str(caught.value) == f"{file}: file larger than 2 MiB"


def test_read_then_parse_end_to_end(tmp_path: Path) -> None:
    write(tmp_path / "maghreb.yaml", CONTRACT_EXAMPLE)
    rule_set = parse_rules(read_rule_sources([tmp_path]), known_codes=CODES)
    assert rule_set.rules[0].location == Location(str(tmp_path / "maghreb.yaml"), 6)
