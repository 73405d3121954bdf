"""The site built by Zensical from the same mkdocs.yml: the lesson pages keep their runnable samples.

MkDocs with Material stays the build that publishes and checks the site; this
build shows how far the move to Zensical has come. What does not carry over yet
is listed in docs/maintainers.md and pinned down here, so that this test fails
(and the docs get updated) when Zensical closes a gap.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import lessons

from .test_docs import built_page, runnable_blocks, text_of

REPO = Path(__file__).resolve().parent.parent
LESSONS = lessons.lessons(REPO)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_lesson_pages_keep_every_runnable_sample_with_its_code(zensical_site: Path, lesson: lessons.Lesson) -> None:
    page = built_page(zensical_site, lesson.page_uri)
    blocks = runnable_blocks(page)
    for sample in lesson.samples():
        sid = lessons.snippet_id(REPO, sample)
        assert sid in blocks, f"{sid} lost its Run block in the Zensical build"
        assert blocks[sid][1] == sample.read_text(encoding="utf-8")
    with_output = [sample for sample in lesson.samples() if not lessons.is_exercise(sample)]
    assert text_of(page).count("Expected output") >= len(with_output)


def test_the_widget_and_the_runner_url_are_on_the_page(zensical_site: Path) -> None:
    page = built_page(zensical_site, LESSONS[0].page_uri)
    assert '<meta name="workshop-runner-url" content="">' in page  # docs/overrides/main.html still applies
    assert '<script src="../assets/workshop-run.js" type="module">' in page
    assert "../assets/workshop-run.css" in page
    for asset in ("assets/workshop-run.js", "assets/vendor/codemirror.js"):  # the widget and its editor
        assert (zensical_site / asset).read_bytes() == (REPO / "docs" / asset).read_bytes(), asset
    assert not (zensical_site / "assets/vendor/build.mjs").exists(), "exclude_docs no longer applies"


def test_include_examples_stay_examples(zensical_site: Path) -> None:
    """The Markdown extension (not a hook) escapes them, so it works under Zensical too."""
    assert '--8<-- "chapter_NN/09_listen_notify.py"' in text_of(built_page(zensical_site, "maintainers.md"))


def test_what_does_not_carry_over_yet(zensical_site: Path) -> None:
    """Documented in docs/maintainers.md ('Zensical'): no notebook page, the raw hook file is published."""
    for lesson in LESSONS:
        stem = lesson.notebook_uri.removesuffix(".ipynb")
        assert not (zensical_site / stem / "index.html").exists(), "Zensical renders notebooks now: update the docs"
        assert (zensical_site / lesson.notebook_uri).is_file()  # the notebook itself, as a download
    assert (zensical_site / "hooks/workshop.py").is_file(), "Zensical no longer copies the hook: update the docs"
    page = built_page(zensical_site, LESSONS[0].page_uri)
    assert "data-snippet=" in page and "data-sha256=" not in page, "the hook runs under Zensical: update the docs"
