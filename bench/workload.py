"""Watch-rule workloads for the benchmarks, and the real articles they run over.

Two workloads, both "countries and (phrases or people)", the shape analysts write most:

- **realistic** (``realistic_rules``): what a news desk watches. People are names that
  occur in the corpus (capitalised word pairs of the French and English articles that are
  mostly written capitalised, so names rather than sentence starts) and officials of the
  region, in Latin script with their Arabic spelling as an alias; phrases are word pairs
  that occur in the articles; countries are drawn from the regions analysts follow. Name
  scanning has real work to do here: the names occur.
- **random** (``random_rules``): phrases from frequent corpus words and people made of a
  few fixed first and last names, most of which never occur. Kept as the second line of
  match_bench to compare with earlier figures.

Articles are read from ../shared/data/articles (never copied into the repository).
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from newswatch.core.article import Article
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.model import (
    AllOf,
    AnyOf,
    Condition,
    Countries,
    Group,
    Not,
    People,
    Person,
    Phrases,
    Rule,
    RuleSet,
)
from newswatch.rules.text import normalize

DEFAULT_ARTICLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "articles"
RULES_PER_FILE = 1000  # the strict YAML loader caps a file at 2 MiB and 200,000 nodes

# Officials of the region and of the powers that deal with it, as an analyst would list
# them: the Latin spelling the desk uses and the Arabic one of Arabic-language media.
OFFICIALS: tuple[tuple[str, str | None], ...] = (
    ("Mohammed VI", "محمد السادس"), ("Nasser Bourita", "ناصر بوريطة"),
    ("Aziz Akhannouch", "عزيز أخنوش"), ("Saad Eddine El Othmani", "سعد الدين العثماني"),
    ("Kaïs Saïed", "قيس سعيد"), ("Béji Caïd Essebsi", "الباجي قائد السبسي"),
    ("Abdelmadjid Tebboune", "عبد المجيد تبون"), ("Ahmed Attaf", "أحمد عطاف"),
    ("Abdelaziz Bouteflika", "عبد العزيز بوتفليقة"), ("Ramtane Lamamra", "رمطان لعمامرة"),
    ("Abdel Fattah al-Sisi", "عبد الفتاح السيسي"), ("Sameh Shoukry", "سامح شكري"),
    ("Khalifa Haftar", "خليفة حفتر"), ("Fayez al-Sarraj", "فايز السراج"),
    ("Salman bin Abdulaziz", "سلمان بن عبدالعزيز"), ("Mohammed bin Salman", "محمد بن سلمان"),
    ("Mohammed bin Nayef", "محمد بن نايف"), ("Adel al-Jubeir", "عادل الجبير"),
    ("Saud al-Faisal", "سعود الفيصل"), ("Tamim bin Hamad", "تميم بن حمد"),
    ("Mohamed bin Zayed", "محمد بن زايد"), ("Abdullah II", "عبدالله الثاني"),
    ("Bashar al-Assad", "بشار الأسد"), ("Mahmoud Abbas", "محمود عباس"),
    ("Benjamin Netanyahu", "بنيامين نتنياهو"), ("Hassan Rouhani", "حسن روحاني"),
    ("Ali Khamenei", "علي خامنئي"), ("Javad Zarif", "جواد ظريف"),
    ("Haider al-Abadi", "حيدر العبادي"), ("Abd Rabbuh Mansur Hadi", "عبد ربه منصور هادي"),
    ("Recep Tayyip Erdogan", "رجب طيب أردوغان"), ("Saad Hariri", "سعد الحريري"),
    ("Michel Aoun", "ميشال عون"), ("Hassan Nasrallah", "حسن نصر الله"),
    ("Barack Obama", "باراك أوباما"), ("John Kerry", "جون كيري"),
    ("Mark Esper", "مارك إسبر"), ("Donald Trump", "دونالد ترامب"),
    ("Joe Biden", "جو بايدن"), ("Antony Blinken", "أنتوني بلينكن"),
    ("Vladimir Putin", "فلاديمير بوتين"), ("Sergei Lavrov", "سيرغي لافروف"),
    ("Emmanuel Macron", "إيمانويل ماكرون"), ("François Hollande", "فرانسوا هولاند"),
    ("Laurent Fabius", "لوران فابيوس"), ("Jean-Yves Le Drian", "جان إيف لودريان"),
    ("Angela Merkel", "أنجيلا ميركل"), ("Theresa May", "تيريزا ماي"),
    ("Ban Ki-moon", "بان كي مون"), ("António Guterres", "أنطونيو غوتيريش"),
    ("Muhammadu Buhari", None), ("Paul Kagame", None), ("Uhuru Kenyatta", None),
    ("William Ruto", None), ("Cyril Ramaphosa", None), ("Jacob Zuma", None),
    ("Abiy Ahmed", None), ("Yoweri Museveni", None), ("Macky Sall", None),
    ("Alassane Ouattara", None), ("Paul Biya", None), ("Idriss Déby", None),
    ("Mahamadou Issoufou", None), ("Ibrahim Boubacar Keïta", None),
    ("Robert Mugabe", None), ("Pierre Nkurunziza", None), ("Félix Tshisekedi", None),
    ("Joseph Kabila", None), ("Omar el-Béchir", "عمر البشير"), ("Salva Kiir", None),
)

# Where the desks look: weighted so that the Maghreb, the Gulf and the big powers come up
# most, as in real watchlists.
REGIONS: tuple[tuple[str, int], ...] = (
    ("MA", 6), ("DZ", 6), ("TN", 5), ("LY", 5), ("EG", 5), ("MR", 2), ("SA", 5), ("AE", 3),
    ("QA", 3), ("YE", 3), ("IQ", 3), ("SY", 4), ("IR", 4), ("IL", 3), ("PS", 3), ("LB", 2),
    ("JO", 2), ("TR", 3), ("US", 6), ("FR", 5), ("GB", 3), ("RU", 4), ("CN", 3), ("DE", 2),
    ("ES", 2), ("NG", 3), ("KE", 2), ("ET", 2), ("ZA", 2), ("SN", 2), ("ML", 2), ("NE", 2),
    ("TD", 2), ("SD", 2), ("SO", 2), ("CD", 2), ("UG", 2), ("RW", 1), ("CM", 1), ("CI", 1),
)

_CAPITALISED_PAIR = re.compile(
    r"(?<![\w.])([A-ZÀ-Ý][a-zà-ÿ]+(?:-[A-Z][a-zà-ÿ]+)?) ([A-ZÀ-Ý][a-zà-ÿ]+(?:-[A-Z][a-zà-ÿ]+)?)\b"
)
_WORD = re.compile(r"[A-Za-zÀ-ÿ]+")
_HONORIFICS = frozenset({"Mr", "Mrs", "Ms", "Sir", "Dr", "Lord", "Dame", "Mme", "Me", "Pr"})


def load_articles(folder: Path = DEFAULT_ARTICLES) -> list[Article]:
    """The French, English and Arabic articles of ``folder`` (JSON lines), in that order."""
    out = []
    for name in ("fr.jsonl", "en.jsonl", "ar.jsonl"):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            out.append(Article(id=d["id"], feed=d.get("feed", ""), title=d.get("title", ""),
                               summary=d.get("summary", ""), content=d.get("content", ""),
                               language=d.get("language")))
    return out


def occurring_names(articles: Sequence[Article], minimum: int = 2) -> list[str]:
    """Capitalised word pairs seen at least ``minimum`` times, both words of which are
    written capitalised more often than not (names, not sentence starts), most frequent
    first."""
    pairs: Counter[str] = Counter()
    capitalised: Counter[str] = Counter()
    lower: Counter[str] = Counter()
    for article in articles:
        if article.language == "ar":
            continue
        text = f"{article.title}\n{article.summary}\n{article.content}"
        pairs.update(f"{a} {b}" for a, b in _CAPITALISED_PAIR.findall(text))
        for word in _WORD.findall(text):
            (capitalised if word[0].isupper() else lower)[word.lower()] += 1

    def name_like(word: str) -> bool:
        key = word.lower()
        return capitalised[key] > 2 * lower[key]

    return [
        pair for pair, count in pairs.most_common()
        if count >= minimum and pair.split()[0] not in _HONORIFICS
        and all(name_like(w) for w in pair.split())
    ]


def word_pairs(articles: Sequence[Article], common: int = 300, keep: int = 20000) -> list[str]:
    """Pairs of consecutive words as they occur in the French, English and Arabic articles
    (normalised), most frequent first: content words only, as analysts write phrases
    ("energy bills", "تنظيم داعش"): both words of 4+ letters, not numbers, and not among
    the ``common`` most frequent words of the corpus (such, will, which, كان)."""
    texts = [normalize(f"{a.title}. {a.content}").split() for a in articles]
    frequent = {w for w, _ in Counter(w for words in texts for w in words).most_common(common)}
    counts: Counter[str] = Counter()
    for words in texts:
        counts.update(f"{a} {b}" for a, b in itertools.pairwise(words)
                      if len(a) >= 4 and len(b) >= 4 and not (a.isdigit() or b.isdigit())
                      and a not in frequent and b not in frequent)
    return [pair for pair, _ in counts.most_common(keep)]


@dataclass(frozen=True)
class Pool:
    """What realistic rules are drawn from: names and word pairs that occur."""

    names: tuple[str, ...]
    phrases: tuple[str, ...]

    @classmethod
    def of(cls, articles: Sequence[Article], minimum: int = 2) -> Pool:
        """Names seen ``minimum`` times or more, and word pairs, of ``articles``."""
        return cls(tuple(occurring_names(articles, minimum)), tuple(word_pairs(articles)))


def realistic_rules(n: int, pool: Pool, seed: int = 7) -> RuleSet:
    """``n`` rules as a desk writes them: 2 countries (any), 2-4 phrases of two words that
    occur in the articles, 1-3 people who occur (half of them officials with an Arabic
    alias, half names found in the articles)."""
    rng = random.Random(seed)
    names, phrases = pool.names, pool.phrases
    codes = [c for c, _ in REGIONS if c in known_codes()]
    weights = [w for c, w in REGIONS if c in known_codes()]
    rules = []
    for i in range(n):
        countries = sorted(set(rng.choices(codes, weights, k=2)))
        people = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.5:
                name, arabic = rng.choice(OFFICIALS)
                people.append(Person(name, (arabic,) if arabic else ()))
            else:
                people.append(Person(rng.choice(names)))
        condition = AllOf((
            Countries(Group(any=tuple(countries))),
            AnyOf((
                Phrases(Group(any=tuple(rng.sample(phrases, rng.randint(2, 4))))),
                People(Group(any=tuple(dict.fromkeys(people)))),
            )),
        ))
        rules.append(Rule(id=f"w{i}", title=f"Watch {i}", condition=condition))
    return RuleSet(tuple(rules))


# Names of the random workload: a few occur (Esper, Bourita, Macron), most never do.
FIRST = ["Mark", "Nasser", "Kaïs", "Abdelmadjid", "Ahmed", "Fatima", "John", "Marie", "Omar",
         "Aïcha", "Ibrahim", "Emmanuel", "Vladimir", "Joe", "Mohammed", "Youssef", "Salma"]
LAST = ["Esper", "Bourita", "Saïed", "Tebboune", "Attaf", "Diallo", "Traoré", "Macron",
        "Poutine", "Biden", "Ben Salman", "Amrani", "Haddad", "Benali", "Kagame", "Ruto"]


def vocabulary(articles: Sequence[Article], rng: random.Random) -> list[str]:
    """Frequent-but-not-stopword words of the corpus, for phrases that sometimes hit."""
    counts: Counter[str] = Counter()
    for a in articles[::5]:
        counts.update(w for w in normalize(a.content).split() if len(w) > 4)
    common = [w for w, _ in counts.most_common(3000)[200:]]
    rng.shuffle(common)
    return common


def random_rules(n: int, words: Sequence[str], rng: random.Random) -> RuleSet:
    """The earlier benchmark's rules: 2 countries of all codes, 2-4 phrases of 1-3
    frequent words, 1-3 people made of ``FIRST`` and ``LAST`` names."""
    codes = sorted(known_codes())
    rules = []
    for i in range(n):
        countries = Countries(Group(any=tuple(rng.sample(codes, 2))))
        phrases = Phrases(Group(any=tuple(
            " ".join(rng.sample(list(words), rng.choice((1, 2, 2, 3))))
            for _ in range(rng.randint(2, 4))
        )))
        people = People(Group(any=tuple(
            Person(f"{rng.choice(FIRST)} {rng.choice(LAST)}") for _ in range(rng.randint(1, 3))
        )))
        rules.append(Rule(id=f"r{i}", title=f"Rule {i}",
                          condition=AllOf((countries, AnyOf((phrases, people))))))
    return RuleSet(tuple(rules))


# ------------------------------------------------------------------------------ as YAML


def _group_yaml(group: Group[Any], item: Any) -> Any:
    if not group.all:
        return [item(x) for x in group.any]
    out: dict[str, Any] = {"all": [item(x) for x in group.all]}
    if group.any:
        out["any"] = [item(x) for x in group.any]
    return out


def _person_yaml(person: Person) -> Any:
    if not person.aliases and person.min_score == Person(person.name).min_score:
        return person.name
    out: dict[str, Any] = {"name": person.name, "aliases": list(person.aliases)}
    if person.min_score != Person(person.name).min_score:
        out["min_score"] = person.min_score
    return out


def condition_yaml(condition: Condition) -> dict[str, Any]:
    """A condition tree as a ``match:`` node of the rule format (rules/loader.py)."""
    if isinstance(condition, AllOf):
        return {"all": [condition_yaml(c) for c in condition.children]}
    if isinstance(condition, AnyOf):
        return {"any": [condition_yaml(c) for c in condition.children]}
    if isinstance(condition, Not):
        return {"not": condition_yaml(condition.child)}
    if isinstance(condition, Countries):
        return {"countries": _group_yaml(condition.group, str)}
    if isinstance(condition, Phrases):
        return {"phrases": _group_yaml(condition.group, str)}
    assert isinstance(condition, People)
    return {"people": _group_yaml(condition.group, _person_yaml)}


def rule_yaml(rule: Rule, notify: Sequence[str] = ()) -> dict[str, Any]:
    """One generated rule (id, title, condition) as YAML data."""
    out: dict[str, Any] = {"id": rule.id, "title": rule.title,
                           "match": condition_yaml(rule.condition)}
    if notify:
        out["notify"] = list(notify)
    return out


def write_watchlist(folder: Path, entries: Sequence[dict[str, Any]]) -> list[Path]:
    """Rule files of at most RULES_PER_FILE rules each, as an ops team would split them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, len(entries), RULES_PER_FILE):
        path = folder / f"rules-{start // RULES_PER_FILE:03d}.yaml"
        text = yaml.safe_dump({"rules": list(entries[start:start + RULES_PER_FILE])},
                              allow_unicode=True, sort_keys=False, width=1000)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
