"""Main-text extraction from news pages: trafilatura against readability-lxml + a cleaner,
in the same run, on the same pages.

    python bench/extract_bench.py [--per-language 150] [--articles ../shared/data/articles]

Pages are built like real news sites (tests/fakes/news_pages.py: menus, cookie banner, ads,
a "read also" box inside the article, related and most-read lists, share buttons, comments,
newsletter, footer; three layouts, Arabic right-to-left, one layout in a legacy encoding
declared only in a meta tag) around the bodies of real articles (../shared/data/articles,
French, English and Arabic; read from there, never copied). Related-article titles are the
titles of other real articles of the same language.

Four rows: trafilatura with its defaults; trafilatura as newswatch runs it
(``favor_precision``, link lists dropped: monitor/extract.py); readability-lxml, whose HTML
output is turned into text by newswatch's own cleaner (monitor/textclean.py); and
readability-lxml with the same link-list filter as newswatch. Per library and language:
recall (share of the body's sentences found in the extracted text), chrome leak (share of
the page's chrome texts — menus, banner, ads, lists, comments, footer — found in it),
pages with any leak, pages with nothing extracted. Then pages per second on one core, p50
and p99 extraction time per page (ms), the pages whose date and language the library
found, and the leaky pages per layout (semantic/div soup/legacy). Every library gets the
same decoded text (``newswatch.monitor.extract.decode_html``). Ends with the machine and
commit.

readability-lxml is not a dependency of newswatch: it brings chardet, and feedparser
guesses undeclared feed encodings differently when chardet is importable. The bench runs
without it (trafilatura rows only); for the comparison, install it apart:

    python -m venv --system-site-packages /tmp/xbench
    /tmp/xbench/bin/pip install readability-lxml
    /tmp/xbench/bin/python bench/extract_bench.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trafilatura
from machine import commit, cpu_model
from trafilatura.utils import load_html

from newswatch.monitor.extract import (
    _drop_link_lines,
    _link_texts,
    decode_html,
    trafilatura_extractor,
)
from newswatch.monitor.textclean import clean_text
from tests.fakes.news_pages import Page, Story, build_page, paragraphs_of

try:
    from readability import Document
except ImportError:  # not a dependency of newswatch: see the module docstring
    Document = None

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARTICLES = ROOT.parent / "shared" / "data" / "articles"
LANGUAGES = ("fr", "en", "ar")


@dataclass(frozen=True)
class Output:
    text: str
    date: str | None = None
    language: str | None = None


def with_trafilatura(html: str, url: str) -> Output:
    """trafilatura's defaults (comments and tables left out)."""
    found = trafilatura.bare_extraction(
        html, url=url, include_comments=False, include_tables=False, with_metadata=True)
    if found is None or isinstance(found, dict):
        return Output("")
    return Output(found.text or "", found.date, found.language)


def with_newswatch(html: str, url: str) -> Output:
    """What newswatch runs (monitor/extract.py): trafilatura with favor_precision, minus
    the lines that are link lists."""
    found = trafilatura_extractor(html, url=url)
    if found is None:
        return Output("")
    return Output(found.text, found.published.isoformat() if found.published else None,
                  found.language)


def with_readability(html: str, url: str) -> Output:
    summary = Document(html, url=url).summary(html_partial=True)
    return Output(clean_text(summary, 100_000))


def with_readability_links(html: str, url: str) -> Output:
    """readability-lxml given newswatch's link-list filter too (the fair comparison)."""
    links = _link_texts(load_html(html))
    summary = Document(html, url=url).summary(html_partial=True)
    return Output(_drop_link_lines(clean_text(summary, 100_000), links))


EXTRACTORS: dict[str, Callable[[str, str], Output]] = {
    "trafilatura": with_trafilatura,
    "newswatch": with_newswatch,
    **({"readability": with_readability, "read+links": with_readability_links}
       if Document is not None else {}),
}


@dataclass
class Score:
    recall: list[float] = field(default_factory=list)
    leak: list[float] = field(default_factory=list)
    leaky_pages: int = 0
    leaky_by_layout: list[int] = field(default_factory=lambda: [0, 0, 0])
    empty: int = 0
    dated: int = 0
    languages: int = 0
    seconds: list[float] = field(default_factory=list)


def normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def sentences(story: Story) -> list[str]:
    return [s for p in story.paragraphs for s in paragraphs_of(p, 1) if len(s.split()) >= 4]


def score(page: Page, output: Output, into: Score) -> None:
    found = normal(output.text)
    body = sentences(page.story)
    into.recall.append(sum(normal(s) in found for s in body) / len(body) if body else 1.0)
    # chrome texts of 2+ words that do not occur in the story itself
    story_text = normal(" ".join(page.story.paragraphs))
    chrome = [c for c in page.chrome if len(c.split()) >= 2 and normal(c) not in story_text]
    leaked = sum(normal(c) in found for c in chrome)
    into.leak.append(leaked / len(chrome))
    into.leaky_pages += leaked > 0
    into.leaky_by_layout[page.layout] += leaked > 0
    into.empty += not found
    into.dated += output.date is not None
    into.languages += output.language is not None


def pages(folder: Path, per_language: int) -> list[tuple[Page, str]]:
    out = []
    for language in LANGUAGES:
        rows = [json.loads(line) for line in
                (folder / f"{language}.jsonl").read_text(encoding="utf-8").splitlines()]
        rows = [r for r in rows if len(r["content"].split()) >= 80][:per_language + 10]
        titles = [r["title"] for r in rows]
        for n, row in enumerate(rows[:per_language]):
            story = Story(row["title"], paragraphs_of(row["content"]), language,
                          "2020-10-02T10:00:00+00:00")
            related = titles[n + 1:n + 8]
            page = build_page(story, related=related, layout=n % 3)
            out.append((page, decode_html(page.body, {})))
    return out


def pct(values: list[float]) -> str:
    return f"{100 * statistics.fmean(values):6.1f} %"


def report(name: str, by_language: dict[str, Score]) -> None:
    for language, s in by_language.items():
        n = len(s.recall)
        print(f"{name:<12} {language:<4} {pct(s.recall)} {pct(s.leak)} "
              f"{s.leaky_pages:>5}/{n:<4} {s.empty:>5}")
    every = [t for s in by_language.values() for t in s.seconds]
    cuts = statistics.quantiles(every, n=100)
    dated = sum(s.dated for s in by_language.values())
    known = sum(s.languages for s in by_language.values())
    layouts = "/".join(str(sum(s.leaky_by_layout[i] for s in by_language.values()))
                       for i in range(3))
    print(f"{name:<12} all  {len(every) / sum(every):7.1f} pages/s/core   "
          f"p50 {1000 * statistics.median(every):6.1f} ms   p99 {1000 * cuts[98]:6.1f} ms   "
          f"date {dated}/{len(every)}   language {known}/{len(every)}   "
          f"leaky pages by layout {layouts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=Path, default=DEFAULT_ARTICLES)
    parser.add_argument("--per-language", type=int, default=150)
    args = parser.parse_args()
    built = pages(args.articles, args.per_language)
    print(f"{len(built)} pages, {args.per_language} per language, layouts 0/1/2 in turn")
    print(f"{'library':<12} {'lang':<4} {'recall':>8} {'leak':>8} {'leaky':>10} {'empty':>5}")
    for name, extract in EXTRACTORS.items():
        extract(built[0][1], "https://news.example/warm-up")  # imports, caches
        results = {language: Score() for language in LANGUAGES}
        for page, html in built:
            started = time.perf_counter()
            output = extract(html, "https://news.example/article/1.html")
            elapsed = time.perf_counter() - started
            into = results[page.story.language]
            into.seconds.append(elapsed)
            score(page, output, into)
        report(name, results)
    if Document is None:
        print("readability-lxml not installed: see this script's docstring for the comparison")
    print(f"one process, one core: {cpu_model()}; commit {commit()}")


if __name__ == "__main__":
    main()
