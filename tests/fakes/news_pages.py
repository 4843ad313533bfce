"""Article pages built like real news sites, around a story's paragraphs.

A real news page carries far more words of chrome than of article: a header and a menu of
sections, a cookie banner, ad slots, a "read also" box inside the article, a list of
related articles, a "most read" sidebar, share buttons, comments, a newsletter box and a
footer. Extraction (``newswatch.monitor.extract``) must return the paragraphs and nothing
else. ``build_page`` wraps a ``Story`` in one of three layouts seen on real sites:

* 0, "semantic": HTML5 ``header``/``nav``/``main``/``article``/``aside``/``footer``,
  JSON-LD ``NewsArticle`` with ``datePublished`` (large French and English dailies);
* 1, "div soup": only ``div``s with class names, the related list *inside* the story's
  container, the date in ``article:published_time`` (many regional and wire sites);
* 2, "legacy": a table layout whose encoding is declared only in a
  ``<meta http-equiv="Content-Type">`` (windows-1256 for Arabic, windows-1252 otherwise),
  date in the text only (older Maghreb and Middle-East sites).

Arabic pages are ``dir="rtl"``. ``Page.chrome`` lists every text of the page that is not
the story, so a test or benchmark can check that none of it was extracted. The bench uses
real articles (read from ../shared/data/articles, never copied here); tests use their own
short texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["CHROME", "COMMENTS", "Page", "Story", "build_page", "paragraphs_of"]


@dataclass(frozen=True)
class Story:
    """The article: ``published`` is ISO 8601 (``2020-10-02T10:00:00+00:00``)."""

    title: str
    paragraphs: tuple[str, ...]
    language: str
    published: str
    author: str = "Service international"


@dataclass(frozen=True)
class Page:
    """A built page: ``body`` in ``encoding`` (declared in the page only), the texts that are
    not the story (``chrome``), and the story itself."""

    body: bytes
    encoding: str
    chrome: tuple[str, ...]
    story: Story
    layout: int


# Site chrome per language: menus, banner, ads, boxes and footer, written for these pages.
CHROME: dict[str, dict[str, tuple[str, ...]]] = {
    "fr": {
        "menu": ("Accueil", "International", "Politique", "Économie", "Afrique", "Sport",
                 "Culture", "Idées", "Vidéos", "Se connecter", "S'abonner"),
        "cookies": ("Nous utilisons des cookies et des technologies similaires pour mesurer "
                    "l'audience et vous proposer des publicités personnalisées.",
                    "Tout accepter", "Paramétrer mes choix", "Continuer sans accepter"),
        "ads": ("Publicité", "Découvrez nos offres d'abonnement numérique à partir de 1 euro "
                "le premier mois", "Contenu sponsorisé par nos partenaires"),
        "read_also": ("Lire aussi",),
        "related": ("Sur le même sujet",),
        "most_read": ("Les plus lus",),
        "share": ("Partager sur Facebook", "Partager sur X", "Envoyer par courriel"),
        "comments": ("Réagissez à cet article", "Les commentaires sont réservés aux abonnés"),
        "newsletter": ("Recevez chaque matin notre lettre d'information avec l'essentiel de "
                       "l'actualité", "Je m'inscris"),
        "footer": ("Mentions légales", "Politique de confidentialité", "Gestion des cookies",
                   "Nous contacter", "Tous droits réservés. Reproduction interdite sans "
                   "autorisation de la rédaction."),
    },
    "en": {
        "menu": ("Home", "World", "Politics", "Business", "Africa", "Sport", "Culture",
                 "Opinion", "Video", "Sign in", "Subscribe"),
        "cookies": ("We use cookies and similar technologies to measure our audience and to "
                    "show you personalised advertising.", "Accept all", "Manage preferences",
                    "Reject all"),
        "ads": ("Advertisement", "Get unlimited digital access for just one dollar a week",
                "Sponsored content from our partners"),
        "read_also": ("Read more",),
        "related": ("Related stories",),
        "most_read": ("Most read",),
        "share": ("Share on Facebook", "Share on X", "Share by email"),
        "comments": ("Join the conversation", "Comments are open to subscribers only"),
        "newsletter": ("Get the morning briefing delivered to your inbox every day",
                       "Sign up"),
        "footer": ("Terms of use", "Privacy policy", "Cookie settings", "Contact us",
                   "All rights reserved. No part of this site may be reproduced without "
                   "permission."),
    },
    "ar": {
        "menu": ("الرئيسية", "دولي", "سياسة", "اقتصاد", "أفريقيا", "رياضة", "ثقافة", "رأي",
                 "فيديو", "تسجيل الدخول", "اشترك"),
        "cookies": ("نستخدم ملفات تعريف الارتباط وتقنيات مماثلة لقياس عدد الزوار وعرض "
                    "إعلانات مخصصة لك.", "قبول الكل", "إدارة التفضيلات", "رفض الكل"),
        "ads": ("إعلان", "اشترك الآن في النسخة الرقمية بسعر رمزي للشهر الأول",
                "محتوى برعاية شركائنا"),
        "read_also": ("اقرأ أيضا",),
        "related": ("أخبار ذات صلة",),
        "most_read": ("الأكثر قراءة",),
        "share": ("شارك على فيسبوك", "شارك على إكس", "أرسل بالبريد الإلكتروني"),
        "comments": ("أضف تعليقك", "التعليقات متاحة للمشتركين فقط"),
        "newsletter": ("احصل على النشرة الصباحية في بريدك الإلكتروني كل يوم", "سجل الآن"),
        "footer": ("شروط الاستخدام", "سياسة الخصوصية", "إعدادات ملفات الارتباط", "اتصل بنا",
                   "جميع الحقوق محفوظة. يمنع النسخ دون إذن من التحرير."),
    },
}

# Readers' comments, written for these pages (a page shows them under the story).
COMMENTS: dict[str, tuple[str, ...]] = {
    "fr": ("Encore une fois on nous raconte la même histoire depuis des années.",
           "Article très intéressant, merci pour ce travail de fond.",
           "Et pendant ce temps-là, personne ne parle des vrais problèmes du pays.",
           "Je ne suis pas d'accord avec l'analyse du dernier paragraphe."),
    "en": ("Same story every year and nothing ever changes for ordinary people.",
           "Great piece, thank you for the careful reporting on this.",
           "Meanwhile nobody is talking about the real problems at home.",
           "I disagree with the conclusion drawn in the final paragraph."),
    "ar": ("نفس القصة كل عام ولا شيء يتغير بالنسبة للناس العاديين.",
           "مقال رائع، شكرا على هذا العمل الصحفي الدقيق.",
           "وفي الأثناء لا أحد يتحدث عن المشاكل الحقيقية في البلاد.",
           "لا أتفق مع الخلاصة الواردة في الفقرة الأخيرة."),
}

_LEGACY = {"ar": "windows-1256", "fr": "windows-1252", "en": "windows-1252"}


def paragraphs_of(text: str, per_paragraph: int = 3) -> tuple[str, ...]:
    """A long text cut into paragraphs of ``per_paragraph`` sentences (for bodies that come
    as one block, like the benchmark's articles)."""
    sentences: list[str] = []
    current = ""
    for word in text.split():
        current = f"{current} {word}" if current else word
        if word.endswith((".", "!", "?", "؟")) and len(current) > 40:
            sentences.append(current)
            current = ""
    if current:
        sentences.append(current)
    return tuple(" ".join(sentences[i:i + per_paragraph])
                 for i in range(0, len(sentences), per_paragraph))


def _e(text: str) -> str:
    return escape(text, quote=True)


def _links(items: Sequence[str], *, slug: str = "article") -> str:
    return "".join(f'<li><a href="/{slug}/{n}.html">{_e(t)}</a></li>'
                   for n, t in enumerate(items))


def _body_with_box(story: Story, box: str) -> list[str]:
    """The story's paragraphs with ``box`` (a "read also" element) after the second."""
    out = [f"<p>{_e(p)}</p>" for p in story.paragraphs]
    out.insert(min(2, len(out)), box)
    return out


def _semantic(story: Story, chrome: dict[str, tuple[str, ...]], related: Sequence[str],
              comments: Sequence[str]) -> str:
    box = (f'<aside class="read-also"><span>{_e(chrome["read_also"][0])}</span> '
           f'<a href="/article/r.html">{_e(related[0])}</a></aside>')
    cookie = chrome["cookies"]
    return f"""
<header class="site-header"><a class="logo" href="/">Le Quotidien</a>
<nav class="main-nav"><ul>{_links(chrome["menu"], slug="rubrique")}</ul></nav>
<form class="search"><input name="q" placeholder="Rechercher"></form></header>
<div id="cookie-banner" class="consent"><p>{_e(cookie[0])}</p>
<button>{_e(cookie[1])}</button><button>{_e(cookie[2])}</button>
<a href="#">{_e(cookie[3])}</a></div>
<div class="ad ad-top">{_e(chrome["ads"][0])}</div>
<main><article class="article">
<h1 class="article__title">{_e(story.title)}</h1>
<p class="article__byline">{_e(story.author)} — <time datetime="{story.published}">
{story.published[:10]}</time></p>
<div class="article__content">{"".join(_body_with_box(story, box))}</div>
<ul class="share">{_links(chrome["share"], slug="share")}</ul>
</article>
<section class="related"><h2>{_e(chrome["related"][0])}</h2>
<ul>{_links(related[1:])}</ul></section>
<section id="comments"><h2>{_e(chrome["comments"][0])}</h2>
<p>{_e(chrome["comments"][1])}</p>
{"".join(f'<div class="comment"><span class="author">lecteur{n}</span><p>{_e(c)}</p></div>'
         for n, c in enumerate(comments))}</section></main>
<aside class="sidebar"><h2>{_e(chrome["most_read"][0])}</h2>
<ol>{_links(related[::-1], slug="populaire")}</ol>
<div class="ad ad-side"><p>{_e(chrome["ads"][1])}</p><p>{_e(chrome["ads"][2])}</p></div>
<div class="newsletter"><p>{_e(chrome["newsletter"][0])}</p>
<button>{_e(chrome["newsletter"][1])}</button></div></aside>
<footer class="site-footer"><ul>{_links(chrome["footer"][:4], slug="info")}</ul>
<p>{_e(chrome["footer"][4])}</p></footer>"""


def _div_soup(story: Story, chrome: dict[str, tuple[str, ...]], related: Sequence[str],
              comments: Sequence[str]) -> str:
    box = (f'<div class="inline-related"><h4>{_e(chrome["read_also"][0])}</h4>'
           f"<ul>{_links(related[:2])}</ul></div>")
    cookie = chrome["cookies"]
    return f"""
<div id="wrapper"><div class="cookie-notice"><span>{_e(cookie[0])}</span>
<a class="btn" href="#">{_e(cookie[1])}</a><a class="btn" href="#">{_e(cookie[3])}</a></div>
<div class="top-bar"><div class="menu">{"".join(
    f'<a href="/s/{n}">{_e(m)}</a> ' for n, m in enumerate(chrome["menu"]))}</div></div>
<div class="container"><div class="row"><div class="col-8 main-col">
<div class="breadcrumb"><a href="/">{_e(chrome["menu"][0])}</a> &gt;
<a href="/s/1">{_e(chrome["menu"][1])}</a></div>
<h1 class="headline">{_e(story.title)}</h1>
<div class="meta">{_e(story.author)} | {story.published[:10]}</div>
<div class="story-body">{"".join(_body_with_box(story, box))}
<div class="related-box"><h3>{_e(chrome["related"][0])}</h3><ul>{_links(related[2:])}</ul>
</div></div>
<div class="share-bar">{"".join(f'<a href="#">{_e(s)}</a>' for s in chrome["share"])}</div>
<div class="comments-area"><h3>{_e(chrome["comments"][0])}</h3>
<div class="notice">{_e(chrome["comments"][1])}</div>
{"".join(f'<div class="comment-item"><b>user{n}</b><div class="comment-text">{_e(c)}</div>'
         '</div>' for n, c in enumerate(comments))}</div></div>
<div class="col-4 side-col"><div class="widget"><h3>{_e(chrome["most_read"][0])}</h3>
<ul>{_links(related[::-1], slug="top")}</ul></div>
<div class="advert"><span>{_e(chrome["ads"][0])}</span><p>{_e(chrome["ads"][1])}</p>
<p>{_e(chrome["ads"][2])}</p></div>
<div class="widget newsletter"><p>{_e(chrome["newsletter"][0])}</p>
<a href="#">{_e(chrome["newsletter"][1])}</a></div></div></div></div>
<div class="footer">{" · ".join(_e(f) for f in chrome["footer"][:4])}
<div class="copy">{_e(chrome["footer"][4])}</div></div></div>"""


def _legacy(story: Story, chrome: dict[str, tuple[str, ...]], related: Sequence[str],
            comments: Sequence[str]) -> str:
    menu = "".join(f'<td><a href="/cat{n}.asp">{_e(m)}</a></td>'
                   for n, m in enumerate(chrome["menu"]))
    box = (f'<div class="readalso"><b>{_e(chrome["read_also"][0])}:</b> '
           f'<a href="/news.asp?id=1">{_e(related[0])}</a></div>')
    return f"""
<table width="100%" class="top"><tr><td class="logo">Al Akhbar</td>{menu}</tr></table>
<div class="cookies">{_e(chrome["cookies"][0])} <a href="#">{_e(chrome["cookies"][1])}</a>
</div>
<table width="100%"><tr><td width="70%" valign="top" class="content">
<div class="news-title">{_e(story.title)}</div>
<div class="news-date">{_e(story.author)} - {story.published[:10]}</div>
<div class="news-text">{"".join(_body_with_box(story, box))}</div>
<div class="share">{" | ".join(_e(s) for s in chrome["share"])}</div>
<div class="related-news"><div class="head">{_e(chrome["related"][0])}</div>
<ul>{_links(related[1:], slug="news")}</ul></div>
<div class="comments"><div class="head">{_e(chrome["comments"][0])}</div>
{"".join(f'<div class="comment">{_e(c)}</div>' for c in comments)}
<div>{_e(chrome["comments"][1])}</div></div></td>
<td width="30%" valign="top" class="side"><div class="head">{_e(chrome["most_read"][0])}</div>
<ul>{_links(related[::-1], slug="top")}</ul><div class="banner">{_e(chrome["ads"][0])}<br>
{_e(chrome["ads"][1])}<br>{_e(chrome["ads"][2])}</div>
<div class="nl">{_e(chrome["newsletter"][0])} <a href="#">{_e(chrome["newsletter"][1])}</a>
</div></td></tr></table>
<table width="100%" class="footer"><tr><td>{" | ".join(_e(f) for f in chrome["footer"])}
</td></tr></table>"""


_LAYOUTS = (_semantic, _div_soup, _legacy)


def _head(story: Story, layout: int, encoding: str) -> str:
    charset = (f'<meta http-equiv="Content-Type" content="text/html; charset={encoding}">'
               if layout == 2 else f'<meta charset="{encoding}">')
    description = _e(story.paragraphs[0][:150]) if story.paragraphs else ""
    extra = ""
    if layout == 0:
        extra = ('<script type="application/ld+json">{"@context": "https://schema.org", '
                 '"@type": "NewsArticle", "datePublished": "' + story.published + '"}</script>')
    elif layout == 1:
        extra = f'<meta property="article:published_time" content="{story.published}">'
    return (f"<head>{charset}<title>{_e(story.title)} - Le Quotidien</title>"
            f'<meta name="description" content="{description}">'
            f'<meta property="og:title" content="{_e(story.title)}">{extra}'
            '<script>window.dataLayer=[];function track(){return "analytics";}</script>'
            "<style>.ad{min-height:250px}</style></head>")


def build_page(story: Story, *, related: Sequence[str], comments: Sequence[str] | None = None,
               layout: int = 0) -> Page:
    """The page of ``story`` in ``layout`` (0, 1 or 2), with ``related`` article titles (at
    least 3: the "read also" box, the related list and the "most read" list use them) and
    readers' ``comments`` (default: ``COMMENTS`` of the story's language)."""
    if len(related) < 3:
        raise ValueError("build_page needs at least 3 related titles")
    chrome = CHROME[story.language]
    shown_comments = tuple(COMMENTS[story.language] if comments is None else comments)
    encoding = _LEGACY[story.language] if layout == 2 else "utf-8"
    direction = ' dir="rtl"' if story.language == "ar" else ""
    text = (f'<!DOCTYPE html>\n<html lang="{story.language}"{direction}>'
            f"{_head(story, layout, encoding)}<body>"
            f"{_LAYOUTS[layout](story, chrome, related, shown_comments)}</body></html>")
    texts = (*(t for group in chrome.values() for t in group), *related, *shown_comments)
    return Page(body=text.encode(encoding, "xmlcharrefreplace"), encoding=encoding,
                chrome=tuple(dict.fromkeys(texts)), story=story, layout=layout)
