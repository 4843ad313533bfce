"""Select the real articles of the backtest acceptance test (tests/test_backtest_real.py,
issue 17) when it runs over them instead of the invented ones (tests/fakes/newsroom.py):
``NEWSWATCH_REAL_ARTICLES=DIR``. Reads DIR, writes nothing: the texts remain their
publishers' and may not be copied into the repository.

DIR holds {fr,en,ar}.jsonl, one article a line, as ../shared/data/articles does (MasakhaNEWS
French and English, BBC Afrique and BBC News; SaudiNewsNet, Arabic Saudi newspapers of 2015;
provenance and terms in its notes on sources). Same input, same selection.

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

Articles whose title repeats an earlier one's are left out. Contents are cut to their first
3,000 characters; the fields kept are id, title, summary, content, url, language and feed.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from newswatch.core.article import Article

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


def select(source: Path) -> list[Article]:
    """The selected articles of ``source`` (a folder of {fr,en,ar}.jsonl), by language
    then id."""
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
    return [Article(**row) for row in chosen]

