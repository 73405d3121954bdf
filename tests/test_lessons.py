"""Lessons found from the files, the runner's catalogue following code/, and the include-example escape.

Fast tests on small repositories made in a temporary folder; the whole pipeline on
a copy of this repository is in test_new_lesson.py.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import markdown
import pytest

from runner import lessons
from runner.markdown_examples import escape_example_includes
from runner.preview import is_relevant
from runner.snippets import Catalogue, load_catalogue


def make_repo(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


SAMPLE = '"""Say hello."""\n\nprint("hello")\n'


def test_lessons_are_the_chapter_folders_in_order(tmp_path: Path) -> None:
    make_repo(
        tmp_path,
        {
            "code/chapter_10/01_a.py": SAMPLE,
            "code/chapter_02/02_b.py": SAMPLE,
            "code/chapter_02/01_a.py": SAMPLE,
            "code/chapter_02/__init__.py": "",
            "code/chapter_02/_helpers.py": "",
            "code/chapter_02/01_a.out": "hello\n",
            "code/utils.py": "",
            "code/chapter_03.txt": "not a folder",
            "code/chapter_04/__pycache__/old.cpython-311.pyc": "left behind by a removed lesson",
            "docs/chapter-02/index.md": "---\ntitle: ignored\n---\n\n# First steps #\n\nText.\n",
        },
    )
    found = lessons.lessons(tmp_path)
    assert [lesson.name for lesson in found] == ["chapter_02", "chapter_10"]
    first = found[0]
    assert [p.name for p in first.samples()] == ["01_a.py", "02_b.py"]
    assert first.page_uri == "chapter-02/index.md"
    assert first.title() == "First steps"
    assert first.notebook_uri == "notebook/first-steps.ipynb"
    assert found[1].title() == "chapter_10"  # no page yet
    assert [lessons.snippet_id(tmp_path, p) for p in lessons.sample_paths(tmp_path)] == [
        "chapter_02/01_a",
        "chapter_02/02_b",
        "chapter_10/01_a",
    ]


def test_problems_name_the_file_and_the_fix(tmp_path: Path) -> None:
    make_repo(
        tmp_path,
        {
            "code/chapter_02/01_a.py": SAMPLE,
            "code/chapter_02/01_a.out": "hello\n",
            "code/chapter_02/02_b.py": SAMPLE,
            "docs/chapter-02/index.md": "# Two\n",
            "code/chapter_03/__init__.py": "",
        },
    )
    assert lessons.problems(tmp_path) == [
        "code/chapter_02/02_b.py has no expected output: record it with "
        "`python -m runner expected --write chapter_02/02_b`",
        "code/chapter_03/ has no page: write docs/chapter-03/index.md and add it to `nav` in mkdocs.yml "
        "(see docs/maintainers.md, 'Add a lesson')",
        "code/chapter_03/ has no samples: add one (see docs/maintainers.md, 'Add a sample')",
    ]


def test_the_catalogue_has_every_sample_and_its_notebook_cell(tmp_path: Path) -> None:
    make_repo(tmp_path, {"code/chapter_02/01_a.py": "import asyncio\n\nasyncio.run(main())\n"})
    catalogue = load_catalogue(tmp_path / "code")
    assert sorted(catalogue) == ["chapter_02/01_a", "notebook/chapter_02/01_a"]
    assert catalogue["chapter_02/01_a"].path == "code/chapter_02/01_a.py"
    assert catalogue["notebook/chapter_02/01_a"].code == "import asyncio\n\nawait main()"


def test_the_catalogue_follows_samples_added_edited_and_removed(tmp_path: Path) -> None:
    make_repo(tmp_path, {"code/chapter_02/01_a.py": SAMPLE})
    catalogue = Catalogue(tmp_path / "code")
    assert list(catalogue.current()) == ["chapter_02/01_a", "notebook/chapter_02/01_a"]
    assert catalogue.current() is catalogue.current() and catalogue.loads == 1  # unchanged: not reread

    make_repo(tmp_path, {"code/chapter_04/01_new.py": SAMPLE})
    assert "chapter_04/01_new" in catalogue.current()

    sample = tmp_path / "code/chapter_02/01_a.py"
    sample.write_text('print("edited")\n', encoding="utf-8")
    stat = sample.stat()
    os.utime(sample, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # same size within one clock tick still counts
    assert catalogue.current()["chapter_02/01_a"].code == 'print("edited")\n'

    sample.unlink()
    assert "chapter_02/01_a" not in catalogue.current()
    assert catalogue.loads == 4

    (tmp_path / "code/chapter_06").mkdir()  # a folder that is no lesson yet: its first sample makes it one
    assert catalogue.current() is catalogue.current()
    make_repo(tmp_path, {"code/chapter_06/01_first.py": SAMPLE})
    assert "chapter_06/01_first" in catalogue.current()
    make_repo(tmp_path, {"code/chapter_04/02_second.py": SAMPLE})  # beside a sample already known
    assert "chapter_04/02_second" in catalogue.current()
    assert catalogue.loads == 7  # the new folder, its first sample, the second sample


# -- include lines shown in Markdown examples --------------------------------------

EXAMPLE = """\
Text.

````markdown
<div class="workshop-run" data-snippet="chapter_NN/01_a" markdown>

```python
--8<-- "chapter_NN/01_a.py"
```

</div>

    --8<-- "chapter_NN/01_a.out"
````

```python
--8<-- "included.py"
```
"""


def test_include_lines_are_escaped_only_inside_markdown_examples() -> None:
    lines = escape_example_includes(EXAMPLE.split("\n"))
    assert lines.count(';--8<-- "chapter_NN/01_a.py"') == 1
    assert lines.count('    ;--8<-- "chapter_NN/01_a.out"') == 1
    assert '--8<-- "included.py"' in lines, "an include in a python block is performed"


@pytest.mark.parametrize("fence", ["```md", "~~~markdown", "``` markdown"])
def test_other_spellings_of_a_markdown_fence(fence: str) -> None:
    closing = fence[:3]
    lines = escape_example_includes([fence, "--8<-- 'a.py'", "--8<--", closing, "--8<-- 'b.py'"])
    assert lines == [fence, ";--8<-- 'a.py'", ";--8<--", closing, "--8<-- 'b.py'"]


def test_with_pymdownx_snippets_the_example_shows_the_line_and_the_real_include_happens(tmp_path: Path) -> None:
    (tmp_path / "included.py").write_text("print('included')\n", encoding="utf-8")
    md = markdown.Markdown(
        extensions=["runner.markdown_examples", "pymdownx.snippets", "pymdownx.superfences"],
        extension_configs={"pymdownx.snippets": {"base_path": [str(tmp_path)], "check_paths": True}},
    )
    shown = html.unescape(re.sub(r"<[^>]+>", "", md.convert(EXAMPLE)))
    assert '\n--8<-- "chapter_NN/01_a.py"\n' in shown
    assert '    --8<-- "chapter_NN/01_a.out"\n' in shown
    assert ";--8" not in shown
    assert "print('included')" in shown and "included.py" not in shown


# -- what the preview watches ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "relevant"),
    [
        ("docs/chapter-06/index.md", True),
        ("code/chapter_06/01_tasks.py", True),
        ("mkdocs.yml", True),
        ("code/__pycache__/utils.cpython-311.pyc", False),
        ("docs/.index.md.swp", False),
        ("docs/index.md~", False),
        ("site/index.html", False),
        ("runner/app.py", False),
        ("README.md", False),
    ],
)
def test_the_preview_rebuilds_for_content_only(tmp_path: Path, path: str, relevant: bool) -> None:
    assert is_relevant(str(tmp_path / path), tmp_path) is relevant


def test_inline_code_at_the_start_of_a_line_is_not_a_fence() -> None:
    lines = ["```` ```markdown ```` is inline code", "```markdown", "--8<-- 'a.py'", "```"]
    assert escape_example_includes(lines)[2] == ";--8<-- 'a.py'"


def test_an_exercise_is_a_starter_with_a_check_and_needs_a_solution_not_an_output(tmp_path: Path) -> None:
    make_repo(
        tmp_path,
        {
            "code/chapter_02/01_a.py": SAMPLE,
            "code/chapter_02/01_a.out": "hello\n",
            "code/chapter_02/ex01_hello.py": SAMPLE,
            "code/chapter_02/ex01_hello_check.py": "async def check(result): return 'ok'\n",
            "code/chapter_02/ex01_hello_solution.py": SAMPLE,
            "code/chapter_02/ex02_bye.py": SAMPLE,
            "code/chapter_02/ex02_bye_check.py": "async def check(result): return 'ok'\n",
            "code/chapter_02/ex03_gone_check.py": "async def check(result): return 'ok'\n",
            "docs/chapter-02/index.md": "# Two\n",
        },
    )
    samples = lessons.lessons(tmp_path)[0].samples()
    assert [p.name for p in samples] == ["01_a.py", "ex01_hello.py", "ex02_bye.py"]
    assert [lessons.is_exercise(p) for p in samples] == [False, True, True]
    assert lessons.problems(tmp_path) == [
        "code/chapter_02/ex02_bye.py is an exercise without a solution: write ex02_bye_solution.py beside it",
        "code/chapter_02/ex03_gone_check.py checks no exercise: its starter ex03_gone.py is missing",
    ]
