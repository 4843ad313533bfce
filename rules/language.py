"""The language of an article's text, when neither the feed nor the page says it."""

from __future__ import annotations

from newswatch.core.article import Article


def detect_language(article: Article) -> str | None:
    """Two-letter language of the article's text (py3langid, offline), None when empty."""
    text = " ".join(t for t in (article.title, article.summary, article.content[:2000],
                                article.body[:2000]) if t)
    if not text.strip():
        return None
    return _classify(text)


def _classify(text: str) -> str:
    # lazy: importing py3langid costs ~110 ms (python -X importtime) and its model ~0.5 s
    # on first use; commands that never detect a language (rules check, status) skip both
    import py3langid

    language, _ = py3langid.classify(text)
    return str(language)
