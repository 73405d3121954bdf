"""The notebook editions, one per lesson, generated from the lesson's samples in `code/`.

The scripts stay the single source of truth: every code cell is derived from one
script by `cell_source`, and `python -m runner notebook --check` fails when a
committed notebook no longer matches what `build_notebook` would write. Each
lesson's notebook is `docs/notebook/<slug of its page title>.ipynb` (see
`lessons.py`); the markdown cell before a sample's cell is the sample's `.md`
file when it has one (`03_pool.md`), else its docstring.

nbformat is imported inside the functions that need it, because the runner
imports `cell_source` at serve time and must not pay for (or depend on) nbformat.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .lessons import NOTEBOOK_DIR, REPO_ROOT, Lesson, lessons, snippet_id

if TYPE_CHECKING:
    from nbformat import NotebookNode

SNIPPET_PREFIX = "notebook/"

_GUARD = re.compile(r"""^if\s+__name__\s*==\s*(['"])__main__\1\s*:\s*(#.*)?$""")
_ASYNCIO_RUN = re.compile(r"^(\s*)asyncio\.run\((.+)\)\s*$")

INTRO = """\
# {title} (notebook edition)

The samples of the chapter *{title}*, one cell each, in
the order the chapter presents them. On the course site every sample cell has a
**Run** button that executes it against a fresh copy of the products database.

To run the notebook on your own machine, serve the seeded database first with
`make db` (it listens on `127.0.0.1:5432`, user `postgres`, password `password`).
Then start Jupyter with the repository's environment as its kernel, for example
`.venv/bin/pip install jupyterlab` once and `.venv/bin/jupyter lab`, open this
notebook and run the setup cell below before the samples.

Jupyter already runs an event loop, so the cells end with `await main()` where the
scripts in `code/` call `asyncio.run(main())`."""

SETUP_INTRO = """\
## Setup (local Jupyter only)

The samples import `from code.utils import async_timed`, where `code` is the
lesson's own package, in the `code/` folder of the repository. Python's standard
library also has a module called `code`, and IPython imports it while it starts,
so without this cell the import finds the wrong `code` and fails. The cell finds
the repository (above the folder Jupyter started in, or else where the `runner`
package of its environment comes from), puts it first on `sys.path` and forgets
the standard library's module. On the course site the runner does this for you.

If port 5432 is taken on your machine, serve the database on another one
(`python -m runner db --port 5433`) and set `WORKSHOP_DB_PORT=5433` in the
environment before starting Jupyter: the cell then sends the samples'
`port=5432` connections there."""

SETUP_CELL = """\
import os
import sys
from pathlib import Path


def find_repository() -> Path:
    \"\"\"The checkout holding code/utils.py: above the current folder, or where `runner` is installed from.\"\"\"
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "code" / "utils.py").is_file():
            return folder
    import importlib.util

    runner = importlib.util.find_spec("runner")
    if runner is not None and runner.origin is not None:
        folder = Path(runner.origin).resolve().parent.parent
        if (folder / "code" / "utils.py").is_file():
            return folder
    raise RuntimeError("start Jupyter inside the repository, or with its environment (make venv)")


repository = str(find_repository())
if repository in sys.path:
    sys.path.remove(repository)
sys.path.insert(0, repository)
if not hasattr(sys.modules.get("code"), "__path__"):
    sys.modules.pop("code", None)  # the standard library's `code`, imported by IPython

port = os.environ.get("WORKSHOP_DB_PORT")
if port:
    import functools

    import asyncpg

    def on_port(open_connection):
        \"\"\"Send connections made to port 5432 to the port `make db` really listens on.\"\"\"

        @functools.wraps(open_connection)
        def call(*args, **kwargs):
            if kwargs.get("port") == 5432:
                kwargs["port"] = int(port)
            return open_connection(*args, **kwargs)

        return call

    asyncpg.connect = on_port(asyncpg.connect)
    asyncpg.create_pool = on_port(asyncpg.create_pool)

print(f"lesson code from {repository}; database port {port or 5432}")"""


def _nbformat() -> Any:
    """nbformat, imported on first use; typed `Any` because nbformat's API is unannotated."""
    import nbformat

    return nbformat


def cell_source(script: str) -> str:
    """Turn a standalone script from `code/` into the source of a notebook cell.

    The `if __name__ == "__main__":` guard goes (its body is dedented into the
    top level) and a top-level `asyncio.run(main())` becomes `await main()`,
    because a notebook already runs an event loop. Scripts without an async
    entry point only lose the guard. Trailing blank lines are dropped.
    """
    out: list[str] = []
    lines = script.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if _GUARD.match(line):
            body: list[str] = []
            i += 1
            # The guard's body: indented or blank lines up to the next top-level line.
            while i < len(lines) and (not lines[i].strip() or lines[i][:1] in (" ", "\t")):
                body.append(lines[i])
                i += 1
            out.extend(textwrap.dedent("\n".join(body)).splitlines())
            continue
        out.append(line)
        i += 1
    for n, line in enumerate(out):
        match = _ASYNCIO_RUN.match(line)
        if match and not match.group(1):
            out[n] = f"await {match.group(2)}"
    return "\n".join(out).rstrip()


def _explanation(sample: Path, source: str) -> str:
    """The markdown cell before a sample: its `.md` file, else a heading and text from its docstring."""
    written = sample.with_suffix(".md")
    if written.is_file():
        return written.read_text(encoding="utf-8").rstrip()
    try:
        doc = ast.get_docstring(ast.parse(source))
    except SyntaxError:
        doc = None
    if not doc:
        return f"## {sample.stem}"
    first, _, rest = doc.strip().partition("\n")
    return f"## {first.strip()}" + (f"\n\n{rest.strip()}" if rest.strip() else "")


def _lesson(repo_root: Path, lesson: Lesson | str) -> Lesson:
    return lesson if isinstance(lesson, Lesson) else Lesson(repo_root, lesson)


def build_notebook(repo_root: Path, lesson: Lesson | str) -> NotebookNode:
    """Build one lesson's notebook: an introduction, a setup cell, then a markdown and a code cell per sample.

    The setup cell only matters in a local Jupyter; it carries no snippet, so the
    site shows it without a Run button.

    Cell ids are derived from the snippet ids so that building twice gives
    byte-identical files (the `--check` relies on it).
    """
    nbformat = _nbformat()
    v4 = nbformat.v4
    lesson = _lesson(repo_root, lesson)

    cells = [
        v4.new_markdown_cell(INTRO.format(title=lesson.title()), id="intro"),
        v4.new_markdown_cell(SETUP_INTRO, id="md-setup"),
        v4.new_code_cell(SETUP_CELL, id="setup"),
    ]
    for script in lesson.samples():
        sid = snippet_id(repo_root, script)
        source = script.read_text(encoding="utf-8")
        slug = sid.replace("/", "-").replace("_", "-")
        cells.append(v4.new_markdown_cell(_explanation(script, source), id=f"md-{slug}"))
        cells.append(
            v4.new_code_cell(
                cell_source(source),
                id=f"code-{slug}",
                metadata={"workshop": {"snippet": SNIPPET_PREFIX + sid}},
            )
        )
    nb = v4.new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "workshop": {"lesson": lesson.name},
        },
    )
    nbformat.validate(nb)
    return cast("NotebookNode", nb)


def render_notebook(repo_root: Path, lesson: Lesson | str) -> str:
    """The notebook as the exact text `write_notebook` stores."""
    return str(_nbformat().writes(build_notebook(repo_root, lesson))) + "\n"


def write_notebook(repo_root: Path, lesson: Lesson | str, path: Path | None = None) -> Path:
    """Write one lesson's notebook (by default to its place under docs/) and return its path."""
    lesson = _lesson(repo_root, lesson)
    target = path if path is not None else lesson.notebook
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_notebook(repo_root, lesson), encoding="utf-8")
    return target


def is_stale(repo_root: Path, lesson: Lesson | str, path: Path | None = None) -> bool:
    """True when the lesson's notebook is missing or differs from what `write_notebook` would write."""
    lesson = _lesson(repo_root, lesson)
    target = path if path is not None else lesson.notebook
    if not target.exists():
        return True
    return target.read_text(encoding="utf-8") != render_notebook(repo_root, lesson)


def generated_notebooks(repo_root: Path) -> dict[Path, str]:
    """Notebooks under docs/notebook/ that this generator wrote, with the lesson each was written for."""
    found: dict[Path, str] = {}
    for path in sorted((repo_root / NOTEBOOK_DIR).glob("*.ipynb")):
        try:
            lesson = json.loads(path.read_text(encoding="utf-8"))["metadata"]["workshop"]["lesson"]
        except (ValueError, KeyError, TypeError):
            continue  # a hand-made notebook: not ours to judge
        found[path] = str(lesson)
    return found


def orphans(repo_root: Path) -> list[Path]:
    """Generated notebooks that belong to no lesson any more (a lesson renamed, retitled or removed)."""
    current = {lesson.notebook for lesson in lessons(repo_root)}
    return [path for path in generated_notebooks(repo_root) if path not in current]


def problems(repo_root: Path = REPO_ROOT) -> list[str]:
    """What `python -m runner notebook` would change, each said with the fix."""
    found = [
        f"docs/{lesson.notebook_uri} is {'out of date' if lesson.notebook.exists() else 'missing'}: "
        "run `python -m runner notebook` and commit it"
        for lesson in lessons(repo_root)
        if is_stale(repo_root, lesson)
    ]
    found += [
        f"{path.relative_to(repo_root)} belongs to no lesson any more: `python -m runner notebook` removes it"
        for path in orphans(repo_root)
    ]
    return found


def write_all(repo_root: Path = REPO_ROOT) -> list[str]:
    """Bring every lesson's notebook up to date and remove orphaned ones; say what changed."""
    changed: list[str] = []
    for lesson in lessons(repo_root):
        if is_stale(repo_root, lesson):
            write_notebook(repo_root, lesson)
            changed.append(f"wrote docs/{lesson.notebook_uri}")
    for path in orphans(repo_root):
        path.unlink()
        changed.append(f"removed {path.relative_to(repo_root)} (it belongs to no lesson any more)")
    return changed


def main(argv: Sequence[str] | None = None, repo_root: Path = REPO_ROOT) -> int:
    """`python -m runner notebook [--check] [--output PATH LESSON]`."""
    parser = argparse.ArgumentParser(
        prog="python -m runner notebook",
        description="Write each lesson's notebook edition from its samples in code/.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a committed notebook is missing, out of date or orphaned",
    )
    parser.add_argument("--output", type=Path, default=None, help="write (or check) one lesson's notebook there")
    parser.add_argument("lesson", nargs="?", help="the lesson for --output, e.g. chapter_05")
    args = parser.parse_args(argv)
    if args.lesson is not None and args.output is None:
        parser.error("a lesson is only given with --output; without it every lesson's notebook is written")
    if args.output is not None:
        if args.lesson is None:
            parser.error("--output needs the lesson whose notebook it is, e.g. `--output x.ipynb chapter_05`")
        if args.check:
            if is_stale(repo_root, args.lesson, args.output):
                print(f"{args.output} is out of date: run `python -m runner notebook`", file=sys.stderr)
                return 1
            print(f"{args.output} is up to date")
            return 0
        write_notebook(repo_root, args.lesson, args.output)
        print(f"wrote {args.output}")
        return 0
    if args.check:
        found = problems(repo_root)
        for problem in found:
            print(problem, file=sys.stderr)
        if not found:
            print("every notebook is up to date")
        return 1 if found else 0
    for line in write_all(repo_root) or ["every notebook is up to date"]:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
