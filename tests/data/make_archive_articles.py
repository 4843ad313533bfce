"""Write archive_articles.jsonl.gz beside this script: the real articles of the backtest
acceptance test (tests/test_backtest_real.py, issue 17), which selects them afresh when the
file is absent.

Source: ../shared/data/articles/{fr,en,ar}.jsonl (MasakhaNEWS French and English, BBC
Afrique and BBC News; SaudiNewsNet, Arabic Saudi newspapers of 2015; provenance and terms in
../shared/data/articles/SOURCES.md). Run from anywhere; the same input gives the same bytes:

    python tests/data/make_archive_articles.py [--source DIR] [--out FILE]

Selection, per language, in id order, each group's articles drawn with random.Random(17)
when a group is capped (criteria are plain keyword searches over title, summary and the kept
content, independent of the matcher the test exercises):

- maghreb: Morocco, Algeria, Tunisia, Libya or Mauritania named (French, English or Arabic
  names), every one;
- us-military: the United States and a military word (armée, défense, military, troops,
  عسكري, الدفاع, الجيش ...);
- gulf-military: Saudi Arabia and a military word;
- officials: Obama, Sisi, Putin, Biden, Trump, Macron, Bouteflika, Essebsi, Mohammed VI;
- noise: articles none of the above finds, so that rules also see what they must not match.

Articles whose title repeats an earlier one's are left out (the source has 9 such titles).
Contents are cut to their first 3,000 characters (the source already cut them at 6,000);
the fields kept are id, title, summary, content, url, language and feed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[1].parent / "shared" / "data" / "articles"
OUT = HERE / "archive_articles.jsonl.gz"
CONTENT_CHARS = 3000
FIELDS = ("id", "title", "summary", "content", "url", "language", "feed")

MAGHREB = r"\bmaroc|morocc|alg[ée]rie|algeria|tunisie|tunisia|libye|libya|mauritanie|" \
          r"mauritania|المغرب|الجزائر|تونس|ليبيا|موريتانيا"
US = r"états-unis|etats-unis|united states|\bU\.S\.|\bUSA?\b|washington|" \
     r"الولايات المتحدة|أمريك|امريك|واشنطن"
MILITARY = r"militaire|défense|armée|military|defen[cs]e|\barmy\b|troops|عسكري|الدفاع|الجيش"
SAUDI = r"saoudi|saudi|السعودي"
OFFICIALS = r"obama|sissi|\bsisi\b|poutine|putin|biden|trump|macron|bouteflika|essebsi|" \
            r"أوباما|اوباما|السيسي|بوتين|بوتفليقة|السبسي|محمد السادس"

# language → group → most articles taken (None: all)
CAPS: dict[str, dict[str, int | None]] = {
    "fr": {"maghreb": None, "us-military": None, "gulf-military": None, "officials": 25,
           "noise": 20},
    "en": {"maghreb": None, "us-military": None, "gulf-military": None, "officials": 30,
           "noise": 25},
    "ar": {"maghreb": None, "us-military": 20, "gulf-military": 25, "officials": 15,
           "noise": 10},
}


def groups(text: str) -> set[str]:
    def found(pattern: str) -> bool:
        return re.search(pattern, text, re.IGNORECASE) is not None

    out = set()
    if found(MAGHREB):
        out.add("maghreb")
    if found(US) and found(MILITARY):
        out.add("us-military")
    if found(SAUDI) and found(MILITARY):
        out.add("gulf-military")
    if found(OFFICIALS):
        out.add("officials")
    return out or {"noise"}


def select(source: Path) -> list[dict[str, Any]]:
    rng = random.Random(17)
    chosen: list[dict[str, Any]] = []
    titles: set[str] = set()
    for language, caps in CAPS.items():
        rows = [json.loads(line) for line in
                (source / f"{language}.jsonl").read_text(encoding="utf-8").splitlines()]
        by_group: dict[str, list[dict[str, Any]]] = {group: [] for group in caps}
        for row in sorted(rows, key=lambda r: str(r["id"])):
            if row["title"] in titles:
                continue
            titles.add(row["title"])
            row = {key: row.get(key) or "" for key in FIELDS}
            row["content"] = row["content"][:CONTENT_CHARS]
            text = " ".join((row["title"], row["summary"], row["content"]))
            for group in groups(text):
                by_group[group].append(row)
        taken: dict[str, dict[str, Any]] = {}
        for group, cap in caps.items():
            members = [r for r in by_group[group] if r["id"] not in taken]
            if cap is not None and len(members) > cap:
                members = rng.sample(members, cap)
            taken.update((r["id"], r) for r in members)
        chosen.extend(sorted(taken.values(), key=lambda r: str(r["id"])))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = select(args.source)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    # mtime 0 and no file name in the header: the same bytes on every run
    with open(args.out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                    mtime=0, compresslevel=9) as out:
        out.write(text.encode("utf-8"))
    languages: dict[str, int] = {}
    for r in rows:
        languages[r["language"]] = languages.get(r["language"], 0) + 1
    print(f"{args.out}: {len(rows)} articles {languages}, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
