"""Distinct story titles for load and ordering tests: no two of them are one story for
title similarity (rapidfuzz ``token_set_ratio`` stays far below 85)."""

from __future__ import annotations

import hashlib

_CONSONANTS = "bcdfghjklmnpqrstvwxz"
_VOWELS = "aeiou"


def _word(seed: bytes) -> str:
    return "".join(
        (_CONSONANTS[b % 20] if i % 2 == 0 else _VOWELS[b % 5]) for i, b in enumerate(seed[:7])
    )


def distinct_title(n: int, prefix: str = "") -> str:
    """Five pronounceable pseudo-words derived from ``n`` (stable across runs)."""
    digest = hashlib.sha256(f"story-{n}".encode()).digest()
    words = [_word(digest[i * 6: i * 6 + 7]) for i in range(5)]
    return " ".join([prefix, *words] if prefix else words)
