"""MkDocs build hook for the course site (registered under `hooks:` in mkdocs.yml).

1. Notebook pages: mkdocs-jupyter does not render cell metadata, so the Run widget
   could not tell which snippet a cell is. Each rendered code cell carries its cell
   id (`id="cell-id=..."`); this hook looks the id up in the notebook and adds the
   cell's `metadata.workshop.snippet` as a `data-snippet` attribute.
2. Offline: nbconvert's page template pulls MathJax and Mermaid from a CDN. The
   notebook uses neither, and the site must work with no network, so those script
   elements are dropped.
3. Every runnable sample (`data-snippet`) gets `data-sha256`, the digest of its
   published code (the one /api/snippets gives): the widget keeps a reader's edit
   tied to it, and sets the edit aside when the sample changes.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

_CELL_ID = re.compile(r'id="cell-id=([^"]+)"')
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)
_SRC = re.compile(r"""\bsrc\s*=\s*(["'])(.*?)\1""", re.I)
_SNIPPET_ATTR = re.compile(r'data-snippet="([^"]+)"')
_CDN_HINTS = ("cdnjs.cloudflare.com", "unpkg.com", "cdn.jsdelivr.net", "text/x-mathjax-config")


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
    from runner.snippets import load_catalogue

    catalogue = load_catalogue()

    def add(match: re.Match[str]) -> str:
        snippet = catalogue.get(html.unescape(match.group(1)))
        return match.group(0) if snippet is None else f'{match.group(0)} data-sha256="{snippet.sha256}"'

    return _SNIPPET_ATTR.sub(add, output)


def on_post_page(output: str, page: Any, config: Any, **_: Any) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        output = _tag_cells(output, _snippets_by_cell_id(Path(page.file.abs_src_path)))
        output = _drop_cdn_scripts(output)
    return _add_hashes(output)
