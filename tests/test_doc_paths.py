"""Every repository path the code and the docs cite exists, and so does every section or
reliability item they cite; the module map is complete; README.md stays short.

Where citations are read:

- Python (the package folders, bench/, tests/, deploy/): comments and docstrings only, so a
  path a test builds in a temporary folder is not taken for a citation.
- Markdown (README.md, CHANGELOG.md, docs/, deploy/): link targets, paths in prose, and in
  code (inline or fenced) the paths that end in ``/`` or name a file with an extension, or
  fill a whole inline code span; so a kubectl resource such as deploy/<name> is not one.
- Other text files of deploy/ and the CI script: everything.

A path is cited when it starts with a top-level entry of the repository (TOP) or is a bare
markdown file name such as ``runbook.md`` (looked up beside the citing file, at the root and
in docs/); ``rules.yaml`` in an example or ``/etc/newswatch/config.yaml`` is not a citation.
A cited section is a quoted title right after the path (the path, a comma, then the title in
double quotes); it must be a heading or a bold lead-in of that file. After
``docs/reliability.md``, item numbers (``item 5``, ``§5``), fault ids (``A11``) and tables
(``table C``) must exist there.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TOP = ("docs", "deploy", "bench", "tests", "newswatch", "rules", "monitor", "streams", ".ci")
# Created by the user or by a script, never committed (git-ignored).
GENERATED = ("deploy/secrets.env", "deploy/kafka/lib", "deploy/kafka/run")
# Top-level folders whose names are also plain words ("600 rules/channels"): a path starting
# with one counts only with a file extension, a trailing "/" or a third segment.
WORDS = ("rules", "monitor", "streams")
# Written like a path, but the name of something else.
NOT_PATHS = {"newswatch/note": "a Kubernetes annotation key (deploy/k8s/)"}

PY_DIRS = ("rules", "monitor", "streams", "newswatch/core", "newswatch/cli", "bench", "tests",
           "deploy")
PY_FILES = ("newswatch/__init__.py", "newswatch/__main__.py")
TEXT_FILES = (".ci/run",)
TEXT_SUFFIXES = (".yaml", ".yml", ".sh", ".service", ".properties", ".xml", ".example", "")
SKIP_DIRS = ("deploy/kafka/lib", "deploy/kafka/run")
README_MAX_LINES = 200

_TOPS = "|".join(re.escape(t) for t in TOP)
_PATH = re.compile(rf"(?<![\w./~$-])(?:{_TOPS})/[\w./-]*")
_BARE_MD = re.compile(r"(?<![\w./-])[\w-]+\.md\b")
_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_SPAN = re.compile(r"(`+)(.+?)\1")
_SECTIONS = re.compile(r'[,:]?\s*(?:sections?\s+)?((?:"[^"\n]+"(?:\s*(?:,\s*and|,|and)\s*)?)+)')
_QUOTED = re.compile(r'"([^"\n]+)"')
_RELIABILITY_TOKENS = re.compile(r"§\d+|\b[A-I]\d{1,2}\b|\bitems?\b|\btables?\b|\bgroups?\b"
                                 r"|\b\d{1,2}\b|\b[A-I]\b")


@dataclass(frozen=True)
class Citation:
    source: str        # the citing file, relative to the root
    line: int
    path: str          # as cited, relative to the root (or a bare *.md name)
    after: str         # the text right after the path (for sections and items)


# --------------------------------------------------------------------------- reading citations


def _paths_in(text: str, *, code: bool) -> Iterator[tuple[int, str]]:
    """(offset, path) of every cited path in a piece of text; ``code`` for code spans."""
    for found in _PATH.finditer(text):
        path = found.group().rstrip(".,-")
        first = path.split("/")[1] if "/" in path else ""
        if first[:1].isdigit():  # a version, e.g. newswatch/0.1 in a User-Agent
            continue
        file_like = path.endswith("/") or "." in path.rsplit("/", 1)[-1]
        if code and not (file_like or text.strip() == path):
            continue
        if path.split("/")[0] in WORDS and not file_like and path.count("/") < 2:
            continue
        yield found.start(), path
    for found in _BARE_MD.finditer(text):
        yield found.start(), found.group()


def _citations(source: str, line: int, text: str, *, code: bool = False) -> Iterator[Citation]:
    for offset, path in _paths_in(text, code=code):
        end = offset + len(path)
        yield Citation(source, line + text.count("\n", 0, offset), path, text[end:end + 160])


def _python_fragments(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and docstring of a Python source."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                yield body[0].lineno, body[0].value.value


def _markdown_citations(name: str, text: str) -> Iterator[Citation]:
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            yield from _citations(name, number, line, code=True)
            continue
        prose = line
        for span in _SPAN.finditer(line):
            yield from _citations(name, number, span.group(2), code=True)
            prose = prose[:span.start()] + " " * len(span.group()) + prose[span.end():]
        for link in _LINK.finditer(prose):
            target = link.group(1).split("#", 1)[0]
            if target and ":" not in target:
                resolved = (Path(name).parent / target).as_posix()
                yield Citation(name, number, _normalise(resolved), "")
            prose = prose[:link.start()] + " " * len(link.group()) + prose[link.end():]
        yield from _citations(name, number, prose)


def _normalise(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            parts = parts[:-1]
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def citations(files: Mapping[str, str]) -> list[Citation]:
    """Every citation in ``files`` (path relative to the root → text)."""
    found: list[Citation] = []
    for name, text in files.items():
        if name.endswith(".py"):
            for line, fragment in _python_fragments(text):
                found.extend(_citations(name, line, fragment))
        elif name.endswith(".md"):
            found.extend(_markdown_citations(name, text))
        else:
            found.extend(_citations(name, 1, text))
    return found


# --------------------------------------------------------------------------- checking them


def _resolve(citation: Citation) -> Path | None:
    """The file a citation names, or None when it does not exist."""
    if "/" not in citation.path:  # a bare *.md name
        for folder in (ROOT / citation.source).parent, ROOT, ROOT / "docs":
            if (folder / citation.path).exists():
                return folder / citation.path
        return None
    path = ROOT / citation.path.rstrip("/")
    return path if path.exists() else None


def _titles(doc: str) -> set[str]:
    """Headings and bold lead-ins of a markdown file, as plain lowercase text."""
    titles = {m.strip() for m in re.findall(r"^#+\s+(.+)$", doc, re.M)}
    titles |= {m.strip() for m in re.findall(r"\*\*([^*\n]+)\*\*", doc)}
    return {t.replace("`", "").rstrip(".:").strip().lower() for t in titles}


def _reliability_ids(after: str) -> list[tuple[str, str]]:
    """(kind, id) cited right after docs/reliability.md: item, fault or table."""
    window = re.split(r"\)|:|\.\s|;|\n\s*\n", after, maxsplit=1)[0][:100]
    mode, out = "", []
    for token in _RELIABILITY_TOKENS.findall(window):
        if token.startswith("item"):
            mode = "item"
        elif token.startswith(("table", "group")):
            mode = "table"
        elif token.startswith("§"):
            out.append(("item", token[1:]))
        elif len(token) > 1 and token[0].isalpha():
            out.append(("fault", token))
        elif token.isdigit() and mode == "item":
            out.append(("item", token))
        elif token.isalpha() and mode == "table":
            out.append(("table", token))
    return out


def _reliability_has(doc: str, kind: str, ident: str) -> bool:
    if kind == "item":
        return re.search(rf"^{ident}\. \*\*", doc, re.M) is not None
    if kind == "fault":
        return re.search(rf"^\| {ident} \|", doc, re.M) is not None
    return re.search(rf"^### {ident}\. ", doc, re.M) is not None


def problems(files: Mapping[str, str]) -> list[str]:
    """``file:line: message`` for every citation in ``files`` that points nowhere."""
    out: list[str] = []
    for c in citations(files):
        where = f"{c.source}:{c.line}"
        if c.path in NOT_PATHS or c.path.rstrip("/").startswith(GENERATED):
            continue
        target = _resolve(c)
        if target is None:
            out.append(f"{where}: cites {c.path}, which does not exist")
            continue
        if target.suffix != ".md" or not target.is_file():
            continue
        doc = target.read_text(encoding="utf-8")
        sections = _SECTIONS.match(c.after)
        for title in _QUOTED.findall(sections.group(1)) if sections else []:
            if title.replace("`", "").rstrip(".").lower() not in _titles(doc):
                out.append(f'{where}: cites {c.path}, "{title}", which has no such section')
        if target.name == "reliability.md":
            for kind, ident in _reliability_ids(c.after):
                if not _reliability_has(doc, kind, ident):
                    out.append(f"{where}: cites {c.path} {kind} {ident}, which it does not have")
    return out


def repository_files() -> dict[str, str]:
    """The files whose citations are checked, by path relative to the root."""
    paths: set[Path] = set()
    for folder in PY_DIRS:
        paths.update((ROOT / folder).rglob("*.py"))
    paths.update(ROOT / name for name in PY_FILES)
    paths.update(ROOT / name for name in ("README.md", "CHANGELOG.md"))
    paths.update((ROOT / "docs").glob("*.md"))
    for path in (ROOT / "deploy").rglob("*"):
        if path.is_file() and (path.suffix == ".md" or path.suffix in TEXT_SUFFIXES):
            paths.add(path)
    paths.update(ROOT / name for name in TEXT_FILES)
    out: dict[str, str] = {}
    for path in sorted(paths):
        name = path.relative_to(ROOT).as_posix()
        if "__pycache__" in name or name.startswith(SKIP_DIRS) or not path.is_file():
            continue
        out[name] = path.read_text(encoding="utf-8")
    return out


# --------------------------------------------------------------------------- tests


def test_every_cited_path_section_and_item_exists() -> None:
    files = repository_files()
    assert {"README.md", "docs/rules.md", "streams/kafka/worker.py", "tests/test_crash.py",
            "deploy/k8s/worker.yaml", ".ci/run"} <= set(files)
    assert problems(files) == []


def test_the_checker_reads_the_citations_it_should() -> None:
    cited = {(c.source, c.path) for c in citations(repository_files())}
    for expected in [("streams/kafka/worker.py", "docs/reliability.md"),
                     ("rules/text.py", "docs/rules.md"),
                     ("newswatch/core/config.py", "docs/configuration.md"),
                     ("README.md", "docs/architecture.md"),
                     ("docs/kafka.md", "deploy/kafka/broker.sh"),
                     ("deploy/k8s/worker.yaml", "docs/scaling.md")]:
        assert expected in cited


def test_a_planted_missing_path_section_or_item_is_caught() -> None:
    sample_md = "\n".join([
        "See docs/nowhere.md and `streams/kafka/gone.py`, or [the guide](missing.md).",
        'The rules are in docs/rules.md, "Countries"; docs/rules.md, "No such section".',
        "Faults: docs/reliability.md A11 and A99, item 3 and item 42, table C.",
        "Not paths: `rules.yaml`, /etc/newswatch/config.yaml, /tmp/x/docs/a.md, 6 rules/s,",
        "`kubectl exec deploy/newswatch-poller --`, newswatch/0.1, `deploy/secrets.env`.",
        "```sh",
        "bash deploy/kafka/nothing.sh start",
        "```",
    ])
    sample_py = ('"""Cites docs/reliability.md item 7 and bench/none_bench.py."""\n'
                 "# tests/data/feeds\n")
    assert problems({"docs/sample.md": sample_md, "tests/sample.py": sample_py}) == [
        "docs/sample.md:1: cites streams/kafka/gone.py, which does not exist",
        "docs/sample.md:1: cites docs/missing.md, which does not exist",
        "docs/sample.md:1: cites docs/nowhere.md, which does not exist",
        'docs/sample.md:2: cites docs/rules.md, "No such section", which has no such section',
        "docs/sample.md:3: cites docs/reliability.md fault A99, which it does not have",
        "docs/sample.md:3: cites docs/reliability.md item 42, which it does not have",
        "docs/sample.md:7: cites deploy/kafka/nothing.sh, which does not exist",
        "tests/sample.py:1: cites bench/none_bench.py, which does not exist",
    ]


def test_the_module_map_lists_every_module() -> None:
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = [p for folder in ("newswatch/core", "newswatch/cli", "rules", "monitor", "streams")
               for p in (ROOT / folder).rglob("*.py") if p.name != "__init__.py"]
    modules += [ROOT / name for name in PY_FILES]
    unlisted = sorted(p.relative_to(ROOT).as_posix() for p in modules
                      if f"`{p.relative_to(ROOT).as_posix()}`" not in architecture)
    assert unlisted == [], "modules missing from the module map of docs/architecture.md"


def test_readme_fits_on_a_screen() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"
