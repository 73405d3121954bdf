"""The published samples: every sample of every lesson under `code/`, by snippet id.

A snippet id is the script's path under `code/` without `.py`
(`chapter_05/03_pool`). The notebook editions' cells are snippets too, under
`notebook/<id>`, built from the same scripts. Which scripts are samples is
decided in `lessons.py`.
"""

from __future__ import annotations

import ast
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from . import lessons
from .settings import CODE_DIR

NOTEBOOK_PREFIX = "notebook/"
log = logging.getLogger("runner.snippets")


@dataclass(frozen=True)
class Snippet:
    id: str
    title: str
    path: str
    code: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.code.encode()).hexdigest()

    def describe(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "path": self.path, "sha256": self.sha256}


def _title(source: str, fallback: str) -> str:
    try:
        doc = ast.get_docstring(ast.parse(source))
    except SyntaxError:
        doc = None
    return doc.strip().splitlines()[0] if doc else fallback


def sample_paths(code_dir: Path = CODE_DIR) -> list[Path]:
    return lessons.sample_paths(code_dir.parent)


def load_catalogue(code_dir: Path = CODE_DIR) -> dict[str, Snippet]:
    from .notebook import cell_source

    root = code_dir.parent
    catalogue: dict[str, Snippet] = {}
    for path in sample_paths(code_dir):
        snippet_id = lessons.snippet_id(root, path)
        source = path.read_text(encoding="utf-8")
        relative = path.relative_to(root).as_posix()
        title = _title(source, snippet_id)
        catalogue[snippet_id] = Snippet(snippet_id, title, relative, source)
        notebook_id = NOTEBOOK_PREFIX + snippet_id
        catalogue[notebook_id] = Snippet(notebook_id, title, relative, cell_source(source))
    return catalogue


Stamp = tuple[tuple[str, int, int], ...]


def _stamp(paths: list[Path]) -> Stamp:
    """Name, modification time and size of each path that exists."""
    stamp: list[tuple[str, int, int]] = []
    for path in paths:
        try:
            status = path.stat()
        except FileNotFoundError:  # removed since it was listed: the stamp differs, the next look lists again
            continue
        stamp.append((str(path), status.st_mtime_ns, status.st_size))
    return tuple(stamp)


def _listing(code_dir: Path) -> tuple[list[Path], Stamp]:
    """What `Catalogue.current` watches, and its stamp: `code/`, each folder a lesson can be in, each sample.

    Each folder is stamped before it is listed: a file added or removed afterwards changes
    the folder's modification time, so the next look sees it. Folders that are no lesson
    yet are watched too: their first sample makes them one."""
    stamp = _stamp([code_dir])
    folders = sorted(p for p in code_dir.glob(lessons.LESSON_GLOB) if p.is_dir())
    stamp += _stamp(folders)
    samples = sample_paths(code_dir)
    return [code_dir, *folders, *samples], stamp + _stamp(samples)


class Catalogue:
    """The snippets as `code/` holds them now, for a runner that serves while a maintainer edits.

    `current()` stats `code/`, the lesson folders and the samples (tens of microseconds for
    a course): a sample added, removed or renamed changes its folder's modification time,
    an edit the file's. Only then does it list the folders again and reload, so a sample
    added or edited while the runner serves is what the next run executes, with no watcher
    to own.
    """

    def __init__(self, code_dir: Path = CODE_DIR) -> None:
        self.code_dir = code_dir
        self._watched: list[Path] = []
        self._stamp: Stamp | None = None
        self._snippets: dict[str, Snippet] = {}
        self.loads = 0

    def current(self) -> dict[str, Snippet]:
        if self._stamp is not None and _stamp(self._watched) == self._stamp:
            return self._snippets
        self._watched, stamp = _listing(self.code_dir)
        if stamp != self._stamp:
            self._snippets = load_catalogue(self.code_dir)
            if self._stamp is not None:
                log.info("samples changed in %s: reloaded %d snippets", self.code_dir, len(self._snippets))
            self._stamp = stamp
            self.loads += 1
        return self._snippets
