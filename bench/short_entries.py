"""How much of the text real feeds leave out: the share of entries whose own text (title +
summary + content, as newswatch's parser hands them to matching) is under N words.

    python bench/short_entries.py [--feeds ../shared/data/feeds] [--min-words 60]

Every file under each folder of ``--feeds`` (one folder = one feed set) goes
through ``monitor/feedparse.py`` exactly as a poll would (bytes in, plain-text Articles
out); files it refuses are counted, not measured. A word is a run of non-space characters
(so Arabic and French count the way a reader would). Prints, per feed set and overall,
entries measured, entries under the threshold and their share, the median word count, then
the machine and commit. The figure behind ``full_text: auto`` (docs/full-text.md).
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from machine import commit

from newswatch.core.article import Article
from newswatch.core.errors import ParseError
from newswatch.monitor.feedparse import parse_feed

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FEEDS = ROOT.parent / "shared" / "data" / "feeds"


@dataclass
class FeedSet:
    """Word counts of one folder's entries, and how many of its files were refused."""

    name: str
    words: list[int] = field(default_factory=list)
    files: int = 0
    refused: int = 0

    def short(self, min_words: int) -> int:
        return sum(1 for count in self.words if count < min_words)


def word_count(article: Article) -> int:
    """Words of the entry's own text: title, summary and content, as matching sees them."""
    return sum(len(text.split()) for text in (article.title, article.summary, article.content))


def measure(folder: Path) -> FeedSet:
    """Parse every feed file of ``folder`` as the poller would; collect word counts."""
    result = FeedSet(folder.name)
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        result.files += 1
        try:
            parsed = parse_feed(path.read_bytes(), feed=path.stem, headers={},
                                language=None, max_entries=10_000)
        except ParseError:
            result.refused += 1
            continue
        result.words.extend(word_count(a) for a in parsed.articles)
    return result


def line(name: str, words: list[int], short: int, files: str) -> str:
    share = f"{100 * short / len(words):5.1f} %" if words else "    – "
    median = f"{statistics.median(words):6.0f}" if words else "     –"
    return f"{name:<16}{files:>9}{len(words):>9}{short:>8}  {share}{median}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=Path, default=DEFAULT_FEEDS,
                        help="folder of feed sets (one sub-folder each)")
    parser.add_argument("--min-words", type=int, default=60,
                        help="an entry under this many words is short (default 60)")
    args = parser.parse_args()
    sets = [measure(d) for d in sorted(args.feeds.iterdir()) if d.is_dir()]
    print(f"entries whose title + summary + content is under {args.min_words} words")
    print(f"{'feed set':<16}{'files':>9}{'entries':>9}{'short':>8}  {'share':>7}{'median':>7}")
    everything: list[int] = []
    for s in sets:
        shown = f"{s.files - s.refused}/{s.files}"
        print(line(s.name, s.words, s.short(args.min_words), shown))
        everything.extend(s.words)
    files = sum(s.files for s in sets)
    refused = sum(s.refused for s in sets)
    short = sum(s.short(args.min_words) for s in sets)
    print(line("overall", everything, short, f"{files - refused}/{files}"))
    print(f"files: parsed/all (refused by the parser: not a feed or broken); commit {commit()}")


if __name__ == "__main__":
    main()
