"""MkDocs build hook for the course site (registered under `hooks:` in mkdocs.yml).

1. Maintainer mistakes fail the build (`--strict` turns these warnings into a
   failure), each with the fix in the message: a lesson folder without a page, a
   sample without expected output, a missing, stale or orphaned notebook, a page
   left out of the nav, a `data-snippet` id that names no sample, and a sample
   its lesson's page does not show.
2. Notebook pages: mkdocs-jupyter does not render cell metadata, so the Run widget
   could not tell which snippet a cell is. Each rendered code cell carries its cell
   id (`id="cell-id=..."`); this hook looks the id up in the notebook and adds the
   cell's `metadata.workshop.snippet` as a `data-snippet` attribute.
3. Offline: nbconvert's page template pulls MathJax and Mermaid from a CDN. The
   notebook uses neither, and the site must work with no network, so those script
   elements are dropped.
4. Every runnable sample (`data-snippet`) gets `data-sha256`, the digest of its
   published code (the one /api/snippets gives): the widget keeps a reader's edit
   tied to it, and sets the edit aside when the sample changes.
"""

from __future__ import annotations

import difflib
import html
import json
import logging
import re
from pathlib import Path
from typing import Any

from runner import lessons, notebook
from runner.snippets import Snippet, load_catalogue

# A logger under "mkdocs." so that `mkdocs build --strict` counts its warnings.
log = logging.getLogger("mkdocs.hooks.workshop")

_CELL_ID = re.compile(r'id="cell-id=([^"]+)"')
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)
_SRC = re.compile(r"""\bsrc\s*=\s*(["'])(.*?)\1""", re.I)
_SNIPPET_ATTR = re.compile(r'data-snippet="([^"]+)"')
_CDN_HINTS = ("cdnjs.cloudflare.com", "unpkg.com", "cdn.jsdelivr.net", "text/x-mathjax-config")
_DATA_SNIPPET = re.compile(r'<[a-zA-Z][^<>]*?\bdata-snippet="([^"]*)"')  # on an element, not in shown code


class _Build:
    """What one build learns about the repository before it renders pages."""

    root = Path.cwd()
    catalogue: dict[str, Snippet] = {}  # noqa: RUF012 - one build at a time
    known_snippets: frozenset[str] = frozenset()
    shown: dict[str, set[str]] = {}  # noqa: RUF012 - one build at a time


def on_config(config: Any, **_: Any) -> Any:
    _Build.root = Path(config.config_file_path).resolve().parent
    _Build.shown = {}
    return config


def on_files(files: Any, config: Any, **_: Any) -> Any:
    root = _Build.root
    for problem in lessons.problems(root) + notebook.problems(root):
        log.warning(problem)
    _Build.catalogue = load_catalogue(root / "code")
    _Build.known_snippets = frozenset(_Build.catalogue)
    return files


def on_nav(nav: Any, config: Any, files: Any, **_: Any) -> Any:
    in_nav = {page.file.src_uri for page in nav.pages}
    for file in files.documentation_pages():
        if file.inclusion.is_in_nav() and file.src_uri not in in_nav:
            log.warning(
                f"docs/{file.src_uri} is not in the nav: add it under `nav:` in mkdocs.yml "
                "(or list it under `not_in_nav:` if it is meant to be reachable only by links)"
            )
    return nav


def _check_snippet_ids(output: str, page: Any) -> None:
    shown = {html.unescape(match.group(1)) for match in _DATA_SNIPPET.finditer(output)}
    _Build.shown[page.file.src_uri] = shown
    for snippet in sorted(shown - _Build.known_snippets):
        close = difflib.get_close_matches(snippet, sorted(_Build.known_snippets), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"there is no code/{snippet}.py"
        log.warning(
            f'docs/{page.file.src_uri}: data-snippet="{snippet}" names no sample, so its Run button '
            f"would fail: {hint} (a snippet id is the sample's path under code/ without .py)"
        )


def on_post_build(config: Any, **_: Any) -> None:
    for lesson in lessons.lessons(_Build.root):
        shown = _Build.shown.get(lesson.page_uri)
        if shown is None:
            continue  # no page, already reported
        for sample in lesson.samples():
            sid = lessons.snippet_id(_Build.root, sample)
            if sid not in shown:
                log.warning(
                    f"code/{sid}.py is not shown on docs/{lesson.page_uri}: add a "
                    f'<div class="workshop-run" data-snippet="{sid}" markdown> block that includes it '
                    "(see docs/maintainers.md, 'Add a runnable sample')"
                )


def _snippets_by_cell_id(notebook: Path) -> dict[str, str]:
    data = json.loads(notebook.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for cell in data.get("cells", []):
        snippet = cell.get("metadata", {}).get("workshop", {}).get("snippet")
        if cell.get("cell_type") == "code" and cell.get("id") and snippet:
            found[cell["id"]] = snippet
    return found


def _tag_cells(output: str, snippets: dict[str, str]) -> str:
    def add(match: re.Match[str]) -> str:
        snippet = snippets.get(html.unescape(match.group(1)))
        if snippet is None:
            return match.group(0)
        return f'{match.group(0)} data-snippet="{html.escape(snippet)}"'

    return _CELL_ID.sub(add, output)


def _drop_cdn_scripts(output: str) -> str:
    def keep(match: re.Match[str]) -> str:
        attrs, body = match.group(1), match.group(2)
        src = _SRC.search(attrs)
        if src is not None and (not src.group(2) or re.match(r"(https?:)?//", src.group(2))):
            return ""  # an external (or empty, from an unset MathJax URL) script
        if any(hint in attrs or hint in body for hint in _CDN_HINTS):
            return ""  # an inline loader that imports from a CDN
        return match.group(0)

    return _SCRIPT.sub(keep, output)


def _add_hashes(output: str) -> str:
    def add(match: re.Match[str]) -> str:
        snippet = _Build.catalogue.get(html.unescape(match.group(1)))
        return match.group(0) if snippet is None else f'{match.group(0)} data-sha256="{snippet.sha256}"'

    return _SNIPPET_ATTR.sub(add, output)


def on_post_page(output: str, page: Any, config: Any, **_: Any) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        output = _tag_cells(output, _snippets_by_cell_id(Path(page.file.abs_src_path)))
        output = _drop_cdn_scripts(output)
    _check_snippet_ids(output, page)
    return _add_hashes(output)
