"""The course's lessons, found from the files: no list of lessons or samples is kept anywhere.

A lesson is a folder `code/chapter_NN/` holding its samples and a page
`docs/chapter-NN/index.md` that shows them. A sample is a script in that folder
(`01_connect.py`; names starting with `_` are not samples), its expected output
sits beside it (`01_connect.out`) and its snippet id is its path under `code/`
without `.py` (`chapter_05/01_connect`). Each lesson has a notebook edition,
`docs/notebook/<slug of the page's title>.ipynb`, generated from its samples.

Everything here takes the repository root as an argument, so the build hook, the
tests and the commands can look at any checkout (a test adds a lesson to a copy).
This module imports nothing heavy: the site build imports it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .lesson import REPO_ROOT as REPO_ROOT  # re-exported: one definition, in the child's light module

LESSON_GLOB = "chapter_*"
NOTEBOOK_DIR = Path("docs/notebook")
EXPECT_ERROR = re.compile(r"^#\s*expect:\s*error\s*$", re.M)
"""The marker of a sample that is meant to fail: a line `# expect: error` anywhere in it."""

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)


CHECK_SUFFIX = "_check"
SOLUTION_SUFFIX = "_solution"


def is_sample(path: Path) -> bool:
    """A lesson script: not `__init__.py` nor any other `_private.py` module, nor an exercise's
    solution (`exNN_name_solution.py`) or check (`exNN_name_check.py`)."""
    return (
        path.suffix == ".py"
        and not path.name.startswith("_")
        and not path.stem.endswith((CHECK_SUFFIX, SOLUTION_SUFFIX))
    )


def check_path(sample: Path) -> Path:
    """`exNN_name.py` -> `exNN_name_check.py`: the check that makes a sample an exercise."""
    return sample.with_name(f"{sample.stem}{CHECK_SUFFIX}.py")


def solution_path(sample: Path) -> Path:
    return sample.with_name(f"{sample.stem}{SOLUTION_SUFFIX}.py")


def is_exercise(sample: Path) -> bool:
    """A sample with a check beside it: its starter; it needs no expected output, its check judges it."""
    return check_path(sample).is_file()


def slugify(title: str) -> str:
    """`Asynchronous database interaction` -> `asynchronous-database-interaction`."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@dataclass(frozen=True)
class Lesson:
    root: Path
    name: str
    """The folder under `code/`, e.g. `chapter_05`."""

    @property
    def code_dir(self) -> Path:
        return self.root / "code" / self.name

    @property
    def page_uri(self) -> str:
        """The page's path under `docs/`, as MkDocs names it: `chapter-05/index.md`."""
        return f"{self.name.replace('_', '-')}/index.md"

    @property
    def page(self) -> Path:
        return self.root / "docs" / self.page_uri

    def samples(self) -> list[Path]:
        """The lesson's samples in lesson order (their names start with 01_, 02_...)."""
        return sorted(p for p in self.code_dir.glob("*.py") if is_sample(p))

    def title(self) -> str:
        """The page's first `# ` heading; the folder name while the page is missing or has none."""
        if not self.page.is_file():
            return self.name
        text = _FRONT_MATTER.sub("", self.page.read_text(encoding="utf-8"), count=1)
        match = _H1.search(text)
        return match.group(1) if match else self.name

    @property
    def notebook_uri(self) -> str:
        """The notebook edition's path under `docs/`: `notebook/asynchronous-database-interaction.ipynb`."""
        return f"notebook/{slugify(self.title())}.ipynb"

    @property
    def notebook(self) -> Path:
        return self.root / "docs" / self.notebook_uri


def lessons(root: Path = REPO_ROOT) -> list[Lesson]:
    """Every lesson folder under `code/`, in course order.

    A folder counts once it holds a Python file (`__init__.py` will do), so one
    left with only `__pycache__/` after its lesson was removed is not a lesson.
    """
    folders = sorted((root / "code").glob(LESSON_GLOB))
    return [Lesson(root, p.name) for p in folders if p.is_dir() and any(p.glob("*.py"))]


def sample_paths(root: Path = REPO_ROOT) -> list[Path]:
    """Every sample of every lesson, in course order."""
    return [path for lesson in lessons(root) for path in lesson.samples()]


def snippet_id(root: Path, sample: Path) -> str:
    """`<root>/code/chapter_05/03_pool.py` -> `chapter_05/03_pool`."""
    return sample.relative_to(root / "code").with_suffix("").as_posix()


def sample_path(root: Path, snippet: str) -> Path:
    """`chapter_05/03_pool` -> `<root>/code/chapter_05/03_pool.py`."""
    return root / "code" / f"{snippet}.py"


def expected_path(sample: Path) -> Path:
    return sample.with_suffix(".out")


def meant_to_fail(source: str) -> bool:
    """True when the sample carries the `# expect: error` line: its run must end in an error."""
    return EXPECT_ERROR.search(source) is not None


def write_expected_command(snippet: str) -> str:
    """The command that records (or re-records) one sample's expected output."""
    return f"python -m runner expected --write {snippet}"


def problems(root: Path = REPO_ROOT) -> list[str]:
    """Mistakes a maintainer can make in `code/` and `docs/` that need no run to see, each with its fix."""
    found: list[str] = []
    for lesson in lessons(root):
        if not lesson.page.is_file():
            found.append(
                f"code/{lesson.name}/ has no page: write docs/{lesson.page_uri} "
                "and add it to `nav` in mkdocs.yml (see docs/maintainers.md, 'Add a lesson')"
            )
        samples = lesson.samples()
        if not samples:
            found.append(f"code/{lesson.name}/ has no samples: add one (see docs/maintainers.md, 'Add a sample')")
        for sample in samples:
            if is_exercise(sample):
                if not solution_path(sample).is_file():
                    found.append(
                        f"code/{snippet_id(root, sample)}.py is an exercise without a solution: "
                        f"write {solution_path(sample).name} beside it"
                    )
                continue
            if not expected_path(sample).is_file():
                sid = snippet_id(root, sample)
                found.append(f"code/{sid}.py has no expected output: record it with `{write_expected_command(sid)}`")
        for check in sorted(lesson.code_dir.glob(f"*{CHECK_SUFFIX}.py")):
            starter = check.with_name(check.name.removesuffix(f"{CHECK_SUFFIX}.py") + ".py")
            if not starter.is_file():
                found.append(
                    f"code/{lesson.name}/{check.name} checks no exercise: its starter {starter.name} is missing"
                )
    return found
