"""The fast matcher against the reference implementation of the contract, on the real
French, English and Arabic articles (tests/test_matcher_reference.py does the same on the
real news feeds of tests/data/news, in CI).

    python bench/reference_check.py [--every 10] [--articles DIR]

Rules: tests/test_matcher_reference.py's watchlist (1,000 realistic rules, a fifth varied
over the whole contract) drawn from these articles. Prints the articles compared, the
matches and evidence found, and the first disagreement (exit 1) if there is one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workload import DEFAULT_ARTICLES, load_articles

from tests.test_matcher_reference import compare, watchlist


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=Path, default=DEFAULT_ARTICLES)
    parser.add_argument("--every", type=int, default=10, help="compare every Nth article")
    args = parser.parse_args()
    articles = load_articles(args.articles)
    sample = articles[:: args.every]
    try:
        seen = compare(watchlist(articles, minimum=2), sample)
    except AssertionError as disagreement:
        print(f"DISAGREE: {disagreement}")
        return 1
    print(f"identical on {len(sample)} of {len(articles)} articles: {seen['matches']} matches,"
          f" evidence {seen['country']} country, {seen['phrase']} phrase, {seen['person']} person")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
