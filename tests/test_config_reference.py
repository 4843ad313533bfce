"""docs/configuration.md documents every key the config validator accepts, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from tests.config_keys import CONFIG_SOURCE, config_keys

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def documented_keys() -> set[str]:
    """First-column keys of the reference table: rows such as | `feeds[].url` | ..."""
    reference = DOC.read_text(encoding="utf-8").split("\n## ", 1)[0]  # the key table
    return set(re.findall(r"^\| `([^`]+)` \|", reference, re.M))


def test_every_accepted_key_is_documented_and_every_documented_key_is_accepted() -> None:
    accepted, documented = config_keys(), documented_keys()
    assert len(accepted) > 40  # the walk found the validator's keys, not an empty set
    assert sorted(accepted - documented) == [], "config keys missing from docs/configuration.md"
    assert sorted(documented - accepted) == [], "docs/configuration.md lists unknown keys"


def test_a_new_key_without_documentation_is_caught() -> None:
    source = CONFIG_SOURCE.read_text(encoding="utf-8")
    changed = source.replace('allowed=("port", "host")', 'allowed=("port", "host", "path")')
    assert changed != source
    assert config_keys(changed) - documented_keys() == {"metrics.path"}
    receiver = source.replace('"interactive", "mute_story", "mute_rule")',
                              '"interactive", "mute_story", "mute_rule", "thread")')
    assert config_keys(receiver) - documented_keys() == {"receivers.NAME.slack.thread"}


def test_top_level_keys_match_the_validator_constant() -> None:
    from newswatch.core import config

    top = {k for k in config_keys() if "." not in k and "[" not in k}
    assert top == set(config._TOP_KEYS)
