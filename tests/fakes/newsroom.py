"""Invented news for the backtest acceptance test (tests/test_backtest_real.py, issue 17).

Texts of our own, 100 short articles (a title, 2 to 4 sentences) in each of French, English
and Arabic, composed from the templates below: the real articles of ../shared/data/articles
may be read by benchmarks but not copied into the repository (their notes on sources), and the
suite runs on clones without them. Morocco (or "royaume chérifien"), Tunisia, Algeria, Libya;
US and Saudi defence deals, some with a Maghreb partner; officials on visits, in each script
and some misspelt (Barak Obama, Vladimir Poutin, Joe Bidden, عبد الفتاح السيسي); football,
which the desk rule excludes; weather, markets and culture elsewhere. Same seed, same
articles; a draw whose title or lead comes near an earlier article's (:func:`one_story` at
80 % and 0.75; the decide stage joins at 85 % and 0.8) is drawn again, so that distinct
stories stay distinct. ``NEWSWATCH_REAL_ARTICLES=DIR``: :func:`articles` gives the real
articles of DIR instead, selected there by tests/data/real_articles.py (which only reads).
"""

from __future__ import annotations

import os
import random
import re
from functools import cache
from pathlib import Path

from rapidfuzz import fuzz

from newswatch.core.article import Article
from newswatch.rules.text import normalize
from newswatch.streams import decide
from tests.data.real_articles import select

REAL = "NEWSWATCH_REAL_ARTICLES"
SEED = 17
MARGIN = (80.0, 0.75)  # the title and lead similarity a new story stays below
Pools = dict[str, list[str]]  # slot → its choices


def pools(text: str) -> Pools:
    """``slot: choice | choice ...`` entries, several to a line or one over indented lines;
    a ``{slot}`` in a choice is filled in turn, from the story's country's (city_MA) first."""
    parts = re.split(r"(?:^|\s)(\w+): ", " ".join(text.split()))
    return {k: v.strip().split(" | ") for k, v in zip(parts[1::2], parts[2::2], strict=True)}


# t_KIND: the titles of a kind of story; o: first sentences; s_KIND: the kind's next ones
FR = pools("""
MA: Maroc | Maroc | Royaume chérifien   TN: Tunisie   DZ: Algérie   LY: Libye   US: États-Unis
SA: Arabie saoudite   city_MA: Tanger | Fès | Agadir   city_TN: Sfax | Sousse | Gabès
city_DZ: Oran | Annaba | Tlemcen   city_LY: Benghazi | Misrata
city_US: Norfolk | San Diego | Tampa   city_SA: Djeddah | Dammam | Tabouk
actor_US: le Pentagone | le Congrès | la marine | l'armée de l'air | le département d'État
actor_SA: Riyad | la garde nationale | le ministère de la Défense | le prince héritier
day: lundi | mardi | mercredi | jeudi | vendredi | samedi | dimanche
o: Selon nos informations, {headline}. | {headline}, a-t-on appris {day}.
t_civic: {country} : {actor} {action} {object}   t_mil: {country} : {actor} {mil_verb} {mil_object}
t_off: {official} {visit} {place} {purpose}   t_fb: {country} : {club} {result} {club2} {fb_tail}
t_noise: {place_noise} : {noise_object} {noise_tail}
actor: le gouvernement | la banque centrale | le parlement | le syndicat des enseignants | l'office
    des ports | la mairie de {city}
action: annonce | lance | suspend | relance | conteste | reporte | présente
object: un plan d'irrigation | la réforme des retraites | une ligne ferroviaire vers {city} | une
    usine de dessalement | la hausse du prix du pain | un fonds pour les jeunes diplômés | une
    centrale solaire près de {city} | la rénovation de la médina
s_civic: Le coût est estimé à {n} millions. | L'opposition réclame un calendrier plus précis. |
    Selon un économiste, l'effet sur l'emploi restera modeste avant {year}. | Plus de {n} 000
    familles seraient concernées. | Une centaine de manifestants se sont réunis {day} à {city}.
mil_verb: annonce | approuve | suspend | critique | relance | finance | examine
partner_US: la Tunisie | le Maroc | la Pologne | le Japon | l'Arabie saoudite
partner_SA: la France | le Pakistan | l'Égypte | les États-Unis | l'Algérie
mil_object: un accord de défense avec {partner} | des manœuvres militaires avec {partner} | des
    drones pour {partner} | des blindés pour l'armée | la rénovation des bases aériennes | un
    budget militaire record | la formation d'officiers avec {partner} | un radar côtier près de
    {city} | deux frégates | un bouclier antimissile | un centre de cyberdéfense
s_mil: Des responsables militaires à {city} ont confirmé le projet {day}. | Le ministère de la
    Défense a donné son feu vert {day}. | Le montant avoisinerait {n} millions de dollars. |
    L'exercice se fera avec {partner}, selon l'état-major.
official: Vladimir Poutine | Vladimir Poutin | Barack Obama | Barak Obama | Joe Biden | Joe Bidden
    | Abdel Fattah al-Sissi | Abdel Fattah al-Sisi | Emmanuel Macron | Abdelmadjid Tebboune
visit: en visite | attendu | reçu | en tournée
place: au Maroc | en Algérie | en Tunisie | en Arabie saoudite | au Japon | en Libye
purpose: pour parler de gaz | pour un sommet sur le climat | pour la sécurité régionale | pour
    évoquer les migrations | face à la crise de l'eau
s_off: {official} doit rencontrer des chefs d'entreprise {day}. | Une garde d'honneur militaire l'a
    accueilli à l'aéroport. | Les discussions porteront aussi sur {n} projets communs.
club_MA: le Wydad | le Raja | l'AS FAR   club_TN: l'Espérance | l'Étoile du Sahel | le CS Sfaxien
club_DZ: le MC Alger | le CR Belouizdad | l'ES Sétif
result: bat | accroche | domine | fait match nul avec
fb_tail: dans le derby | après prolongation | devant {n} 000 spectateurs | en coupe
s_fb: La fédération de football a salué l'ambiance à {city}. | Ce match de football s'est joué à
    guichets fermés.
place_noise: France | Japon | Brésil | Canada | Inde | Norvège
noise_object: la vague de chaleur | une pluie diluvienne | la Bourse | le prix du cuivre | un
    festival de cinéma | la récolte de café
noise_tail: cette semaine | après {n} ans | en chiffres | attire les foules | bat des records
s_noise: Les prévisionnistes annoncent {n} jours de plus. | L'indice principal a gagné {n} % {day}.
    | Les hôtels affichaient complet {day}.
""")
EN = pools("""
MA: Morocco   TN: Tunisia   DZ: Algeria   LY: Libya   US: United States | US   SA: Saudi Arabia
city_MA: Tangier | Fez | Agadir   city_TN: Sfax | Sousse | Gabes   city_DZ: Oran | Annaba | Tlemcen
city_LY: Benghazi | Misrata   city_US: Norfolk | San Diego | Tampa
city_SA: Jeddah | Dammam | Tabuk
actor_US: Pentagon | Congress | navy | air force | State Department
actor_SA: Riyadh | national guard | defence ministry | crown prince
day: on Monday | on Tuesday | on Wednesday | on Thursday | on Friday | on Saturday | on Sunday
o: {headline}, officials said {day}. | Word came {day}: {headline}.
t_civic: {country}: {actor} {action} {object}   t_mil: {country}: {actor} {mil_verb} {mil_object}
t_off: {official} {visit} {place} {purpose}   t_fb: {country}: {club} {result} {club2} {fb_tail}
t_noise: {place_noise}: {noise_object} {noise_tail}
actor: government | central bank | parliament | teachers' union | port authority | {city} city
    council
action: unveils | launches | suspends | revives | challenges | postpones | backs
object: irrigation plan | pension reform | rail line to {city} | desalination plant | bread price
    rise | fund for young graduates | solar plant near {city} | old town restoration
s_civic: The cost is put at {n} million. | The opposition wants a clearer timetable. | An economist
    expects a modest effect on jobs before {year}. | Some {n},000 families could be affected. |
    About a hundred protesters gathered {day} in {city}.
mil_verb: announces | approves | suspends | criticises | revives | funds | reviews
partner_US: Tunisia | Morocco | Poland | Japan | Saudi Arabia
partner_SA: France | Pakistan | Egypt | the United States | Algeria
mil_object: defence pact with {partner} | joint military drills with {partner} | drones for
    {partner} | armoured vehicles for the army | air base upgrade | record military budget |
    training for officers from {partner} | coastal radar near {city} | two frigates | missile
    shield | cyber defence centre
s_mil: Military officials in {city} confirmed the plan {day}. | The defence ministry gave its
    approval {day}. | Its value is put at about {n} million dollars. | Troops from {partner} will
    take part in the exercises.
official: Vladimir Putin | Vladimir Poutin | Barack Obama | Barak Obama | Joe Biden | Joe Bidden |
    Abdel Fattah al-Sisi | Abdel Fatah el-Sisi | Emmanuel Macron | Abdelmadjid Tebboune
visit: visits | heads to | lands in | is expected in
place: Morocco | Algeria | Tunisia | Saudi Arabia | Japan | Libya
purpose: for gas talks | for a climate summit | to discuss regional security | to discuss migration
    | over the water crisis
s_off: {official} is to meet business leaders {day}. | A military honour guard met the plane. | The
    talks will also cover {n} joint projects.
club_MA: Wydad | Raja | AS FAR   club_TN: Esperance | Etoile du Sahel | CS Sfaxien
club_DZ: MC Alger | CR Belouizdad | ES Setif   result: beat | held by | edge past | draw with
fb_tail: in the derby | after extra time | in front of {n},000 fans | in the cup
s_fb: The football federation praised the atmosphere in {city}. | The football match was a
    sell-out.
place_noise: France | Japan | Brazil | Canada | India | Norway
noise_object: heatwave | heavy rain | stock market | copper price | film festival | coffee harvest
noise_tail: this week | after {n} years | in numbers | draws crowds | breaks records
s_noise: Forecasters expect {n} more days of it. | The main index rose {n} per cent {day}. | Hotels
    were full {day}.
""")
AR = pools("""
MA: المغرب   TN: تونس   DZ: الجزائر   LY: ليبيا   US: الولايات المتحدة
SA: السعودية | المملكة العربية السعودية   city_MA: طنجة | فاس | أكادير
city_TN: صفاقس | سوسة | قابس   city_DZ: وهران | عنابة | تلمسان   city_LY: بنغازي | مصراتة
city_US: نورفولك | سان دييغو | تامبا   city_SA: جدة | الدمام | تبوك
day: يوم الاثنين | يوم الثلاثاء | يوم الأربعاء | يوم الخميس | يوم الجمعة | يوم السبت | يوم الأحد
o: {headline}، بحسب مصادر متطابقة {day}. | {headline}، وفق ما علم {day}.
t_civic: {country}: {action} {object} {tail}
t_mil: {country}: {mil_verb} {mil_object} {mil_status}
t_off: {official} {visit} {place} {purpose}   t_fb: {country}: {club} {result} {club2} {fb_tail}
t_noise: {place_noise}: {noise_object} {noise_tail}
action: إطلاق | تعليق | استئناف | تأجيل | تسريع | مراجعة | تمويل
object: خطة للري | إصلاح نظام التقاعد | خط سكة حديد نحو {city} | محطة لتحلية المياه | دعم أسعار
    الخبز | صندوق لدعم الخريجين | محطة للطاقة الشمسية قرب {city} | ترميم المدينة العتيقة
tail: بقرار من {actor} | بعد ضغط {actor} | وسط انتقادات المعارضة | قبل الصيف | خلال {year} | بكلفة
    {n} مليونا
actor: الحكومة | البنك المركزي | البرلمان | نقابة المعلمين | هيئة الموانئ | بلدية {city}
s_civic: وتقدر الكلفة بنحو {n} مليون. | وتطالب المعارضة بجدول زمني أوضح. | ويرى خبير اقتصادي أن
    الأثر على التشغيل سيبقى محدودا قبل {year}. | ويشمل القرار أكثر من {n} ألف أسرة. | وتجمع نحو مئة
    محتج {day} في {city}.
mil_verb: توقيع | التفاوض على | إقرار | تعليق | انتقاد | الإعلان عن | تمويل
partner_US: تونس | المغرب | بولندا | اليابان | السعودية
partner_SA: فرنسا | باكستان | مصر | الولايات المتحدة | الجزائر
mil_object: اتفاق للتعاون العسكري مع {partner} | مناورات عسكرية مع {partner} | طائرات مسيرة لصالح
    {partner} | مدرعات لصالح الجيش | تحديث القواعد الجوية | ميزانية قياسية للدفاع | تدريب ضباط من
    {partner} | رادار ساحلي قرب {city} | فرقاطتين | درع صاروخية | مركز للدفاع السيبراني
mil_status: في {city} | قيد النقاش | بموافقة البرلمان | رغم انتقادات المعارضة | {day} | بقيمة {n}
    مليون دولار
s_mil: أكد مسؤولون عسكريون في {city} الخطة {day}. | قال متحدث باسم وزارة الدفاع إن الموافقة صدرت
    {day}. | وتقدر قيمة الصفقة بنحو {n} مليون دولار. | ويشارك جنود من {partner} في التدريبات.
official: فلاديمير بوتين | فلاديمير بوتن | باراك أوباما | باراك اوباما | جو بايدن | عبدالفتاح
    السيسي | عبد الفتاح السيسي | إيمانويل ماكرون | عبد المجيد تبون
visit: في زيارة إلى | يصل إلى | ضيفا على | في جولة تشمل
place: المغرب | الجزائر | تونس | السعودية | اليابان | ليبيا
purpose: لبحث ملف الغاز | لقمة حول المناخ | لبحث الأمن الإقليمي | لمناقشة الهجرة | في ظل أزمة
    المياه
s_off: ومن المقرر أن يلتقي {official} رجال أعمال {day}. | واستقبله حرس شرف عسكري في المطار. | وتشمل
    المحادثات أيضا مشاريع بقيمة {n} مليون دولار.
club_MA: الوداد | الرجاء | الجيش الملكي   club_TN: الترجي | النجم الساحلي | النادي الصفاقسي
club_DZ: مولودية الجزائر | شباب بلوزداد | وفاق سطيف
result: يفوز على | يتعادل مع | يتغلب على | يخسر أمام
fb_tail: في الديربي | بعد الأشواط الإضافية | أمام {n} ألف متفرج | في الكأس
s_fb: وأشاد اتحاد كرة القدم بأجواء الملعب في {city}. | ونفدت تذاكر مباراة كرة القدم في ساعات.
place_noise: فرنسا | اليابان | البرازيل | كندا | الهند | النرويج
noise_object: موجة حر | أمطار غزيرة | البورصة | أسعار النحاس | مهرجان سينمائي | محصول البن
noise_tail: هذا الأسبوع | بعد {n} عاما | بالأرقام | وسط إقبال كبير | وأرقام قياسية
s_noise: وتتوقع الأرصاد استمرار الوضع حتى {day}. | وارتفع المؤشر الرئيسي بنسبة {n} في المئة {day}.
    | وكانت الفنادق ممتلئة {day}.
""")

# kind of story, its country ("" for none), stories of it per language
PLAN: tuple[tuple[str, str, int], ...] = (
    ("civic", "MA", 12), ("civic", "TN", 10), ("civic", "DZ", 9), ("civic", "LY", 4),
    ("mil", "US", 13), ("mil", "SA", 12), ("off", "", 10), ("fb", "MA", 3), ("fb", "TN", 3),
    ("fb", "DZ", 3), ("noise", "", 21))
LANGUAGES: dict[str, Pools] = {"fr": FR, "en": EN, "ar": AR}


def fill(rng: random.Random, pools: Pools, code: str, text: str, chosen: dict[str, str]) -> str:
    """``text`` with its slots filled, ``{n}``, ``{year}``, ``{day}`` anew, others once."""
    def slot(found: re.Match[str]) -> str:
        name = found.group(1)
        if name in ("n", "year"):
            return str(rng.randint(2, 95) if name == "n" else rng.randint(2027, 2031))
        if name not in chosen:
            key = code if name == "country" else next(
                k for k in (f"{name}_{code}", name) if k in pools)
            value = fill(rng, pools, code, rng.choice(pools[key]), chosen)
            if name == "day":
                return value
            chosen[name] = value
        return chosen[name]

    return re.sub(r"\{(\w+)\}", slot, text)


def compose(rng: random.Random, pools: Pools, kind: str, code: str) -> tuple[str, str]:
    """A title, and a summary whose first sentence restates it."""
    chosen: dict[str, str] = {}
    if kind == "fb":
        chosen["club"], chosen["club2"] = rng.sample(pools[f"club_{code}"], 2)
    title = fill(rng, pools, code, rng.choice(pools[f"t_{kind}"]), chosen)
    chosen["headline"] = title.split(": ", 1)[-1]
    more = pools[f"s_{kind}"]
    sentences = [rng.choice(pools["o"]), *rng.sample(more, rng.randint(1, min(3, len(more))))]
    filled = (fill(rng, pools, code, s, chosen) for s in sentences)
    return title, " ".join(s[:1].upper() + s[1:] for s in filled)


@cache
def _lead(text: str) -> int | None:
    """The SimHash of a lead, taken as decide.lead_words takes it."""
    return decide.simhash(normalize(text[: decide.LEAD_WORDS * 20]).split()[:decide.LEAD_WORDS])


def one_story(a: Article, b: Article, title: float = decide.STORY_SIMILARITY,
              lead: float = decide.LEAD_SIMILARITY) -> bool:
    """Whether decide.identify could take ``a`` and ``b`` for one story: titles ``title`` %
    alike (token_set_ratio), or leads ``lead`` alike (SimHash of word 3-shingles)."""
    ta, tb = normalize(a.title), normalize(b.title)
    if (max(len(ta.split()), len(tb.split())) >= decide.MIN_TITLE_WORDS
            and fuzz.token_set_ratio(ta, tb) >= title):
        return True
    la, lb = (_lead(x.summary if x.summary.strip() else x.content) for x in (a, b))
    return la is not None and lb is not None and decide.lead_similarity(la, lb) >= lead


@cache
def invented() -> tuple[Article, ...]:
    """The invented articles, ids fr-000 to ar-299."""
    rng = random.Random(SEED)
    out: list[Article] = []
    for language, pools in LANGUAGES.items():
        for kind, code, count in PLAN:
            for _ in range(count):
                n, feed = len(out), f"{language}-{('daily', 'radio', 'weekly')[len(out) % 3]}"
                for _ in range(100):
                    title, summary = compose(rng, pools, kind, code)
                    article = Article(f"{language}-{n:03d}", feed, title, summary=summary,
                                      url=f"https://{feed}.example/{n:03d}", language=language)
                    if not any(one_story(article, other, *MARGIN) for other in out):
                        break
                else:
                    raise AssertionError(f"no distinct {kind} story in 100 draws")
                out.append(article)
    return tuple(out)


def articles() -> list[Article]:
    """The invented articles, or the real ones selected from the folder that
    ``NEWSWATCH_REAL_ARTICLES`` names."""
    folder = os.environ.get(REAL)
    return select(Path(folder)) if folder else list(invented())
