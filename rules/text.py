"""Text normalisation and tokenisation, shared by rules and articles.

The contract (docs/rules.md, "Normalisation" and "Words and sentences") is applied the
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
from bisect import bisect_left
from functools import lru_cache
from itertools import chain, pairwise, repeat

_DROP = "\x01"  # placeholder for characters that vanish from keys
_APOSTROPHE = "'"

# Characters that are invisible or formatting: removed from words, never split them.
_IGNORABLE = set(
    "\u00ad\u0640\u061c\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers: letters that render as nothing
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
    if any(c in _LIGATURES for c in folded):
        _EXPANDABLE.add(ch)
        return ch
    base = "".join(
        c for c in unicodedata.normalize("NFD", folded) if unicodedata.category(c) != "Mn"
    )
    base = "".join(_ARABIC_LETTERS.get(c, c) for c in base)
    if len(base) == 1:
        return base
    _EXPANDABLE.add(ch)
    return ch  # expanded later, inside the key (see _expand)


# Characters left in place by the table because their normal form is longer (ß, œ, ﬁ ...):
# a text holding none of them (and no removed character) needs no per-word expansion.
_EXPANDABLE: set[str] = set()
_expandable_pattern: tuple[int, re.Pattern[str] | None] = (0, None)


def _needs_expansion(folded: str) -> bool:
    global _expandable_pattern
    if _DROP in folded:
        return True
    if folded.isascii() or not _EXPANDABLE:
        return False
    size, pattern = _expandable_pattern
    if pattern is None or size != len(_EXPANDABLE):
        pattern = re.compile("[" + re.escape("".join(sorted(_EXPANDABLE))) + "]")
        _expandable_pattern = (len(_EXPANDABLE), pattern)
    return pattern.search(folded) is not None


class _Table(dict[int, str]):
    """Translation table filled on first sight of each character."""

    def __missing__(self, codepoint: int) -> str:
        value = _translate_char(chr(codepoint))
        self[codepoint] = value
        return value


_TABLE = _Table()


@lru_cache(maxsize=262144)
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


def _byte_table(codec: str) -> bytes:
    """The table as bytes for the characters of a one-byte ``codec`` (filled for all of
    them now): "?" where the image is not in the codec (µ → μ in Latin-1), or the byte
    stands for no character; those are then translated one by one."""
    table = []
    for byte in range(256):
        char = bytes([byte]).decode(codec, "replace")
        image = _TABLE[ord(char)]
        encoded = image.encode(codec, "replace")
        table.append(encoded[0] if char != "\ufffd" and len(encoded) == 1 else ord("?"))
    return bytes(table)


# str.translate looks every character up in the table (a dict), except in a text that is
# all ASCII. A text mostly in Latin-1 (French, English with a few curly quotes) or in
# Windows-1256 (Arabic) is translated as bytes instead, in C, the few characters outside
# the code page put right one by one: several times faster.
_CODE_PAGES = tuple((codec, _byte_table(codec)) for codec in ("latin-1", "cp1256"))
_PROBE = 256  # characters looked at to choose a code page


def translate(text: str) -> str:
    """Length-preserving normalised image of ``text`` (see module docstring)."""
    return _translate(text)[0]


def _translate(text: str) -> tuple[str, str | None]:
    """``translate(text)``, and the one-byte code page its image is written in (None when
    it has characters outside them)."""
    if text.isascii():
        return text.translate(_TABLE), "latin-1"  # ASCII images: CPython's fast path
    probe = text[:_PROBE]
    for codec, table in _CODE_PAGES:
        if len(probe.encode(codec, "ignore")) * 8 >= len(probe) * 7:
            return _translate_bytes(text, codec, table)
    return text.translate(_TABLE), None


def _translate_bytes(text: str, codec: str, table: bytes) -> tuple[str, str | None]:
    """``text.translate(_TABLE)`` through a code page: every character outside it is one
    "?" in the bytes translated, and each "?" is looked up again in the text."""
    folded = text.encode(codec, "replace").translate(table).decode(codec)
    if folded.count("?") * 8 > len(folded):
        return text.translate(_TABLE), None  # too many to put right one by one
    pieces = []
    last = 0
    at = folded.find("?")
    while at != -1:
        image = _TABLE[ord(text[at])]
        if image != "?":
            pieces.append(folded[last:at])
            pieces.append(image)
            last = at + 1
        at = folded.find("?", at + 1)
    if not pieces:
        return folded, codec
    pieces.append(folded[last:])
    return "".join(pieces), None


# A word: letters/digits plus the placeholder (and any char the table left as-is, which is
# always a letter here). Underscore is not a word character in prose.
_WORD = re.compile(r"[^\W_]+(?:\x01+[^\W_]*)*|\x01+[^\W_]+(?:\x01+[^\W_]*)*")

# Sentence ends: . ! ? ؟ and line breaks (docs/rules.md). '.' is examined for abbreviations.
_SENTENCE_ENDS = ".!?؟\n。…"
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "st", "mme", "mlle", "mm", "me", "pr", "prof", "gen", "gal",
        "col", "lt", "sgt", "cpt", "capt", "vs", "etc", "no", "art", "cf", "jr", "sr", "inc",
        "ltd", "co", "corp", "dept", "min", "av", "bd", "fig", "vol", "ed", "eds", "approx", "env",
        "ex",
    }
)

# The words of a text once its removed characters are gone (they join the letters around
# them, as in _WORD); _WORD_FAST finds the same words, faster, in a text without "_".
_WORD_PLAIN = re.compile(r"[^\W_]+")
_WORD_FAST = re.compile(r"\w+")
_APOS = re.compile("'")
_ELIDED = frozenset({"l", "d", "qu", "j", "n", "s", "c", "m", "t", "jusqu", "lorsqu", "puisqu"})


def _blank_elisions(folded: str) -> str:
    """Blank out what the contract says is not a word, keeping every offset: French elided
    articles before an apostrophe and a letter (l'accord → accord) and the possessive 's."""
    if "'" not in folded:
        return folded
    cuts: list[tuple[int, int]] = []
    size = len(folded)
    for m in _APOS.finditer(folded):
        p = m.start()
        nxt = folded[p + 1] if p + 1 < size else ""
        begin = p
        while begin > 0 and folded[begin - 1].isalpha():
            begin -= 1
        if begin == p or (begin > 0 and folded[begin - 1].isalnum()):
            continue
        if folded[begin:p] in _ELIDED and nxt.isalpha():
            cuts.append((begin, p + 1))
        elif nxt == "s" and (p + 2 >= size or not folded[p + 2].isalnum()):
            cuts.append((p, p + 2))
    if not cuts:
        return folded
    pieces = []
    last = 0
    for a, b in cuts:
        pieces.append(folded[last:a])
        pieces.append(" " * (b - a))
        last = b
    pieces.append(folded[last:])
    return "".join(pieces)

# Arabic proclitics (docs/rules.md): optional conjunction و/ف, optional preposition ب/ك/ل,
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


def _sentence_breaks(folded: str) -> list[int]:
    """Offsets of sentence-ending characters, abbreviations and decimals excluded."""
    # Each end character looked for with str.find (a memchr-like scan) rather than one
    # regex over the text: the regex tested every character against its class.
    breaks = []
    for end in _SENTENCE_ENDS:
        pos = folded.find(end)
        while pos != -1:
            if end != "." or _ends_sentence(folded, pos):
                breaks.append(pos)
            pos = folded.find(end, pos + 1)
    breaks.sort()
    return breaks


def _ends_sentence(folded: str, pos: int) -> bool:
    """Whether the full stop at ``pos`` ends a sentence."""
    before = pos
    while before > 0 and folded[before - 1] not in " \t\n.-":
        before -= 1
    word = folded[before:pos].replace(_DROP, "")
    if len(word) == 1 and word.isalpha():
        return False  # initial or abbreviation letter: U.S., É.-U., M. Esper
    if word in _ABBREVIATIONS:
        return False
    nxt = folded[pos + 1 : pos + 2]
    if word.isdigit() and nxt.isdigit():
        return False  # 10.5
    # inside a token such as example.com or 3.14.2
    return not nxt or nxt in " \t\n\"')»”]"


def _key(word: str) -> str:
    return word if word.isascii() and _DROP not in word else _expand(word)


class Tokens:
    """The words of one text.

    ``keys`` (normalised words) and ``sentences`` (sentence number of each word, increasing)
    are computed at once, in C-level passes; character spans in the original ``text`` only
    when asked for, one sentence at a time, since most texts never produce evidence. Elided
    articles and possessive 's are not words, so they never count toward ``near``.
    """

    __slots__ = ("_breaks", "_firsts", "_folded", "_spans", "keys", "sentences", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        translated, codec = _translate(text)
        folded = self._folded = _blank_elisions(translated)
        breaks = self._breaks = _sentence_breaks(folded)
        found = _sentence_words(folded, breaks, codec)
        if breaks:
            self.keys: tuple[str, ...] = tuple(chain.from_iterable(found))
            self.sentences: tuple[int, ...] = tuple(
                chain.from_iterable(map(repeat, range(len(found)), map(len, found))))
        else:
            self.keys = tuple(found[0])
            self.sentences = (0,) * len(self.keys)
        self._firsts: list[int] | None = None
        self._spans: dict[int, list[tuple[int, int]]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def span(self, i: int) -> tuple[int, int]:
        """(start, end) of word ``i`` in the original text, end exclusive."""
        number = self.sentences[i]
        if self._firsts is None:
            self._firsts = [bisect_left(self.sentences, n) for n in range(len(self._breaks) + 1)]
        spans = self._spans.get(number)
        if spans is None:
            begin = self._breaks[number - 1] + 1 if number else 0
            end = self._breaks[number] if number < len(self._breaks) else len(self._folded)
            folded = self._folded
            if _needs_expansion(folded[begin:end]):
                spans = [m.span() for m in _WORD.finditer(folded, begin, end) if _key(m.group())]
            else:
                spans = [m.span() for m in _WORD.finditer(folded, begin, end)]
            self._spans[number] = spans
        return spans[i - self._firsts[number]]

    def surface(self, i: int) -> str:
        start, end = self.span(i)
        return self.text[start:end]

    def span_text(self, first: int, last: int) -> str:
        """Original text from word ``first`` to word ``last`` (inclusive)."""
        return self.text[self.span(first)[0] : self.span(last)[1]]


def _word_mask(codec: str) -> bytes:
    """A bytes table of a one-byte ``codec`` that keeps the word characters (and the
    placeholder) and turns every other character into a space."""
    out = []
    for byte in range(256):
        char = bytes([byte]).decode(codec, "replace")
        keep = char == _DROP or (char != "\ufffd" and _WORD_PLAIN.fullmatch(char) is not None)
        out.append(byte if keep else ord(" "))
    return bytes(out)


_WORD_MASKS = {codec: _word_mask(codec) for codec, _ in _CODE_PAGES}


def _sentence_words(folded: str, breaks: list[int], codec: str | None) -> list[list[str]]:
    """The words of each sentence of a translated text: one piece per sentence, read alone,
    so words and their sentence number come straight from the pieces. In a text written in
    a one-byte code page, the characters that are not word characters become spaces in C
    (a bytes table) and str.split finds the words, faster than the word regex."""
    bounds = list(pairwise((-1, *breaks, len(folded))))
    if codec is not None:
        masked = folded.encode(codec).translate(_WORD_MASKS[codec]).decode(codec)
    else:
        masked = folded
    pieces = [masked[a + 1 : b] for a, b in bounds]
    if _DROP in folded:  # removed characters join the letters around them
        pieces = [piece.replace(_DROP, "") for piece in pieces]
    if codec is not None:
        found = list(map(str.split, pieces))
    else:
        word = _WORD_FAST if "_" not in folded else _WORD_PLAIN
        found = list(map(word.findall, pieces))
    if folded.isascii():
        return found
    # the check as on the text without sentence ends and removed characters
    plain = pieces if codec is None else [folded[a + 1 : b] for a, b in bounds]
    if _needs_expansion("".join(plain).replace(_DROP, "")):
        # a word whose characters all expand to nothing is no word
        found = [list(filter(None, map(_expand, words))) for words in found]
    return found


def tokenize(text: str) -> Tokens:
    """Split ``text`` into normalised words with sentence numbers (spans on demand)."""
    return Tokens(text)


def cased(word: str) -> str:
    """A word with accents and invisible characters removed but its case kept, for short
    forms that only match in their exact case (US, not us; É.-U. and E.-U. alike)."""
    return "".join(
        c for c in unicodedata.normalize("NFD", unicodedata.normalize("NFKC", word))
        if unicodedata.category(c) not in ("Mn", "Cf") and c not in _IGNORABLE
    )


def normalize(text: str) -> str:
    """The normalised words of ``text`` joined by single spaces (for display and fuzzy
    comparison)."""
    return " ".join(tokenize(text).keys)
