"""The compiled-rules cache: unchanged files come from it, any change or doubt compiles.

Real files in a temporary cache folder; ``cached`` is given a build function that counts
its calls, so whether an entry was used is observed, not guessed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newswatch.core.article import Article
from newswatch.rules.matcher import Matcher
from newswatch.streams import rulecache
from newswatch.streams.reload import compile_rules, load_rules

RULES = """\
rules:
  - id: us-maghreb-military
    title: US-Maghreb military agreements
    countries: {all: [US], any: [MA, DZ, TN]}
    phrases: ["accord militaire", "military agreement"]
    people: [Mark Esper, {name: "Kaïs Saïed", aliases: ["قيس سعيد"]}]
"""
ARTICLE = Article(id="a1", feed="f", title="Le Maroc et les États-Unis signent un accord "
                  "militaire", content="Mark Esper a rencontré Kaiis Saied à Tunis.")


class Counting:
    """A build function for ``cached`` that compiles the real rules and counts calls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls = 0

    def __call__(self) -> Matcher:
        self.calls += 1
        return Matcher(load_rules([self.path], None))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("NEWSWATCH_CACHE_DIR", str(folder))
    return folder


def sources(path: Path) -> list[tuple[str, str]]:
    return [(str(path), path.read_text(encoding="utf-8"))]


def use(path: Path, build: Counting) -> Matcher:
    return rulecache.cached(sources(path), None, build)


def explained(matcher: Matcher) -> list[tuple[str, tuple[object, ...]]]:
    return [(m.rule.id, m.evidence) for m in matcher.match(ARTICLE)]


def test_unchanged_files_come_from_the_cache_and_match_the_same(
    cache: Path, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    build = Counting(path)
    first = use(path, build)
    second = use(path, build)
    assert build.calls == 1
    assert second is not first
    assert explained(second) == explained(first) != []
    entry = next(cache.iterdir())
    assert oct(entry.stat().st_mode & 0o777) == "0o600"
    assert oct(cache.stat().st_mode & 0o777) == "0o700"


def test_any_change_to_a_rule_file_compiles_again(cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    build = Counting(path)
    use(path, build)
    path.write_text(RULES.replace("Mark Esper", "Lloyd Austin"), encoding="utf-8")
    changed = use(path, build)
    assert build.calls == 2
    assert all(e.term != "Mark Esper" for _, ev in explained(changed) for e in ev)


@pytest.mark.parametrize("damage", ["truncated", "altered", "world-writable",
                                    "open folder", "someone else's"])
def test_an_entry_that_cannot_be_trusted_is_compiled_again(
    cache: Path, tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    build = Counting(path)
    use(path, build)
    entry = next(cache.iterdir())
    body = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(body[: len(body) // 2])
    elif damage == "altered":
        # the stored digest no longer matches: the body alone would still unpickle
        entry.write_bytes(bytes([body[0] ^ 1]) + body[1:])
    elif damage == "world-writable":
        entry.chmod(0o666)
    elif damage == "open folder":
        cache.chmod(0o777)
    else:
        if os.getuid() != 0:
            pytest.fail("changing a file's owner needs root; the suite runs as root here")
        os.chown(entry, 12345, 12345)
    rebuilt = use(path, build)
    assert build.calls == 2
    assert explained(rebuilt) != []


def test_the_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWATCH_CACHE_DIR", "off")
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    build = Counting(path)
    rulecache.cached(sources(path), None, build)
    rulecache.cached(sources(path), None, build)
    assert build.calls == 2


def test_only_the_newest_entries_are_kept(cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    for n in range(rulecache.KEEP + 3):
        path.write_text(RULES.replace("US-Maghreb", f"US-Maghreb {n}"), encoding="utf-8")
        use(path, Counting(path))
    assert len(list(cache.iterdir())) == rulecache.KEEP


def test_receivers_checked_are_part_of_the_key() -> None:
    text = [("rules.yaml", RULES)]
    assert rulecache.key_of(text, None) != rulecache.key_of(text, frozenset({"desk"}))
    assert rulecache.key_of(text, frozenset({"a"})) != rulecache.key_of(text, frozenset({"b"}))


def test_compile_rules_goes_through_the_cache(cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    first = compile_rules([path], None)
    assert len(list(cache.iterdir())) == 1
    assert explained(compile_rules([path], None)) == explained(first)


def test_a_pickled_matcher_keeps_every_attribute_but_the_per_word_cache(tmp_path: Path) -> None:
    """``Matcher.__reduce__`` names what it keeps (``_INDEX``): an attribute added to the
    index but not to that list would come back empty from the cache, matching less."""
    from newswatch.rules.matcher import _INDEX

    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    matcher = Counting(path)()
    # compiled (setup.py), a Matcher lists its attributes for pickle; as source, in __dict__
    attributes = set(getattr(Matcher, "__mypyc_attrs__", ())) or set(vars(matcher))
    per_word_cache = {"_entries", "_hot", "_first_only", "_cold", "_place_words"}
    assert attributes - per_word_cache == set(_INDEX)
    assert len(_INDEX) == len(set(_INDEX))
