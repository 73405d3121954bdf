"""A copy of this repository in a temporary folder, to add a lesson or a mistake to and run the real tools on.

The commands run with the copy as their working directory and first on
PYTHONPATH, so `runner` (and the build hook, and the Markdown extension) come
from the copy and see the copy's `code/` and `docs/`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    "site",
    "site-zensical",
    ".cache",
    "test-artifacts",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "*.egg-info",
    "node_modules",
)
NAV_ANCHOR = "  - For maintainers: maintainers.md\n"

SAMPLE = '''\
"""Count the brands in the products database."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    print("brands:", await conn.fetchval("SELECT count(*) FROM brand"))
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
'''

PAGE = """\
# {title}

A lesson added by a test: one sample, its expected output below it.

<div class="workshop-run" data-snippet="{lesson}/01_brands" markdown>

```python title="code/{lesson}/01_brands.py"
--8<-- "{lesson}/01_brands.py"
```

</div>

??? example "Expected output"

    ```text
    --8<-- "{lesson}/01_brands.out"
    ```
"""


def copy_repo(dest: Path) -> Path:
    """The repository's sources (no virtualenv, builds or caches) copied to `dest`."""
    shutil.copytree(REPO, dest, ignore=_SKIP)
    return dest


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def add_to_nav(root: Path, *entries: str) -> None:
    """Add nav entries (`Title: path.md`) just before the maintainers' page."""
    config = root / "mkdocs.yml"
    text = config.read_text(encoding="utf-8")
    assert NAV_ANCHOR in text, "mkdocs.yml changed: update NAV_ANCHOR"
    lines = "".join(f"  - {entry}\n" for entry in entries)
    config.write_text(text.replace(NAV_ANCHOR, lines + NAV_ANCHOR), encoding="utf-8")


def add_lesson(root: Path, lesson: str = "chapter_99", title: str = "Throwaway lesson", *, nav: bool = True) -> None:
    """A maintainer's new lesson: a page, one sample and the nav entries (no expected output, no notebook yet)."""
    write(root, f"code/{lesson}/__init__.py", "")
    write(root, f"code/{lesson}/01_brands.py", SAMPLE)
    write(root, f"docs/{lesson.replace('_', '-')}/index.md", PAGE.format(title=title, lesson=lesson))
    if nav:
        slug = title.lower().replace(" ", "-")
        add_to_nav(root, f"{title}: {lesson.replace('_', '-')}/index.md", f"{title} notebook: notebook/{slug}.ipynb")


def environment(root: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(root),
        "NO_MKDOCS_2_WARNING": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


def run(root: Path, *args: str, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """`python <args>` in the copy; stdout and stderr together in `.stdout`."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=root,
        env=environment(root, **extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def build(root: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of the copy into its own site/."""
    return run(root, "-m", "mkdocs", "build", "--strict", "--site-dir", str(root / "site"))
