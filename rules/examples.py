"""Rule examples: ``examples.match`` texts must match their rule, ``no_match`` texts must not.

An example is a short text: its first line is taken as the title and the whole text as the
content, the way a headline and its article read. Feed filters do not apply to examples.
"""

from __future__ import annotations

from newswatch.core.article import Article
from newswatch.core.errors import Issue
from newswatch.rules.matcher import Matcher


def example_article(text: str) -> Article:
    title, _, _ = text.partition("\n")
    return Article(id="example", feed="", title=title.strip(), content=text)


def check_examples(matcher: Matcher) -> list[Issue]:
    """One issue per example that disagrees with its rule."""
    issues: list[Issue] = []
    for rule in matcher.rules:
        loc = rule.location
        for text in rule.examples.match:
            if not matcher.match(example_article(text), only=rule.id, ignore_feed_filter=True):
                issues.append(Issue(loc.path, loc.line, f"example should match but does not: "
                                    f"{text[:80]!r}", rule.id, "error: "))
        for text in rule.examples.no_match:
            if matcher.match(example_article(text), only=rule.id, ignore_feed_filter=True):
                issues.append(Issue(loc.path, loc.line, f"example should not match but does: "
                                    f"{text[:80]!r}", rule.id, "error: "))
    return issues
