"""Names across scripts and spellings (issue 20): a name reduced to the skeleton of its
consonants, the same for its Arabic and its Latin spellings.

The press writes one official many ways: Abdel Fattah al-Sisi, Abdelfattah el-Sissi,
Abdel-Fattah Al Sissi, عبد الفتاح السيسي. Arabic script writes consonants and long vowels;
Latin transliterations add short vowels, each in its own way (e/a, ou/u/w, i/ee/y),
double letters or not, and write one Arabic consonant several ways (q/k/g for ق, dj/j/g
for ج, ch/sh for ش). So both sides are reduced to consonant classes:

- the article (al-, el-, l-, ال, and its sun-letter forms as-, ad-, er- …) and the vowels
  are dropped, doubled letters counted once, and so is a word's last h (ة, ه, ح and a
  Latin final h are too often written or not);
- ``Mohamed``, ``Mohammed``, ``Muhammad``, ``Mahamat`` … are one name (MHMD), and
  ``Abdel``/``Abdul``/``Abd al-`` is ``Abd`` followed by the name (fused or not);
- a Latin ``g`` stands for ج (Egypt), ق (the Maghreb, Sudan) or غ: it gives one skeleton
  per reading.

``skeletons(words)`` gives the skeletons of a name (its words normalised as the tokenizer
keys them); a name in one script and a name in the other are compared with ``fuzz.ratio``
on their skeletons, on the same 0-100 scale as spellings (``newswatch.rules.matcher``).
Two Latin spellings keep their letters (the skeleton would make Bourrita and Bourita, or
Attaf and Atef, one name): they are compared with ``fuzz.ratio`` on ``latin_form``, the
words joined with articles dropped and the ``Abd`` and Muhammad names written one way.
Pure: no I/O.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from newswatch.rules.compiled import neighbourhood
from newswatch.rules.text import Tokens, arabic_alternatives, tokenize


class NameVariantLike(Protocol):
    """What ``window_score`` reads of a name variant (``compiled.NameVariant``)."""

    @property
    def onsets(self) -> tuple[frozenset[str], frozenset[str]]: ...
    @property
    def first_keys(self) -> frozenset[str]: ...
    @property
    def first_blocks(self) -> frozenset[str]: ...
    @property
    def skeletons(self) -> tuple[str, ...]: ...
    @property
    def words(self) -> int: ...
    @property
    def latin(self) -> str: ...

# Latin letters and digraphs to consonant classes ("" drops), longest first.
_LATIN = (("kh", "X"), ("gh", "G"), ("sh", "C"), ("ch", "C"), ("dj", "J"), ("dh", "D"),
          ("th", "T"), ("ph", "F"), ("ck", "K"), ("qu", "K"), ("b", "B"), ("p", "B"),
          ("t", "T"), ("d", "D"), ("j", "J"), ("k", "K"), ("q", "K"), ("c", "K"), ("x", "KS"),
          ("f", "F"), ("v", "F"), ("h", "H"), ("s", "S"), ("z", "Z"), ("r", "R"), ("l", "L"),
          ("m", "M"), ("n", "N"), ("g", "g"))  # g: read as J, K or G (below)
_LATIN_DIGRAPHS = tuple((k, v) for k, v in _LATIN if len(k) == 2)
# single lower-case letters to classes, any other character dropped (the digraphs, done
# first, are upper-case classes already)
_LATIN_LETTERS = str.maketrans({**{chr(c): None for c in range(ord("a"), ord("z") + 1)},
                                **{k: v for k, v in _LATIN if len(k) == 1}})
_G_READINGS = ("J", "K", "G")
_MAX_READINGS = 4  # skeletons kept per word (a name with many g's)
MIN_SKELETON_WORDS = 2  # a name read across scripts has two words or more: never one alone
# Points a transliterated score loses per consonant class added, dropped or changed: a
# skeleton is the name compressed, one consonant apart is another name (at the default
# min_score of 90, skeletons must be equal; at 85, one class may differ).
SKELETON_EDIT = 15.0
MIN_SKELETON = 4  # consonant classes a name needs to be read across scripts (Bah N'Daw: 3)
MIN_ANCHOR = 2  # consonant classes of the last word a name is found by (Ben Ali: not by L)

# Arabic letters (after the tokenizer's normalisation: one alef, ى, ة as ه) to classes.
_ARABIC = {
    "ب": "B", "ت": "T", "ث": "T", "ج": "J", "ح": "H", "خ": "X", "د": "D", "ذ": "D", "ر": "R",
    "ز": "Z", "س": "S", "ش": "C", "ص": "S", "ض": "D", "ط": "T", "ظ": "Z", "غ": "G", "ف": "F",
    "ق": "K", "ك": "K", "ل": "L", "م": "M", "ن": "N", "ه": "H", "ة": "H",
    "پ": "B", "چ": "C", "ڤ": "F", "گ": "K", "ژ": "Z", "ڨ": "K",
}  # ا و ي ى ء أ إ آ ؤ ئ ع: long vowels, hamza and ʿayn, dropped like Latin vowels
# every Arabic letter (and tatweel, diacritics) to its class or to nothing
_ARABIC_LETTERS = str.maketrans({**{chr(c): None for c in range(0x600, 0x700)},
                                 **dict.fromkeys("0123456789"), **_ARABIC})

# Article tokens of Latin transliterations, dropped before the next word (al-Sisi, El
# Othmani; the sun-letter forms only before a word starting with their consonant).
_ARTICLES = frozenset({"al", "el", "ul", "il", "l"})
_SUN_ARTICLES = frozenset({f"{v}{c}" for v in "aeiu" for c in "tdrzsn"}
                          | {"ash", "esh", "ach", "ech", "adh", "edh"})
_MUHAMMAD = re.compile(r"m[aeiou]{1,2}h+[aeiou]{1,2}m+[aeiou]{1,2}[dt]+(?:ou|u)?")
_ABD = re.compile(r"abd(?:[aeiou]{1,2}l)?")
_ARABIC_ABD = re.compile(r"عبد(?:ال)?")
_ARABIC_LETTER = re.compile(r"[\u0600-\u06ff]")
_NB = re.compile(r"(?<=.)نب")
_SOFT_C = re.compile(r"c(?=[eiy])")  # Succès, Cissé: an s
_ROMAN = re.compile(r"(?:x{0,2})(?:ix|iv|v?i{0,3})")  # Mohammed VI's number: no sound


def _collapse(text: str) -> str:
    """Runs of one letter or class counted once."""
    return re.sub(r"(.)\1+", r"\1", text)


def _latin(word: str) -> tuple[str, ...]:
    """A Latin word's skeletons (more than one when it holds a g)."""
    if _MUHAMMAD.fullmatch(word):
        return ("MHMD",)
    prefix = ""
    found = _ABD.match(word)
    if found and found.end() == len(word):  # Abd, Abdel, Abdul, Abdoul
        return ("BD",)
    if found:  # Abdelaziz, Abdelmadjid: the fused forms
        prefix, word = "BD", word[found.end():]
    word = _collapse(word)
    if "c" in word:
        word = _SOFT_C.sub("s", word)
    for digraph, letter in _LATIN_DIGRAPHS:  # in C, each: most words hold none
        if digraph in word:
            word = word.replace(digraph, letter)
    classes = word.translate(_LATIN_LETTERS)
    if "g" not in classes:
        return (_finish(prefix + classes),)
    readings = [""]
    for letter in classes:
        options = _G_READINGS if letter == "g" else (letter,)
        readings = [r + o for r in readings for o in options][:_MAX_READINGS]
    return tuple(dict.fromkeys(_finish(prefix + r) for r in readings))


def _arabic(word: str) -> tuple[str, ...]:
    """An Arabic word's skeleton, its article dropped."""
    found = _ARABIC_ABD.match(word)
    prefix = ""
    if found and len(word) > found.end():
        prefix, word = "BD", word[found.end():]
    elif word.startswith("ال") and len(word) > 3:
        word = word[2:]
    elif word == "ال":  # آل, the family of: Al Thani, Al Nahyan
        return ()
    if "نب" in word[1:]:
        word = _NB.sub("مب", word)  # said mb, written mb in Latin: Jumblatt, جنبلاط
    classes = word.translate(_ARABIC_LETTERS)
    if not classes.isascii():  # a letter of another block (presentation forms): dropped
        classes = "".join(c for c in classes if c.isascii())
    return (_finish(prefix + classes),)


def _finish(classes: str) -> str:
    """The last H's dropped (Chanegriha, شنقريحة). Doubled letters were counted once
    before the vowels went: the two s of Sisi stay two."""
    stripped = classes.rstrip("H")
    return stripped if stripped else classes


@lru_cache(maxsize=200_000)
def word_skeletons(word: str) -> tuple[str, ...]:
    """The skeletons of one normalised word (a tokenizer key); () for a word that has
    none (digits, an article alone)."""
    if _ARABIC_LETTER.match(word):
        return _arabic(word)
    if word.isascii() and word.isalpha() and not _ROMAN.fullmatch(word):
        return _latin(word)
    return ()


_FUSED_PREFIX = re.compile(r"(?:abd(?:[aeiou]{1,2}l)?|ben|bin|ibn|bou)(?=[a-z]{3})")
_ARABIC_FUSED_PREFIX = re.compile(r"(?:عبد(?:ال)?|بن|ابن|بو)(?=..)")


@lru_cache(maxsize=200_000)
def anchor_skeletons(word: str) -> tuple[str, ...]:
    """The skeletons by which a word may be the last word of a name written in another
    way: its own, and, for a word fused with a prefix (Benflis, Abdelaziz, عبدالعزيز),
    those of the rest (فليس, العزيز; Aziz), of two consonant classes or more."""
    own = word_skeletons(word)
    found = (_ARABIC_FUSED_PREFIX if _ARABIC_LETTER.match(word) else _FUSED_PREFIX).match(word)
    if found is None:
        return own
    rest = tuple(s for s in word_skeletons(word[found.end():]) if len(s) >= 2)
    return tuple(dict.fromkeys((*own, *rest)))


def latin_script(words: Sequence[str]) -> bool:
    """Whether a name's words are all in Latin script (else it is read as Arabic)."""
    return all(w.isascii() for w in words)


def fused(word: str) -> bool:
    """Whether a Latin word starts with a prefix fused to a name (Ben, Abdel, Bou …)."""
    return _FUSED_PREFIX.match(word) is not None


@lru_cache(maxsize=200_000)
def spelling_anchors(word: str) -> frozenset[str]:
    """The letter blocks by which a Latin word may be the last word of a name spelt
    another way in Latin script: its neighbourhood (the word and, from five letters, the
    word with one letter removed: Sissi and Sisi meet) and, for a word fused with a
    prefix (Benflis, Abdelaziz), that of the rest."""
    found = _FUSED_PREFIX.match(word)
    words = (word, word[found.end():]) if found else (word,)
    return frozenset(b for w in words for b in neighbourhood(w))


@lru_cache(maxsize=200_000)
def first_keys(word: str) -> frozenset[str]:
    """The skeletons by which a word may be the first word of a name written another
    way: those of ``anchor_skeletons`` and, for a word fused with a prefix, that of the
    prefix (Abdelfattah: BD, as عبد)."""
    found = (_ARABIC_FUSED_PREFIX if _ARABIC_LETTER.match(word) else _FUSED_PREFIX).match(word)
    prefix = word_skeletons(word[:found.end()].removesuffix("ال")) if found else ()
    return frozenset((*anchor_skeletons(word), *prefix))


def starts_name(word: str, variant: NameVariantLike) -> bool:
    """Whether a text word may be the first word of ``variant`` written another way: by
    their letters when both are in Latin script (``latin_first_keys``), else by their
    skeletons (those of the word's forms without proclitics, too)."""
    if word.isascii() and variant.latin:
        return not latin_first_keys(word).isdisjoint(variant.first_blocks)
    return not first_keys_of_forms(word).isdisjoint(variant.first_keys)


@lru_cache(maxsize=200_000)
def latin_first_keys(word: str) -> frozenset[str]:
    """What a Latin word meets another Latin spelling of a name's first word by: its
    letter blocks (``spelling_anchors``), those of a fused prefix (Abdelfattah: abdel),
    ``abd`` for the Abdel forms, and its beginnings of three letters or more (Saad and
    Saadeddine, Mohamed and Mohammed meet by them)."""
    return frozenset(neighbourhood(word)) | latin_first_extra(word)


def latin_first_extra(word: str) -> frozenset[str]:
    """``latin_first_keys`` but the word's own neighbourhood (which the matcher has)."""
    extra = {word[:n] for n in range(3, len(word) + 1)}
    found = _FUSED_PREFIX.match(word)
    if found:
        extra.update(neighbourhood(word[found.end():]), neighbourhood(word[:found.end()]))
    if _ABD.fullmatch(word):
        extra.add("abd")
    return frozenset(extra)


@lru_cache(maxsize=200_000)
def first_keys_of_forms(word: str) -> frozenset[str]:
    """``first_keys`` of a word and of its forms without proclitics (وعبد: عبد)."""
    if word.isascii():
        return first_keys(word)
    keys: set[str] = set()
    for form in (word, *arabic_alternatives(word)):
        keys.update(anchor_skeletons(form))
        found = _ARABIC_FUSED_PREFIX.match(form)
        if found:
            keys.update(word_skeletons(form[:found.end()].removesuffix("ال")))
    return frozenset(keys)


def never_in_name(word: str) -> bool:
    """Whether a text word cannot be a word of a name read across scripts: no letters (a
    number), an Arabic function word, title or ordinal, or an Arabic adjective or plural
    (the article and ية or ات)."""
    if _ARABIC_LETTER.match(word):
        return word in ARABIC_STOPWORDS or (word.startswith("ال")
                                             and word.endswith(_NOT_NAME_ENDINGS))
    return not word_skeletons(word) and not is_article(word, "x")


def is_article(word: str, following: str | None) -> bool:
    """Whether the Latin token ``word`` is the article of ``following`` (al-Sisi,
    as-Sisi, er-Rachid), dropped from the name."""
    if word in _ARTICLES:
        return following is not None
    return (word in _SUN_ARTICLES and following is not None
            and following.startswith(word[-1] if word[-1] != "h" else word[-2:]))


def name_parts(words: Sequence[str]) -> list[tuple[str, ...]]:
    """The skeletons of each word of a name that has some, articles left out."""
    parts = []
    for i, word in enumerate(words):
        if is_article(word, words[i + 1] if i + 1 < len(words) else None):
            continue
        found = word_skeletons(word)
        if found:
            parts.append(found)
    return parts


def joined(parts: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """The skeletons of a name from its words' (``name_parts``): one per reading of its
    g's, at most ``_MAX_READINGS``; () for no words."""
    if not parts:
        return ()
    combos = ("".join(combo) for combo in itertools.product(*parts))
    return tuple(dict.fromkeys(itertools.islice(combos, _MAX_READINGS)))


def latin_form(words: Sequence[str]) -> str:
    """A Latin-script name's words as one string, compared letter by letter with another
    Latin spelling: articles dropped, ``Abdel``/``Abdul``… written ``abd``, the
    Muhammad names written ``muhammad``, words joined (so fused and split forms meet);
    "" when a word is not Latin."""
    out = []
    for i, word in enumerate(words):
        if not (word.isascii() and word.isalpha()):
            return ""
        if is_article(word, words[i + 1] if i + 1 < len(words) else None):
            continue
        if _MUHAMMAD.fullmatch(word):
            out.append("muhammad")
            continue
        found = _ABD.match(word)
        out.append("abd" + word[found.end():] if found else word)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Window:
    """Some text words as a name: how many words it has (articles left out), its
    skeletons, its Latin form ("" when not all in Latin script) and its onsets; and the
    same with one or two of its inner words left out (``shorter``: a longer official form,
    Mohamed Ould Cheikh El Ghazouani, holds the usual one, Mohamed Ould Ghazouani)."""

    words: int
    skeletons: tuple[str, ...]
    latin: str
    onsets: tuple[frozenset[str], frozenset[str]]
    shorter: tuple[tuple[int, str, tuple[str, ...]], ...] = ()  # (left out, latin, skeletons)


MAX_LEFT_OUT = 2  # inner words of a longer form left out to find the usual one


def read_window(words: Sequence[str]) -> Window:
    """``words`` (normalised, as the tokenizer keys them) read as a name."""
    named = [(i, word_skeletons(w)) for i, w in enumerate(words)
             if word_skeletons(w)
             and not is_article(w, words[i + 1] if i + 1 < len(words) else None)]
    parts = [p for _, p in named]
    shorter = []
    inner = range(1, len(named) - 1)
    for leave in range(1, min(MAX_LEFT_OUT, len(named) - MIN_SKELETON_WORDS) + 1):
        for left in itertools.combinations(inner, leave):
            kept = [w for n, (i, _) in enumerate(named) if n not in left
                    for w in (words[i],)]
            shorter.append((leave, latin_form(kept),
                            joined([p for n, p in enumerate(parts) if n not in left])))
    return Window(len(parts), joined(parts), latin_form(words), name_onsets(words),
                  tuple(shorter))


def window_score(window: Window, variant: NameVariantLike, cutoff: float
                 ) -> tuple[float, str]:
    """How close a window of text is to a name variant, 0-100 (0 below ``cutoff``, or
    when the window has fewer words than a name needs), and how it was compared: on their
    Latin forms (``respelled``) when both are in Latin script, else on their skeletons
    (``transliterated``, the best of their readings, ``SKELETON_EDIT`` points off per
    consonant class apart, and only when both start and end alike: ``onset``); the best
    of the window whole and shortened (``Window.shorter``)."""
    if window.words < min(variant.words, MIN_SKELETON_WORDS):
        return 0.0, ""
    if variant.latin and window.latin:
        return max(float(fuzz.ratio(latin, variant.latin, score_cutoff=cutoff))
                   for latin in (window.latin, *(s[1] for s in window.shorter))), "respelled"
    # Across scripts, where no capital letter tells a name, a name of three words or more
    # may leave out one inner word of the text; two words never (Minni Minnawi is not "أمن
    # المطار وأمن المواني").
    forms = (window.skeletons, *(found for left, _, found in window.shorter
                                 if left == 1 and variant.words >= 3))
    if (min(map(len, variant.skeletons), default=0) < MIN_SKELETON
            or window.onsets[0].isdisjoint(variant.onsets[0])
            or window.onsets[1].isdisjoint(variant.onsets[1])):
        return 0.0, ""
    edits = int((100.0 - cutoff) // SKELETON_EDIT)
    distance = min(Levenshtein.distance(a, b, score_cutoff=edits)
                   for found in forms for a in found for b in variant.skeletons)
    score = 100.0 - SKELETON_EDIT * distance
    return (score if score >= cutoff else 0.0), "transliterated"


_VOWEL_ONSETS = frozenset("aeiouyw") | frozenset("اأإآعوييىء")


@lru_cache(maxsize=200_000)
def onset(word: str) -> frozenset[str]:
    """How a word starts, in consonant classes: ``V`` for a vowel (Latin a e i o u y w;
    Arabic ا ع و ي: Ahmed أحمد, Omar عمر, Ould ولد), else the class of its first sound
    (all three readings of a g). An Arabic word's article is left out (الفتاح: F)."""
    if not word:
        return frozenset()
    if not word.isascii() and word.startswith("ال") and len(word) > 3:
        word = word[2:]
    found = frozenset(s[:1] for s in word_skeletons(word) if s)
    if word[0] in _VOWEL_ONSETS:
        # an Arabic alef before a consonant is often not written in Latin: Brahim, إبراهيم
        return frozenset("V") | (found if word[0] in "اأإآ" else frozenset())
    return found or frozenset("V")


def name_onsets(words: Sequence[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The onsets of a name's first and last words (articles left out)."""
    kept = [w for i, w in enumerate(words)
            if not is_article(w, words[i + 1] if i + 1 < len(words) else None)
            and word_skeletons(w)]
    if not kept:
        return frozenset(), frozenset()
    return onset(kept[0]), last_onset(kept[-1])


@lru_cache(maxsize=200_000)
def last_onset(word: str) -> frozenset[str]:
    """The onsets of a name's last word: its own and, after a fused prefix, that of the
    rest (Benflis: B and F)."""
    found = (_ARABIC_FUSED_PREFIX if _ARABIC_LETTER.match(word) else _FUSED_PREFIX).match(word)
    return onset(word) | onset(word[found.end():]) if found else onset(word)


def skeletons(words: Sequence[str]) -> tuple[str, ...]:
    """The skeletons of a name (its normalised words), articles dropped: one per reading
    of its g's, at most ``_MAX_READINGS``; () when no word has a skeleton."""
    return joined(name_parts(words))


# Name words that Latin-script text writes in lower case inside a name.
_LOWER_PARTICLES = frozenset({
    "al", "el", "ul", "il", "ben", "bin", "bint", "ibn", "ould", "ag", "abu", "bou", "de",
    "du", "des", "la", "le", "da", "di", "dos", "do", "van", "von", "der", "den", "y",
    *_SUN_ARTICLES})


# Arabic words that are given names too, and ordinary words as often (adjectives, nouns):
# a name read across scripts from these alone does not count (سعيد "happy", أمين
# "honest"...). Normalised as the tokenizer keys them.
COMMON_ARABIC_WORDS = frozenset(key for word in (
    "سعيد", "خليفة", "عزيز", "العزيز", "أمين", "كريم", "جميل", "جمال", "كمال", "عادل", "حسن",
    "سالم", "سليم", "نور", "فضل", "منصور", "صالح", "محمود", "ناصر", "رشيد", "حميد", "نبيل",
    "شريف", "منير", "ماجد", "وليد", "هادي", "فائز", "بشير", "حافظ", "أمل", "سلام", "عاطف",
    "باسل", "سعد", "فرح", "رضا", "عمر", "علي", "زكي", "لطيف", "مجيد", "مختار", "مصطفى",
) for key in tokenize(word).keys)


# Arabic function words, the commonest news words, titles and ordinals, never a word of a
# name: a window holding one is no name, whatever its skeleton ("من ... من" is not Minni
# Minnawi, هذا الأمر is not Hadi al-Amiri, الأمير سلمان is not Omar Suleiman, عبدالله
# الثاني is King Abdullah II). على is left out: normalised, it is علي (Ali); so are الشيخ
# and الملك, words of some names (Mohamed Ould Cheikh El Ghazouani, Abdul-Malik al-Houthi).
_STOPWORDS = """
من في الى إلى عن مع هذا هذه ذلك تلك هؤلاء الذي التي الذين اللذين اللتين اللواتي اللاتي ما
ماذا لا لم لن قد كان كانت يكون تكون كانوا وقد ثم او أو إن ان أن إنه انه أنه لكن لكنه بعد قبل
حتى منذ خلال بين عند عندما حيث كما كل بعض غير أي هو هي هم هن نحن أنا انت هناك هنا أمام امام
وراء فوق تحت ضد نحو لدى لقد إذا اذا إذ اذ أيضا ايضا فقط جدا حول ضمن عبر دون سوى مثل وفق وفقا
يوم امس أمس اليوم الأمر أمر شيء أول اول آخر اخر عام العام مما ممن عما فيما بما لما قال وقال
أكد اكد أضاف اضاف وأضاف حسب بحسب جميع عدة عدد أكثر اكثر أقل اقل كيف متى أين اين لماذا التى
الذى فيه فيها منه منها عليه عليها له لها لهم به بها إليه اليه عنه عنها وهو وهي وهذا وهذه
ولكن لأن لان بأن بان كذلك أيضًا تم يتم وكان وكانت سنة شهر الساعة أمر ضمن بينما
الأمير الرئيس الوزير السيد السيدة اللواء العقيد الفريق المشير العميد الجنرال الدكتور
النائب القائد الأول الاول الثاني الثالث الرابع الخامس السادس السابع الثامن
"""
ARABIC_STOPWORDS = frozenset(key for word in _STOPWORDS.split() for key in tokenize(word).keys)


# Endings of Arabic adjectives and plurals (ية as the tokenizer keys it, ات) after the
# article, not of names: السعودية, الكويتية, الدعاية, القرارات (but هنية, عرفات are names).
_NOT_NAME_ENDINGS = ("يه", "ات")
_PUNCTUATION = re.compile(r"[,;:.!?،؛؟()\[\]«»“”\"/|]")


class NameGuard:
    """Whether a window of a text's words looks like a name where it stands: in
    Latin-script text written in both cases, each word capitalised (or a particle such
    as al, ben, ould): "…," Ahmed said is no Ahmed Saied. Arabic script has no case;
    ``no_name`` tells a window that, read across scripts, cannot be a name."""

    def __init__(self, tokens: Tokens) -> None:
        self._tokens = tokens
        self._cased: bool | None = None  # whether the text is written in both cases
        self._capitalised: dict[int, bool] = {}

    def no_name(self, first: int, last: int) -> bool:
        """Whether a window read across scripts cannot be a name: punctuation between its
        words ("محمد، وعبد العزيز" is two people), a word with no letters (a number), an
        Arabic function word, or Arabic words that are all common words."""
        tokens = self._tokens
        if any(_PUNCTUATION.search(tokens.text, tokens.span(i)[1], tokens.span(i + 1)[0])
               for i in range(first, last)):
            return True
        keys = tokens.keys[first : last + 1]
        if any(map(never_in_name, keys)):
            return True
        arabic = [k for k in keys if not k.isascii()]
        return bool(arabic) and all(k in COMMON_ARABIC_WORDS for k in arabic)

    def allows(self, first: int, last: int) -> bool:
        if self._cased is None:
            text = self._tokens.text
            self._cased = text != text.lower() and text != text.upper()
        if not self._cased:
            return True
        return all(self._name_word(i) for i in range(first, last + 1))

    def _name_word(self, i: int) -> bool:
        """Word ``i`` may be a word of a name: not Latin, a particle, or capitalised."""
        found = self._capitalised.get(i)
        if found is None:
            key = self._tokens.keys[i]
            found = (not key.isascii() or key in _LOWER_PARTICLES or not key.isalpha()
                     or self._tokens.surface(i)[:1].isupper())
            self._capitalised[i] = found
        return found
