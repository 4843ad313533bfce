"""Text normalisation and tokenisation, shared by rules and articles.

The contract (rule-format.md, "Normalisation" and "Words and sentences") is applied the
same way to rule terms and to article text, so a rule word matches a text word when their
keys are equal.

Design: one length-preserving character translation of the whole text (case folded,
diacritics removed, Arabic letter forms unified, odd spaces to space, apostrophes unified),
then a word regex over the translated text. Because every character maps to exactly one
character, a token's span in the translated text is its span in the original text, so
evidence can quote the original without an offset map. Characters to be deleted (combining
marks, tatweel, zero-width and bidi controls) are mapped to a placeholder that counts as
part of a word and is dropped from the token's key. The rare characters whose
normalisation is longer than one character (ligatures such as ``ﬁ``, ``ß``) keep their
place and are expanded in the key only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_DROP = "\x01"  # placeholder for characters that vanish from keys
_APOSTROPHE = "'"

# Characters that are invisible or formatting: removed from words, never split them.
_IGNORABLE = set(
    "\u00ad\u0640\u061c\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
_APOSTROPHES = set("'’‘ʼ`´′ʹ‛")
_QUOTES = {"«": '"', "»": '"', "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"'}
_DASHES = set("‐‑‒–—―−⁃﹘﹣－")
_ARABIC_LETTERS = {"ى": "ي", "ة": "ه", "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا"}
_LIGATURES = {"œ": "oe", "æ": "ae", "ß": "ss", "ĳ": "ij"}


def _translate_char(ch: str) -> str:
    """The one-character image of ``ch`` (or the placeholder / ``ch`` itself)."""
    if ch in _IGNORABLE:
        return _DROP
    if ch == "\u200b":  # zero-width space marks a word break
        return " "
    if ch in _APOSTROPHES:
        return _APOSTROPHE
    if ch in _QUOTES:
        return _QUOTES[ch]
    if ch in _DASHES:
        return "-"
    if ch in _ARABIC_LETTERS:
        return _ARABIC_LETTERS[ch]
    category = unicodedata.category(ch)
    if category == "Mn":
        return _DROP
    if category in ("Zs", "Zl", "Zp"):
        return "\n" if category in ("Zl", "Zp") else " "
    if category == "Cc":
        return ch if ch in "\n\t" else " "
    if category in ("Cf", "Co", "Cs", "Cn"):
        return _DROP
    folded = unicodedata.normalize("NFKC", ch).casefold()
    base = "".join(
        c for c in unicodedata.normalize("NFD", folded) if unicodedata.category(c) != "Mn"
    )
    base = "".join(_ARABIC_LETTERS.get(c, c) for c in base)
    if len(base) == 1:
        return base
    return ch  # expanded later, inside the key (see _expand)


class _Table(dict[int, str]):
    """Translation table filled on first sight of each character."""

    def __missing__(self, codepoint: int) -> str:
        value = _translate_char(chr(codepoint))
        self[codepoint] = value
        return value


_TABLE = _Table()


@lru_cache(maxsize=65536)
def _expand(word: str) -> str:
    """Key of a word that still holds characters whose normal form is longer than one."""
    out = []
    for ch in word:
        if ch == _DROP:
            continue
        if ord(ch) < 128:
            out.append(ch)
            continue
        folded = unicodedata.normalize("NFKC", ch).casefold()
        folded = "".join(_LIGATURES.get(c, c) for c in folded)
        out.append(
            "".join(
                _ARABIC_LETTERS.get(c, c)
                for c in unicodedata.normalize("NFD", folded)
                if unicodedata.category(c) != "Mn" and c not in _IGNORABLE
            )
        )
    return "".join(out)


def translate(text: str) -> str:
    """Length-preserving normalised image of ``text`` (see module docstring)."""
    return text.translate(_TABLE)


# A word: letters/digits plus the placeholder (and any char the table left as-is, which is
# always a letter here). Underscore is not a word character in prose.
_WORD = re.compile(r"[^\W_]+(?:\x01+[^\W_]*)*|\x01+[^\W_]+(?:\x01+[^\W_]*)*")

# Sentence ends: . ! ? ؟ and line breaks (rule-format.md). '.' is examined for abbreviations.
_SENTENCE_END = re.compile(r"[.!?؟\n。…]")
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "st", "mme", "mlle", "mm", "me", "pr", "prof", "gen", "gal",
        "col", "lt", "sgt", "cpt", "capt", "vs", "etc", "no", "art", "cf", "jr", "sr", "inc",
        "ltd", "co", "corp", "dept", "min", "av", "bd", "fig", "vol", "ed", "eds", "approx", "env",
        "ex",
    }
)

# French elided articles and pronouns before an apostrophe: not words (l'accord → accord).
_ELIDED = frozenset({"l", "d", "qu", "j", "n", "s", "c", "m", "t", "jusqu", "lorsqu", "puisqu"})

# Arabic proclitics (rule-format.md): optional conjunction و/ف, optional preposition ب/ك/ل,
# optional article ال; ل + ال is written لل.
_AR_PREFIX = re.compile(r"(?:[وف]?(?:[بكل]?ال|لل)|[وف]?[بكل]|[وف])")
_AR_ARTICLE = re.compile(r"^ال(?=..)")
_ARABIC = re.compile(r"[\u0600-\u06ff]")


@lru_cache(maxsize=262144)
def arabic_alternatives(key: str) -> tuple[str, ...]:
    """Forms of an Arabic text word with its proclitics stripped, longest first.

    ``والمغرب`` → (``المغرب``, ``مغرب``): the text word matches a rule word equal to any of
    them. Each candidate keeps at least two letters.
    """
    if not _ARABIC.match(key):
        return ()
    return tuple(
        key[n:] for n in range(1, min(len(key) - 1, 5)) if _AR_PREFIX.fullmatch(key[:n])
    )


def rule_key(word_key: str) -> str:
    """Key of a word written in a rule: for Arabic, its own article is dropped so that
    ``المغرب`` in a rule matches ``مغرب``, ``المغرب`` and ``والمغرب`` in text."""
    return _AR_ARTICLE.sub("", word_key) if _ARABIC.match(word_key) else word_key


@dataclass(frozen=True, slots=True)
class Tokens:
    """The words of one text.

    Parallel tuples, one entry per word: ``keys`` (normalised), ``starts``/``ends``
    (character offsets in the original text, end exclusive), ``sentences`` (sentence number,
    increasing). ``text`` is the original text. Elided articles and possessive 's are not
    words, so they never count toward ``near``.
    """

    text: str
    keys: tuple[str, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    sentences: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.keys)

    def surface(self, i: int) -> str:
        return self.text[self.starts[i] : self.ends[i]]

    def span_text(self, first: int, last: int) -> str:
        """Original text from word ``first`` to word ``last`` (inclusive)."""
        return self.text[self.starts[first] : self.ends[last]]


def _sentence_breaks(folded: str) -> list[int]:
    """Offsets of sentence-ending characters, abbreviations and decimals excluded."""
    breaks = []
    for m in _SENTENCE_END.finditer(folded):
        pos = m.start()
        if folded[pos] == ".":
            before = pos
            while before > 0 and folded[before - 1] not in " \t\n.-":
                before -= 1
            word = folded[before:pos].replace(_DROP, "")
            if len(word) == 1 and word.isalpha():
                continue  # initial or abbreviation letter: U.S., É.-U., M. Esper
            if word in _ABBREVIATIONS:
                continue
            nxt = folded[pos + 1 : pos + 2]
            if word.isdigit() and nxt.isdigit():
                continue  # 10.5
            if nxt and nxt not in " \t\n\"')»”]":
                continue  # inside a token such as example.com or 3.14.2
        breaks.append(pos)
    return breaks


def tokenize(text: str) -> Tokens:
    """Split ``text`` into normalised words with original spans and sentence numbers."""
    folded = translate(text)
    breaks = _sentence_breaks(folded)
    n_breaks = len(breaks)
    next_break = breaks[0] if breaks else len(text) + 1
    b = 0
    sentence = 0
    keys: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    sentences: list[int] = []
    length = len(folded)
    for m in _WORD.finditer(folded):
        start, end = m.span()
        while start > next_break:
            sentence += 1
            b += 1
            next_break = breaks[b] if b < n_breaks else length + 1
        key = m.group()
        if not key.isascii() or _DROP in key:
            key = _expand(key)
            if not key:
                continue
        if key in _ELIDED:
            after = folded[end : end + 1]
            if after == _APOSTROPHE and end + 1 < length and folded[end + 1].isalpha():
                continue
            if key == "s" and start > 0 and folded[start - 1] == _APOSTROPHE:
                continue  # possessive 's
        keys.append(key)
        starts.append(start)
        ends.append(end)
        sentences.append(sentence)
    return Tokens(text, tuple(keys), tuple(starts), tuple(ends), tuple(sentences))


def normalize(text: str) -> str:
    """The normalised words of ``text`` joined by single spaces (for display and fuzzy
    comparison)."""
    return " ".join(tokenize(text).keys)
