"""Main-text extraction (monitor/extract.py) on pages built like real news sites around the
project's own French, English and Arabic texts: the body comes out whole, the chrome
(menus, cookie banner, ads, "read also" box, related and most-read lists, comments,
footer) does not, and failures are classified."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newswatch.core.errors import ExtractError, FetchErrorKind
from newswatch.monitor.extract import Extracted, decode_html, extract_article
from tests.fakes.news_pages import Page, Story, build_page
from tests.fakes.story_texts import (
    MILITARY_AR,
    MILITARY_EN,
    MILITARY_FR,
    RAIN_FR,
    RELATED_AR,
    RELATED_EN,
    RELATED_FR,
)

URL = "https://news.example/monde/article.html"
HTML = {"content-type": "text/html"}  # no charset: the page's meta tag says it
CASES = [(story, related, layout)
         for story, related in ((MILITARY_FR, RELATED_FR), (MILITARY_EN, RELATED_EN),
                                (MILITARY_AR, RELATED_AR), (RAIN_FR, RELATED_FR))
         for layout in (0, 1, 2)]


def chrome_leaked(page: Page, text: str) -> list[str]:
    """The page's chrome texts of two words or more that occur in ``text``."""
    return [c for c in page.chrome if len(c.split()) >= 2 and c in text]


@pytest.mark.parametrize(("story", "related", "layout"), CASES,
                         ids=[f"{s.language}-{s.title[:12]}-layout{n}" for s, _, n in CASES])
def test_the_body_comes_out_whole_and_nothing_of_the_chrome(
    story: Story, related: tuple[str, ...], layout: int
) -> None:
    page = build_page(story, related=related, layout=layout)
    found = extract_article(page.body, HTML, URL)
    for paragraph in story.paragraphs:
        assert paragraph in found.text
    assert chrome_leaked(page, found.text) == []
    assert found.language == story.language
    assert found.published == datetime(2020, 10, 2, tzinfo=UTC)


def test_a_legacy_encoding_declared_only_in_a_meta_tag_is_read() -> None:
    page = build_page(MILITARY_AR, related=RELATED_AR, layout=2)
    assert page.encoding == "windows-1256"
    assert b'charset=windows-1256"' in page.body
    with pytest.raises(UnicodeDecodeError):
        page.body.decode("utf-8")
    assert MILITARY_AR.paragraphs[0] in decode_html(page.body, {})
    # the HTTP header, when it names a charset, wins over the page (as in browsers)
    latin = "<html><head><meta charset='utf-8'></head><body>Cœur é</body></html>"
    assert "Cœur é" in decode_html(latin.encode("windows-1252"),
                                  {"content-type": "text/html; charset=windows-1252"})
    assert "Cœur" in decode_html(b"\xef\xbb\xbf" + "Cœur".encode(), {})


def test_a_page_that_is_not_html_is_not_an_article() -> None:
    page = build_page(MILITARY_FR, related=RELATED_FR)
    with pytest.raises(ExtractError) as error:
        extract_article(page.body, {"content-type": "application/pdf"}, URL)
    assert error.value.kind is FetchErrorKind.NOT_AN_ARTICLE


@pytest.mark.parametrize("layout", [0, 1, 2])
def test_a_video_page_is_not_an_article_and_its_link_lists_are_never_its_text(
    layout: int
) -> None:
    """A page with one caption and the usual chrome: the extraction library's fallbacks take
    menus and related lists (naming the seed rule's terms) as text; they must not come out."""
    short = Story("Vidéo", ("Regardez notre reportage en images.",), "fr",
                  "2020-10-02T10:00:00+00:00")
    page = build_page(short, related=RELATED_FR, layout=layout)
    with pytest.raises(ExtractError) as error:
        extract_article(page.body, HTML, URL)
    assert error.value.kind is FetchErrorKind.NOT_AN_ARTICLE
    assert "words of main text" in str(error.value)
    found = extract_article(page.body, HTML, URL, min_words=1)
    assert not any(title in found.text for title in RELATED_FR)
    assert "accord militaire" not in found.text.casefold()


def test_a_failing_library_is_an_extract_error_not_a_crash() -> None:
    def broken(html: str, *, url: str) -> Extracted | None:
        raise RecursionError("maximum recursion depth exceeded")

    page = build_page(MILITARY_FR, related=RELATED_FR)
    with pytest.raises(ExtractError) as error:
        extract_article(page.body, HTML, URL, extractor=broken)
    assert error.value.kind is FetchErrorKind.EXTRACT


def test_control_and_bidi_characters_never_reach_the_body() -> None:
    story = Story(MILITARY_FR.title,
                  ("Le Maroc\u202e et les États-Unis\x07 ont conclu\u200b un accord. ",
                   *MILITARY_FR.paragraphs[1:]), "fr", MILITARY_FR.published)
    found = extract_article(build_page(story, related=RELATED_FR).body, HTML, URL)
    assert "Le Maroc et les États-Unis ont conclu un accord." in found.text
    assert not any(c in found.text for c in "\u202e\x07\u200b")
