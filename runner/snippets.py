"""The published samples: every script under `code/chapter_*/`, by snippet id.

A snippet id is the script's path under `code/` without `.py`
(`chapter_05/03_pool`). The notebook edition's cells are snippets too, under
`notebook/<id>`, built from the same scripts.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

from .settings import CODE_DIR, REPO_ROOT

NOTEBOOK_PREFIX = "notebook/"


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
    return sorted(p for p in code_dir.glob("chapter_*/*.py") if p.name != "__init__.py")


def load_catalogue(code_dir: Path = CODE_DIR) -> dict[str, Snippet]:
    from .notebook import cell_source

    catalogue: dict[str, Snippet] = {}
    for path in sample_paths(code_dir):
        snippet_id = path.relative_to(code_dir).with_suffix("").as_posix()
        source = path.read_text()
        relative = path.relative_to(REPO_ROOT).as_posix()
        title = _title(source, snippet_id)
        catalogue[snippet_id] = Snippet(snippet_id, title, relative, source)
        notebook_id = NOTEBOOK_PREFIX + snippet_id
        catalogue[notebook_id] = Snippet(notebook_id, title, relative, cell_source(source))
    return catalogue
