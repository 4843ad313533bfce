"""Feed parsing on hostile and oversized documents: newswatch's parse_feed against plain
feedparser.parse on the same bytes (the baseline, measured in the same run).

    python bench/parse_bench.py [--repeat 3]

The tests (tests/test_feedparse.py) check what comes out of these documents and bound the
memory; how long they take is measured here, since a duration asserted in a test fails on
a busy machine. Prints, per document: its size, the best of ``--repeat`` runs for each
parser, and the ratio; then the machine and commit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import feedparser
from machine import commit

from newswatch.core.errors import ParseError
from newswatch.monitor.feedparse import parse_feed

ROOT = Path(__file__).resolve().parents[1]


def rss(items: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Bench</title>{items}</channel></rss>").encode()


def documents() -> dict[str, bytes]:
    """The hostile shapes the tests check for correctness, at the sizes they use."""
    laughs = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10 if n > 1 else "&lol;" * 10}">'
        for n in range(1, 10)) + ']><rss version="2.0"><channel><title>&lol9;</title>' \
        "</channel></rss>"
    paragraph = "<p>Some <b>bold</b> text and <a href='/x'>a link</a>.</p><script>x()</script>"
    return {
        "100k tiny items": rss("".join(f"<item><guid>g{n}</guid><title>Item {n}</title></item>"
                                       for n in range(100_000))),
        "5 MB title": rss("<item><title>" + ("breaking news " * 400_000)[:5_000_000]
                          + "</title><link>https://news.example/big</link></item>"),
        "1 MB HTML summary": rss("<item><title>T</title><description><![CDATA["
                                 + paragraph * (1024 * 1024 // len(paragraph))
                                 + "]]></description></item>"),
        "billion laughs (lol9)": laughs.encode(),
    }


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """Fewest seconds of ``repeat`` runs (the least disturbed by other processes)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        with contextlib.suppress(ParseError):  # refused: that is the outcome measured
            run()
        times.append(time.perf_counter() - started)
    return min(times)


def newswatch_parse(body: bytes) -> object:
    return parse_feed(body, feed="bench", headers={}, language=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per document and parser")
    args = parser.parse_args()
    print(f"{'document':<24}{'bytes':>12}{'newswatch s':>14}{'feedparser s':>14}{'ratio':>8}")
    for name, body in documents().items():
        ours = best_of(args.repeat, lambda body=body: newswatch_parse(body))
        # feedparser.parse is not given the billion laughs: expat would expand it (GBs)
        if "laughs" in name:
            base_text = "not run"
            ratio = ""
        else:
            base = best_of(args.repeat, lambda body=body: feedparser.parse(body))
            base_text = f"{base:.3f}"
            ratio = f"{base / ours:.1f}x" if ours else ""
        print(f"{name:<24}{len(body):>12,}{ours:>14.3f}{base_text:>14}{ratio:>8}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; commit {commit()}")


if __name__ == "__main__":
    main()
