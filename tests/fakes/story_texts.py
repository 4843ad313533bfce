"""Short news stories written for the full-text tests (French, English, Arabic), and the
titles of related articles a page lists around them.

The real articles of ../shared/data/articles may not be copied into the repository: these
are the project's own texts. ``MILITARY_FR`` satisfies the seed rule (tests/test_end_to_end.py:
the United States and Morocco, "accord militaire", Mark Esper) in its body only: its title
names none of the rule's terms. ``RELATED_FR`` are titles that do name them, for the pages'
"read also" box and related lists: a page must never match through them.
"""

from __future__ import annotations

from tests.fakes.news_pages import Story

PUBLISHED = "2020-10-02T10:00:00+00:00"

MILITARY_FR = Story(
    title="Rabat et Washington resserrent leurs liens",
    paragraphs=(
        "Le Maroc et les États-Unis ont conclu jeudi un accord militaire d'une durée de dix "
        "ans, au terme d'une visite de deux jours du chef du Pentagone dans le royaume.",
        "Le secrétaire américain à la Défense, Mark Esper, a rencontré à Rabat le ministre "
        "délégué chargé de la défense nationale. Les deux hommes ont évoqué la formation des "
        "officiers, l'échange de renseignements et la surveillance des frontières.",
        "Selon un communiqué des forces armées royales, le texte prévoit aussi des exercices "
        "conjoints chaque année et l'achat de matériel de transport aérien.",
        "Aucun montant n'a été rendu public. Le Parlement devrait examiner le texte lors de sa "
        "prochaine session, a précisé une source gouvernementale.",
    ),
    language="fr",
    published=PUBLISHED,
)

MILITARY_EN = Story(
    title="Rabat and Washington tighten their ties",
    paragraphs=(
        "Morocco and the United States signed a ten-year military agreement on Thursday at "
        "the end of a two-day visit by the Pentagon chief to the kingdom.",
        "Defense Secretary Mark Esper met the minister in charge of national defence in "
        "Rabat. The two men discussed officer training, intelligence sharing and border "
        "surveillance.",
        "According to a statement from the Royal Armed Forces, the text also provides for "
        "yearly joint exercises and the purchase of air transport equipment.",
        "No amount was made public. Parliament is expected to examine the text at its next "
        "session, a government source said.",
    ),
    language="en",
    published=PUBLISHED,
)

MILITARY_AR = Story(
    title="الرباط وواشنطن تعززان شراكتهما",
    paragraphs=(
        "وقع المغرب والولايات المتحدة يوم الخميس اتفاق تعاون عسكري لمدة عشر سنوات في ختام "
        "زيارة وزير الدفاع الأمريكي إلى الرباط استمرت يومين.",
        "وقال مسؤولون إن الاتفاق يشمل تدريب الضباط وتبادل المعلومات الاستخباراتية ومراقبة "
        "الحدود في منطقة الساحل.",
        "وأوضح بيان للقوات المسلحة الملكية أن البلدين سيجريان مناورات مشتركة كل عام، وأن "
        "المملكة ستقتني طائرات نقل عسكرية جديدة.",
        "ولم يكشف الطرفان عن قيمة الصفقة، ومن المنتظر أن يعرض النص على البرلمان في دورته "
        "المقبلة حسب مصدر حكومي.",
    ),
    language="ar",
    published=PUBLISHED,
)

# A story the seed rule has nothing to do with, on a page whose lists name the rule's terms.
RAIN_FR = Story(
    title="Les pluies reviennent dans le Souss",
    paragraphs=(
        "Après trois années de sécheresse, les agriculteurs de la plaine du Souss ont "
        "accueilli avec soulagement les premières pluies de l'automne, tombées dans la nuit "
        "de mardi à mercredi.",
        "Les barrages de la région restent pourtant remplis à moins d'un quart de leur "
        "capacité, selon les services de l'équipement, qui appellent à économiser l'eau "
        "d'irrigation.",
        "Les coopératives d'agrumes espèrent sauver une partie de la récolte, mais plusieurs "
        "exploitations ont déjà réduit leurs effectifs saisonniers.",
    ),
    language="fr",
    published=PUBLISHED,
)

RELATED_FR = (
    "Mark Esper signe un accord militaire entre les États-Unis et le Maroc",
    "Accord militaire : ce que le Maroc attend des États-Unis et de Mark Esper",
    "Le prix des agrumes en hausse sur les marchés de Casablanca",
    "Mark Esper au Maroc : un accord militaire pour dix ans avec les États-Unis",
    "Tourisme : une saison record sur la côte atlantique",
)
RELATED_EN = (
    "Mark Esper signs a military agreement between the United States and Morocco",
    "What Morocco expects from its new military agreement with the United States",
    "Citrus prices rise on Casablanca markets",
    "Tourism: a record season on the Atlantic coast",
)
RELATED_AR = (
    "المغرب والولايات المتحدة يوقعان اتفاق تعاون عسكري",
    "ماذا ينتظر المغرب من الاتفاق العسكري مع الولايات المتحدة",
    "ارتفاع أسعار الحوامض في أسواق الدار البيضاء",
    "السياحة: موسم قياسي على الساحل الأطلسي",
)
