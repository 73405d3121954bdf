"""The notebook editions, one per lesson: generated from code/, committed up to date, valid, runnable cell by cell.

The last tests execute each one in a real local Jupyter kernel (nbclient), started
in a folder outside the repository, against `python -m runner db` on a free port.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from runner import lessons, notebook
from runner.expected import normalise, read_expected
from runner.notebook import SETUP_CELL, SETUP_INTRO, build_notebook, cell_source, render_notebook

from .conftest import free_port, start_learner_db, wait_until_serving

REPO = Path(__file__).resolve().parent.parent
LESSONS = lessons.lessons(REPO)
by_name = pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)


@by_name
def test_committed_notebook_is_what_the_build_produces(lesson: lessons.Lesson) -> None:
    assert lesson.notebook.is_file(), f"docs/{lesson.notebook_uri} is missing: run `python -m runner notebook`"
    assert lesson.notebook.read_text(encoding="utf-8") == render_notebook(REPO, lesson), (
        f"docs/{lesson.notebook_uri} is stale: run `python -m runner notebook`"
    )


def test_no_notebook_is_left_over_from_a_lesson_that_is_gone() -> None:
    assert notebook.orphans(REPO) == [], "run `python -m runner notebook`: it removes them"
    assert notebook.problems(REPO) == []


@by_name
def test_build_is_deterministic(lesson: lessons.Lesson) -> None:
    assert render_notebook(REPO, lesson) == render_notebook(REPO, lesson)


@by_name
def test_committed_notebook_validates(lesson: lessons.Lesson) -> None:
    nbformat.validate(nbformat.read(lesson.notebook, as_version=4))


@by_name
def test_a_setup_cell_then_one_code_cell_per_sample_in_lesson_order(lesson: lessons.Lesson) -> None:
    nb = build_notebook(REPO, lesson)
    assert nb.metadata["workshop"] == {"lesson": lesson.name}
    setup, *code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert setup.source == SETUP_CELL and setup.metadata == {}  # no snippet: no Run button on the site
    scripts = lesson.samples()
    assert [p.name for p in scripts] == sorted(p.name for p in scripts)
    assert len(code_cells) == len(scripts) >= 1
    for cell, script in zip(code_cells, scripts, strict=True):
        sid = lessons.snippet_id(REPO, script)
        assert cell.metadata == {"workshop": {"snippet": f"notebook/{sid}"}}
        assert cell.source == cell_source(script.read_text(encoding="utf-8"))
        assert cell.outputs == [] and cell.execution_count is None
    # Every sample is introduced by a markdown cell; the first cell names the lesson.
    kinds = [cell.cell_type for cell in nb.cells]
    assert kinds[0] == "markdown"
    assert nb.cells[0].source.startswith(f"# {lesson.title()} (notebook edition)")
    assert all(kinds[i - 1] == "markdown" for i, kind in enumerate(kinds) if kind == "code")


@by_name
def test_cells_compile_as_top_level_await_code(lesson: lessons.Lesson) -> None:
    import ast

    for script in lesson.samples():
        source = cell_source(script.read_text(encoding="utf-8"))
        compile(source, script.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        assert "__main__" not in source
        assert "asyncio.run(" not in source


def test_chapter_5_keeps_its_notebook_address() -> None:
    """Published links point at this notebook: retitling the chapter would move it."""
    assert lessons.Lesson(REPO, "chapter_05").notebook_uri == "notebook/asynchronous-database-interaction.ipynb"


# -- cell_source ------------------------------------------------------------

ASYNC_SCRIPT = '''\
"""Doc."""

import asyncio


async def main() -> None:
    print("hi")


if __name__ == "__main__":
    asyncio.run(main())
'''

SYNC_SCRIPT = """\
def main() -> None:
    for n in range(3):
        print(n)


if __name__ == "__main__":
    main()
"""


def test_async_main_becomes_await() -> None:
    assert cell_source(ASYNC_SCRIPT) == (
        '"""Doc."""\n\nimport asyncio\n\n\nasync def main() -> None:\n    print("hi")\n\n\nawait main()'
    )


def test_sync_script_only_loses_the_guard() -> None:
    assert cell_source(SYNC_SCRIPT) == ("def main() -> None:\n    for n in range(3):\n        print(n)\n\n\nmain()")


def test_guard_with_single_quotes_and_comment_and_several_lines() -> None:
    script = "import asyncio\n\nif __name__ == '__main__':  # entry point\n    setup()\n    asyncio.run(main(1))\n"
    assert cell_source(script) == "import asyncio\n\nsetup()\nawait main(1)"


def test_code_after_the_guard_is_kept() -> None:
    script = 'if __name__ == "__main__":\n    main()\nprint("after")\n'
    assert cell_source(script) == 'main()\nprint("after")'


def test_unguarded_asyncio_run_becomes_await() -> None:
    assert cell_source("import asyncio\nasyncio.run(main())\n") == "import asyncio\nawait main()"


def test_nested_asyncio_run_is_left_alone() -> None:
    script = "def go():\n    asyncio.run(main())\n"
    assert cell_source(script) == script.rstrip()


def test_script_without_guard_is_unchanged_but_for_trailing_blank_lines() -> None:
    assert cell_source("print(1)\n\n\n") == "print(1)"


# -- explanations ------------------------------------------------------------


def _lesson_with(tmp_path: Path, files: dict[str, str]) -> lessons.Lesson:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return lessons.Lesson(tmp_path, "chapter_07")


def test_a_sample_is_introduced_by_its_md_file_else_by_its_docstring(tmp_path: Path) -> None:
    lesson = _lesson_with(
        tmp_path,
        {
            "docs/chapter-07/index.md": "---\ndescription: x\n---\n\n# Tasks and groups\n\ntext\n",
            "code/chapter_07/01_tasks.py": '"""Start two tasks.\n\nThey run side by side.\n"""\nprint(1)\n',
            "code/chapter_07/02_group.py": '"""A task group."""\nprint(2)\n',
            "code/chapter_07/02_group.md": "## Groups\n\nWritten by hand.\n",
            "code/chapter_07/03_bare.py": "print(3)\n",
        },
    )
    assert lesson.notebook_uri == "notebook/tasks-and-groups.ipynb"
    markdown = [cell.source for cell in build_notebook(tmp_path, lesson).cells if cell.cell_type == "markdown"]
    assert markdown[0].startswith("# Tasks and groups (notebook edition)")
    assert markdown[1] == SETUP_INTRO
    assert markdown[2:] == [
        "## Start two tasks.\n\nThey run side by side.",
        "## Groups\n\nWritten by hand.",
        "## 03_bare",
    ]


def test_write_all_writes_each_lesson_and_removes_orphans(tmp_path: Path) -> None:
    lesson = _lesson_with(
        tmp_path,
        {"docs/chapter-07/index.md": "# Tasks\n", "code/chapter_07/01_tasks.py": "print(1)\n"},
    )
    assert notebook.problems(tmp_path) == [
        "docs/notebook/tasks.ipynb is missing: run `python -m runner notebook` and commit it"
    ]
    assert notebook.write_all(tmp_path) == ["wrote docs/notebook/tasks.ipynb"]
    assert notebook.problems(tmp_path) == []
    hand_made = tmp_path / "docs/notebook/by-hand.ipynb"
    hand_made.write_text('{"cells": [], "metadata": {}}', encoding="utf-8")
    lesson.page.write_text("# Tasks, retitled\n", encoding="utf-8")
    assert notebook.problems(tmp_path) == [
        "docs/notebook/tasks-retitled.ipynb is missing: run `python -m runner notebook` and commit it",
        "docs/notebook/tasks.ipynb belongs to no lesson any more: `python -m runner notebook` removes it",
    ]
    assert notebook.write_all(tmp_path) == [
        "wrote docs/notebook/tasks-retitled.ipynb",
        "removed docs/notebook/tasks.ipynb (it belongs to no lesson any more)",
    ]
    assert hand_made.exists(), "a notebook the generator did not write is not its to remove"
    assert notebook.main(["--check"], repo_root=tmp_path) == 0


# -- the command ------------------------------------------------------------


def test_main_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "nb.ipynb"
    assert notebook.main(["--check", "--output", str(target), "chapter_05"]) == 1  # missing
    assert notebook.main(["--output", str(target), "chapter_05"]) == 0
    assert json.loads(target.read_text(encoding="utf-8"))["nbformat"] == 4
    assert notebook.main(["--check", "--output", str(target), "chapter_05"]) == 0
    target.write_text(target.read_text(encoding="utf-8").replace("await main()", "main()", 1))
    assert notebook.main(["--check", "--output", str(target), "chapter_05"]) == 1
    assert "out of date" in capsys.readouterr().err


def test_main_checks_every_lesson_of_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert notebook.main(["--check"]) == 0
    assert "every notebook is up to date" in capsys.readouterr().out


# -- the setup cell, and the whole notebook in a local kernel -----------------

STDLIB_CODE_FIRST = "import code  # as IPython does while it starts\n"
SHOW_LESSON_CODE = "\nimport code.utils\nprint(code.utils.__file__)"


def run_setup(cwd: Path, *python_flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *python_flags, "-c", STDLIB_CODE_FIRST + SETUP_CELL + SHOW_LESSON_CODE],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_setup_cell_finds_the_repository_above_the_notebooks_folder() -> None:
    # -S: no site-packages, so no installed `runner` to fall back on; walking up must find it.
    result = run_setup(REPO / "docs" / "notebook", "-S")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"lesson code from {REPO}; database port 5432", str(REPO / "code/utils.py")]


def test_setup_cell_says_what_to_do_when_it_cannot_find_the_repository(tmp_path: Path) -> None:
    result = run_setup(tmp_path, "-S")
    assert result.returncode == 1
    assert "RuntimeError: start Jupyter inside the repository, or with its environment (make venv)" in result.stderr


@pytest.fixture(scope="module")
def learner_db_port() -> Iterator[int]:
    """`python -m runner db` on a free port (5432 may belong to another checkout's tests)."""
    port = free_port()
    process = start_learner_db(port)
    try:
        wait_until_serving(process)
        yield port
    finally:
        process.terminate()
        process.wait(30)


def stream_text(cell: nbformat.NotebookNode) -> str:
    return "".join(output["text"] for output in cell.outputs if output["output_type"] == "stream")


@pytest.mark.timeout(120)
@by_name
def test_the_notebook_runs_in_a_local_kernel_outside_the_repository(
    lesson: lessons.Lesson, tmp_path: Path, learner_db_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not tmp_path.resolve().is_relative_to(REPO)
    copy = tmp_path / lesson.notebook.name  # as a learner who downloaded it from the site
    shutil.copy(lesson.notebook, copy)
    nb = nbformat.read(copy, as_version=4)
    monkeypatch.setenv("WORKSHOP_DB_PORT", str(learner_db_port))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    # The kernel runs this interpreter (jupyter_client maps the python3 kernel to sys.executable),
    # in tmp_path: the repository is found through the installed `runner` package.
    NotebookClient(nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(tmp_path)}}).execute()

    setup, *samples = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert stream_text(setup) == f"lesson code from {REPO}; database port {learner_db_port}\n"
    assert len(samples) == len(lesson.samples())
    for cell in samples:
        sid = cell.metadata["workshop"]["snippet"].removeprefix("notebook/")
        assert not [o for o in cell.outputs if o["output_type"] == "error"], sid
        if not lessons.is_exercise(lessons.sample_path(REPO, sid)):  # a starter's expected result is its check
            assert normalise(stream_text(cell)) == read_expected(sid), sid
