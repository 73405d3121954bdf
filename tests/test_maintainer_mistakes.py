"""Each mistake a maintainer can make fails the build or the expected-output check, saying what to do.

Each test starts from a fresh copy of this repository (tests/repo_copy.py), makes
mistakes and runs the real tool on it: `mkdocs build --strict` (the build hook
reports each mistake) or `python -m runner expected` (which needs a runner, so it
uses an embedded cluster of its own under the test cache). That the untouched
copy builds is shown by test_new_lesson.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from runner import notebook

from .conftest import TEST_CACHE
from .repo_copy import build, copy_repo, run, write

CACHE = {"WORKSHOP_CACHE_DIR": str(TEST_CACHE / "repo-copies")}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


def page_outside_the_nav(repo: Path) -> None:
    write(repo, "docs/glossary.md", "# Glossary\n")


def unknown_snippet_on_another_page(repo: Path) -> None:
    page = repo / "docs/index.md"
    block = (
        '\n<div class="workshop-run" data-snippet="chapter_05/03_pol" markdown>\n\n```python\nprint(1)\n```\n\n</div>\n'
    )
    page.write_text(page.read_text(encoding="utf-8") + block, encoding="utf-8")


def sample_without_expected_output(repo: Path) -> None:
    write(repo, "code/chapter_05/09_extra.py", '"""An extra sample."""\nprint("extra")\n')


def sample_missing_from_its_page(repo: Path) -> None:
    write(repo, "code/chapter_05/10_unshown.py", '"""An extra sample."""\nprint("unshown")\n')
    write(repo, "code/chapter_05/10_unshown.out", "unshown\n")
    notebook.write_all(repo)


def lesson_without_a_page(repo: Path) -> None:
    write(repo, "code/chapter_98/__init__.py", "")
    write(repo, "code/chapter_98/01_a.py", 'print("a")\n')
    write(repo, "code/chapter_98/01_a.out", "a\n")
    notebook.write_all(repo)


def stale_notebook(repo: Path) -> None:
    path = repo / "docs/notebook/asynchronous-database-interaction.ipynb"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["cells"][1]["source"] = "## Edited by hand"
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def orphaned_notebook(repo: Path) -> None:
    old = repo / "docs/notebook/asynchronous-database-interaction.ipynb"
    shutil.copy(old, repo / "docs/notebook/an-old-title.ipynb")


MISTAKES: list[tuple[Callable[[Path], None], str]] = [
    (page_outside_the_nav, "docs/glossary.md is not in the nav: add it under `nav:` in mkdocs.yml"),
    (
        unknown_snippet_on_another_page,
        'docs/index.md: data-snippet="chapter_05/03_pol" names no sample, so its Run button would fail: '
        "did you mean 'chapter_05/03_pool'?",
    ),
    (
        sample_without_expected_output,
        "code/chapter_05/09_extra.py has no expected output: record it with "
        "`python -m runner expected --write chapter_05/09_extra`",
    ),
    (
        sample_missing_from_its_page,
        'code/chapter_05/10_unshown.py is not shown on docs/chapter-05/index.md: add a <div class="workshop-run" '
        'data-snippet="chapter_05/10_unshown" markdown> block',
    ),
    (lesson_without_a_page, "code/chapter_98/ has no page: write docs/chapter-98/index.md and add it to `nav`"),
    (
        stale_notebook,
        "docs/notebook/asynchronous-database-interaction.ipynb is out of date: run `python -m runner notebook`",
    ),
    (
        orphaned_notebook,
        "docs/notebook/an-old-title.ipynb belongs to no lesson any more: `python -m runner notebook` removes it",
    ),
]


def test_each_mistake_fails_the_strict_build_with_its_fix(repo: Path) -> None:
    """All the mistakes in one copy and one build (`--strict` fails on any one warning; each is named)."""
    for mistake, _ in MISTAKES:
        mistake(repo)
    result = build(repo)
    assert result.returncode != 0, f"the build let the mistakes through:\n{result.stdout}"
    missed = [mistake.__name__ for mistake, message in MISTAKES if message not in result.stdout]
    assert not missed, f"not reported: {missed}\n{result.stdout}"


# -- expected outputs, which need real runs -----------------------------------------

CRASH = '"""Divide by zero."""\n\nprint("before")\nprint(1 / 0)\n'


def test_a_stale_expected_output_fails_the_check_with_the_command_that_fixes_it(repo: Path) -> None:
    out = repo / "code/chapter_05/06_sync_generator.out"
    out.write_text(out.read_text(encoding="utf-8").replace("1", "one", 1), encoding="utf-8")
    result = run(repo, "-m", "runner", "expected", "chapter_05/06_sync_generator", **CACHE)
    assert result.returncode == 1, result.stdout
    assert (
        "chapter_05/06_sync_generator: the expected output is stale; if this run's output is right, "
        "record it with `python -m runner expected --write chapter_05/06_sync_generator`"
    ) in result.stdout
    assert "-one\n+1\n" in result.stdout
    fixed = run(repo, "-m", "runner", "expected", "--write", "chapter_05/06_sync_generator", **CACHE)
    assert fixed.returncode == 0 and "wrote code/chapter_05/06_sync_generator.out" in fixed.stdout, fixed.stdout
    again = run(repo, "-m", "runner", "expected", "chapter_05/06_sync_generator", **CACHE)
    assert again.returncode == 0 and "ok chapter_05/06_sync_generator" in again.stdout, again.stdout
    assert "orphaned" not in result.stdout + fixed.stdout + again.stdout


def test_a_crash_is_not_recorded_unless_the_sample_is_marked_to_fail(repo: Path) -> None:
    sample = write(repo, "code/chapter_05/09_crash.py", CRASH)
    refused = run(repo, "-m", "runner", "expected", "--write", "chapter_05/09_crash", **CACHE)
    assert refused.returncode == 1, refused.stdout
    assert "refused: chapter_05/09_crash did not run cleanly (status error, exit code 1)" in refused.stdout
    assert "add a line `# expect: error` to code/chapter_05/09_crash.py" in refused.stdout
    assert "ZeroDivisionError" in refused.stdout, "the refusal shows what the run printed"
    assert not sample.with_suffix(".out").exists()

    sample.write_text(CRASH.replace('\n\nprint("before")', '\n\n# expect: error\nprint("before")'), encoding="utf-8")
    recorded = run(repo, "-m", "runner", "expected", "--write", "chapter_05/09_crash", **CACHE)
    assert recorded.returncode == 0, recorded.stdout
    out = sample.with_suffix(".out").read_text(encoding="utf-8")
    assert out.startswith("before\n") and out.rstrip().endswith("ZeroDivisionError: division by zero"), out
    assert "orphaned" not in refused.stdout + recorded.stdout
