"""The notebook edition of the chapter, generated from the scripts in `code/`.

The scripts stay the single source of truth: every code cell is derived from one
script by `cell_source`, and `python -m runner notebook --check` fails when the
committed notebook no longer matches what `build_notebook` would write.

nbformat is imported inside the functions that need it, because the runner
imports `cell_source` at serve time and must not pay for (or depend on) nbformat.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from nbformat import NotebookNode

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_PATH = Path("docs/notebook/asynchronous-database-interaction.ipynb")
CHAPTER = "chapter_05"
SNIPPET_PREFIX = "notebook/"

_GUARD = re.compile(r"""^if\s+__name__\s*==\s*(['"])__main__\1\s*:\s*(#.*)?$""")
_ASYNCIO_RUN = re.compile(r"^(\s*)asyncio\.run\((.+)\)\s*$")

INTRO = """\
# Asynchronous database interaction (notebook edition)

The samples of the chapter *Asynchronous database interaction*, one cell each, in
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

# One short explanation per sample, keyed by snippet id. A sample without an
# entry falls back to the first line of its module docstring.
EXPLANATIONS: dict[str, str] = {
    "chapter_05/01_connect": """\
## Connect

`asyncpg.connect` opens a single connection; awaiting it yields to the event loop
while the TCP handshake and the login happen. `get_server_version()` is not
awaited: it sends nothing, it reads the version the server announced at login.""",
    "chapter_05/02_one_connection_two_queries": """\
## Two queries, one connection

A connection carries one conversation at a time. Starting a second query while the
first is still in flight makes asyncpg raise `InterfaceError`: *another operation is
in progress*.""",
    "chapter_05/03_pool": """\
## A connection pool

A pool keeps several connections open. Each coroutine borrows one with
`pool.acquire()`, so the two queries really do run side by side.""",
    "chapter_05/04_pool_vs_sequential": """\
## 10,000 queries, concurrently and one by one

The same 10,000 queries through a pool of 6 connections, first all at once with
`gather`, then one after the other. `fetchrow` lets Postgres stop at the first
matching row, so each query is cheap and the whole cell takes seconds. How much
sooner the concurrent half finishes depends on how long each query waits: with
the database on the same machine the gap is small and varies with the free CPU
cores; across a network, where every round trip takes longer, it grows.""",
    "chapter_05/05_transaction": """\
## A transaction that rolls back

Both inserts use brand id 9999, so the second violates the primary key. Leaving
`async with conn.transaction()` with that error rolls back the first insert as
well: brand 9999 is absent afterwards.""",
    "chapter_05/06_sync_generator": """\
## A plain generator

`yield` turns a function into a generator. Its type is `Generator[int, None, None]`:
it yields `int`, accepts nothing through `send()` and returns nothing.""",
    "chapter_05/07_async_generator": """\
## An asynchronous generator

`async def` with `yield` makes an async generator, consumed with `async for`. Its
type is `AsyncGenerator[int, None]`: the yielded type first, then the sent type.""",
    "chapter_05/08_cursor": """\
## Streaming rows with a cursor

`conn.cursor()` returns an asynchronous iterable (a cursor factory, not a
generator): `async for` over it declares a cursor on the server and fetches the
rows in batches as the loop asks for them, instead of loading the whole result.
Postgres cursors only exist inside a transaction, hence
`async with conn.transaction()`; without it asyncpg raises
`NoActiveSQLTransactionError`.""",
    "chapter_05/09_query_methods": """\
## The query methods

`fetch` returns every row, `fetchrow` the first, `fetchval` one value, `execute`
the server's status and `executemany` runs one statement per tuple of arguments.
Values always travel as parameters, `$1`, `$2`, never inside the SQL text.""",
    "chapter_05/10_sql_injection": """\
## Why SQL is never built by formatting strings

A value formatted into the SQL text can change the query: the crafted name returns
every brand, and an honest name with an apostrophe is a syntax error. As `$1` the
same strings are only values.""",
    "chapter_05/11_timeout": """\
## Giving up on a slow query

`asyncio.timeout` cancels the waiting task; asyncpg then asks the server to cancel
the query too, so nothing keeps sleeping there, and the connection can be used
again.""",
    "chapter_05/12_command_timeout": """\
## A timeout for every query

`command_timeout` gives every query on the connection a time limit; the `timeout=`
argument of one call replaces it for that call.""",
    "chapter_05/13_async_with": """\
## Connection lifetime

A pool opened with `async with` is closed when the block ends; a connection from
`pool.acquire()` goes back to the pool when its block ends, even when the block
fails, and using it afterwards raises `InterfaceError`.""",
    "chapter_05/14_release_in_transaction": """\
## A connection released inside a transaction

asyncpg resets a connection before lending it again: it warns about the open
transaction and rolls it back, so the next borrower never sees the uncommitted
insert.""",
    "chapter_05/15_error_in_transaction": """\
## An error inside a transaction

After a failed statement, PostgreSQL refuses every other statement of the
transaction, and its COMMIT becomes a rollback. A nested `conn.transaction()` is a
savepoint: it rolls back only its own part.""",
}


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


def chapter_scripts(repo_root: Path, chapter: str = CHAPTER) -> list[Path]:
    """The chapter's samples in chapter order (their file names start with 01_, 02_...)."""
    return sorted(p for p in (repo_root / "code" / chapter).glob("*.py") if not p.name.startswith("_"))


def snippet_id(repo_root: Path, script: Path) -> str:
    """`code/chapter_05/03_pool.py` -> `chapter_05/03_pool`."""
    return script.relative_to(repo_root / "code").with_suffix("").as_posix()


def _docstring_summary(source: str) -> str:
    match = re.match(r'\s*(?:"""|\'\'\')\s*(.+?)\s*(?:\n|"""|\'\'\')', source)
    return match.group(1) if match else ""


def build_notebook(repo_root: Path = REPO_ROOT, chapter: str = CHAPTER) -> NotebookNode:
    """Build the notebook edition: an introduction, a setup cell, then a markdown and a code cell per sample.

    The setup cell only matters in a local Jupyter; it carries no snippet, so the
    site shows it without a Run button.

    Cell ids are derived from the snippet ids so that building twice gives
    byte-identical files (the `--check` relies on it).
    """
    nbformat = _nbformat()
    v4 = nbformat.v4

    cells = [
        v4.new_markdown_cell(INTRO, id="intro"),
        v4.new_markdown_cell(SETUP_INTRO, id="md-setup"),
        v4.new_code_cell(SETUP_CELL, id="setup"),
    ]
    for script in chapter_scripts(repo_root, chapter):
        sid = snippet_id(repo_root, script)
        source = script.read_text(encoding="utf-8")
        slug = sid.replace("/", "-").replace("_", "-")
        text = EXPLANATIONS.get(sid) or f"## {script.stem}\n\n{_docstring_summary(source)}"
        cells.append(v4.new_markdown_cell(text, id=f"md-{slug}"))
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
        },
    )
    nbformat.validate(nb)
    return cast("NotebookNode", nb)


def render_notebook(repo_root: Path = REPO_ROOT) -> str:
    """The notebook as the exact text `write_notebook` stores."""
    return str(_nbformat().writes(build_notebook(repo_root))) + "\n"


def write_notebook(path: Path | None = None, repo_root: Path = REPO_ROOT) -> Path:
    """Write the notebook (by default to its place under docs/) and return its path."""
    target = path if path is not None else repo_root / NOTEBOOK_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_notebook(repo_root), encoding="utf-8")
    return target


def is_stale(path: Path | None = None, repo_root: Path = REPO_ROOT) -> bool:
    """True when the committed notebook differs from what `write_notebook` would write."""
    target = path if path is not None else repo_root / NOTEBOOK_PATH
    if not target.exists():
        return True
    return target.read_text(encoding="utf-8") != render_notebook(repo_root)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m runner notebook [--check] [--output PATH]`."""
    parser = argparse.ArgumentParser(
        prog="python -m runner notebook",
        description="Write the notebook edition of the chapter from the scripts in code/.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the committed notebook is out of date",
    )
    parser.add_argument("--output", type=Path, default=None, help=f"where to write (default: {NOTEBOOK_PATH})")
    args = parser.parse_args(argv)
    target: Path = args.output if args.output is not None else REPO_ROOT / NOTEBOOK_PATH
    if args.check:
        if is_stale(target):
            print(
                f"{target} is out of date: run `python -m runner notebook` and commit it",
                file=sys.stderr,
            )
            return 1
        print(f"{target} is up to date")
        return 0
    write_notebook(target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
