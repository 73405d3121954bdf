"""The course site: a strict build, samples shown exactly as in code/, and nothing fetched from elsewhere.

One `mkdocs build --strict` into a temporary directory serves every test here.
Lessons and samples are discovered (`runner.lessons`), never listed: a new lesson
is checked by these same tests.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from runner import lessons
from runner.notebook import SETUP_CELL, cell_source

REPO = Path(__file__).resolve().parent.parent
CODE = REPO / "code"
LESSONS = lessons.lessons(REPO)
SAMPLES = lessons.sample_paths(REPO)
WITH_OUTPUT = [p for p in SAMPLES if not lessons.is_exercise(p)]
"""An exercise's starter has no expected output: its check judges a run."""
CDN_HOSTS = (
    "unpkg.com",
    "cdn.jsdelivr.net",
    "cdnjs.cloudflare.com",
    "fonts.googleapis.com",
    "fonts.gstatic.com",
)

_SNIPPET_BLOCK = re.compile(r'<div\b[^>]*\bdata-snippet="([^"]+)"[^>]*>')
_CODE = re.compile(r"<code\b[^>]*>(.*?)</code>", re.S)
_NOTEBOOK_PRE = re.compile(r'<div class="highlight-ipynb[^"]*"><pre>(.*?)</pre>', re.S)
_TAG = re.compile(r"<[^>]+>")


def snippet_id(path: Path) -> str:
    return lessons.snippet_id(REPO, path)


def built_page(site: Path, uri: str) -> str:
    """The HTML MkDocs writes for a page under docs/ (`chapter-05/index.md`, `notebook/x.ipynb`)."""
    stem = uri.removesuffix("/index.md").removesuffix(".md").removesuffix(".ipynb")
    return (site / stem / "index.html").read_text(encoding="utf-8")


def lesson_of(sample: Path) -> lessons.Lesson:
    return lessons.Lesson(REPO, sample.parent.name)


def text_of(fragment: str) -> str:
    """What a reader sees (and copies) of highlighted HTML: tags gone, entities decoded."""
    return html.unescape(_TAG.sub("", fragment))


def runnable_blocks(page: str) -> dict[str, tuple[int, str]]:
    """snippet id -> (position in the page, text of the first code element after it)."""
    blocks: dict[str, tuple[int, str]] = {}
    for match in _SNIPPET_BLOCK.finditer(page):
        code = _CODE.search(page, match.end())
        assert code is not None, f"no code element in the block for {match.group(1)}"
        assert match.group(1) not in blocks, f"{match.group(1)} is runnable twice"
        blocks[match.group(1)] = (match.start(), text_of(code.group(1)))
    return blocks


@pytest.fixture(scope="module")
def site(built_site: Path) -> Path:
    return built_site


@pytest.fixture(scope="module")
def chapter(site: Path) -> str:
    return (site / "chapter-05" / "index.html").read_text(encoding="utf-8")


def test_strict_build_produces_the_pages(site: Path) -> None:
    for page in ("index.html", "maintainers/index.html"):
        assert (site / page).is_file(), page
    for lesson in LESSONS:
        built_page(site, lesson.page_uri)
        built_page(site, lesson.notebook_uri)
        # include_source: the notebook can be downloaded from beside its page.
        name = lesson.notebook.name
        assert (site / lesson.notebook_uri.removesuffix(".ipynb") / name).is_file(), name


def test_every_lesson_has_samples() -> None:
    assert LESSONS, "no lesson folder (code/chapter_NN/) found"
    for lesson in LESSONS:
        assert lesson.samples(), f"code/{lesson.name}/ has no samples"


@pytest.mark.parametrize("path", SAMPLES, ids=snippet_id)
def test_sample_is_runnable_on_its_lesson_page_with_its_exact_code(path: Path, site: Path) -> None:
    lesson = lesson_of(path)
    blocks = runnable_blocks(built_page(site, lesson.page_uri))
    sid = snippet_id(path)
    assert sid in blocks, (
        f"{sid} is not shown as a runnable sample on docs/{lesson.page_uri}: "
        "add its workshop-run block (docs/maintainers.md, 'Add a runnable sample')"
    )
    assert blocks[sid][1] == path.read_text(encoding="utf-8"), f"the page shows other code than code/{sid}.py"


@pytest.mark.parametrize("path", WITH_OUTPUT, ids=snippet_id)
def test_expected_output_follows_its_sample(path: Path, site: Path) -> None:
    sid = snippet_id(path)
    expected = path.with_suffix(".out")
    assert expected.is_file(), f"code/{sid}.out is missing: record it with `{lessons.write_expected_command(sid)}`"
    lesson = lesson_of(path)
    page = built_page(site, lesson.page_uri)
    blocks = runnable_blocks(page)
    assert sid in blocks, f"{sid} is not on docs/{lesson.page_uri}, so neither is its expected output"
    start = blocks[sid][0]
    details = page.find("<details", start)
    assert details != -1 and "Expected output" in page[details : details + 200], (
        f'no "Expected output" block after {sid}: include code/{sid}.out under it (docs/maintainers.md)'
    )
    code = _CODE.search(page, details)
    assert code is not None
    assert text_of(code.group(1)) == expected.read_text(encoding="utf-8"), f"the block after {sid} is not {sid}.out"


def test_no_runnable_block_without_its_file(site: Path) -> None:
    known = {snippet_id(p) for p in SAMPLES}
    for page in site.rglob("*.html"):
        ids = {html.unescape(i) for i in _SNIPPET_BLOCK.findall(page.read_text(encoding="utf-8"))}
        ids = {i.removeprefix("notebook/") for i in ids}
        assert ids <= known, f"{page.relative_to(site)} has Run blocks for unknown samples: {sorted(ids - known)}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_notebook_cells_are_tagged_and_match_the_scripts(lesson: lessons.Lesson, site: Path) -> None:
    page = built_page(site, lesson.notebook_uri)
    samples = lesson.samples()
    tags = [m.group(1) for m in _SNIPPET_BLOCK.finditer(page)]
    assert tags == ["notebook/" + snippet_id(p) for p in samples]
    setup, *shown = [text_of(m.group(1)).strip() for m in _NOTEBOOK_PRE.finditer(page)]
    assert setup == SETUP_CELL.strip()  # shown, with no Run button: it is for a local Jupyter
    assert shown == [cell_source(p.read_text(encoding="utf-8")).strip() for p in samples]


def test_er_diagram_lists_the_five_tables(chapter: str) -> None:
    match = re.search(r'<pre class="mermaid"><code>(.*?)</code></pre>', chapter, re.S)
    assert match is not None, "no mermaid diagram on the chapter page"
    diagram = html.unescape(match.group(1))
    assert diagram.lstrip().startswith("erDiagram")
    for table in ("brand", "product", "product_color", "product_size", "sku"):
        assert re.search(rf"^\s*{table} \{{", diagram, re.M), table
    for fk in ("brand_id FK", "product_id FK", "product_size_id FK", "product_color_id FK"):
        assert fk in diagram


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_runner_url_reaches_the_pages(lesson: lessons.Lesson, site: Path) -> None:
    page = built_page(site, lesson.page_uri)
    assert '<meta name="workshop-runner-url" content="">' in page
    assert "assets/workshop-run.js" in page and "assets/workshop-run.css" in page


def _external(url: str) -> bool:
    return bool(re.match(r"^(https?:)?//", url.strip(), re.I))


def test_site_loads_nothing_from_other_hosts(site: Path) -> None:
    problems: list[str] = []
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        where = page.relative_to(site)
        for tag in re.finditer(r"<(script|link|img|iframe|source)\b[^>]*>", text, re.I):
            element = tag.group(0)
            for attr in ("src", "href"):
                value = re.search(rf'\b{attr}\s*=\s*["\']([^"\']*)["\']', element, re.I)
                if value is None or not _external(value.group(1)):
                    continue
                # <link rel=prev/next/canonical> is navigation, not a resource.
                rel = re.search(r'\brel\s*=\s*["\']([^"\']*)', element, re.I)
                if tag.group(1).lower() == "link" and rel and rel.group(1) in ("prev", "next", "canonical"):
                    continue
                problems.append(f"{where}: {element[:160]}")
        problems += [f"{where}: mentions {host}" for host in CDN_HOSTS if host in text]
    for sheet in site.rglob("*.css"):
        text = sheet.read_text(encoding="utf-8")
        for url in re.findall(r"""url\(\s*["']?([^"')]+)""", text) + re.findall(r"""@import\s+["']([^"']+)""", text):
            if _external(url):
                problems.append(f"{sheet.relative_to(site)}: {url}")
    assert not problems, "\n".join(problems)


def test_mermaid_is_vendored(site: Path) -> None:
    assert (site / "assets/mermaid/mermaid.min.js").stat().st_size > 1_000_000
    loader = (site / "assets/mermaid-loader.js").read_text(encoding="utf-8")
    assert "mermaid/mermaid.min.js" in loader


def test_maintainers_page_shows_include_lines_as_written(site: Path) -> None:
    raw = (REPO / "docs" / "maintainers.md").read_text(encoding="utf-8")
    assert ";--8<--" not in raw, "the raw page must show include lines as a maintainer copies them"
    assert '--8<-- "chapter_NN/09_listen_notify.py"' in raw
    page = text_of(built_page(site, "maintainers.md"))
    assert '--8<-- "chapter_NN/09_listen_notify.py"' in page
    assert '--8<-- "chapter_NN/09_listen_notify.out"' in page


def test_every_exercise_named_in_a_command_exists() -> None:
    """`python -m runner check chapter_NN/exNN_name` in the docs names a real exercise."""
    exercises = {snippet_id(p) for p in SAMPLES if lessons.is_exercise(p)}
    assert exercises, "no exercise in code/"
    texts = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    named = {
        (path.relative_to(REPO).as_posix(), name)
        for path in texts
        for name in re.findall(r"runner check (chapter_\d\d/ex\d\d_\w+)", path.read_text(encoding="utf-8"))
    }
    assert named, "the docs no longer show how to check an exercise at home"
    assert {(where, name) for where, name in named if name not in exercises} == set()
