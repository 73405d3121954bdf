"""A Markdown extension: an include line shown as an example is shown, not performed.

pymdownx.snippets replaces every `--8<-- "file"` line with the file, even inside
a code block, and its own escape (`;--8<--`) would then be what a maintainer
reads in the raw page. This preprocessor runs just before snippets and escapes
the include lines inside fenced blocks whose language is `markdown` (or `md`):
the page source shows the line as it is meant to be copied, and the built page
shows the same. Listed under `markdown_extensions:` in mkdocs.yml, so MkDocs and
Zensical both apply it.
"""

from __future__ import annotations

import re
from typing import Any

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

# A fence line; a backtick fence's info string holds no backtick (CommonMark), which tells it from inline code.
_FENCE = re.compile(r"^[ \t]*(?:(?P<fence>`{3,})[ \t]*(?P<info>[^`\s]*)[^`]*|(?P<tilde>~{3,})[ \t]*(?P<tinfo>\S*).*)$")
_INCLUDE_LINE = re.compile(r"""^(?P<space>[ \t]*)(?P<line>-+8<-+(?:[ \t]+(?:"[^"\n]*"|'[^'\n]*'))?)\r?$""")
_MARKDOWN_LANGUAGES = {"markdown", "md"}
SNIPPETS_PRIORITY = 32
"""pymdownx.snippets' preprocessor priority; ours is one above it, so it runs first."""


def escape_example_includes(lines: list[str]) -> list[str]:
    """Escape `--8<--` lines inside ```markdown fences (nested fences are content of the outer one)."""
    out: list[str] = []
    fence: str | None = None
    example = False
    for line in lines:
        match = _FENCE.match(line)
        marker = (match.group("fence") or match.group("tilde")) if match else None
        info = (match.group("info") or match.group("tinfo") or "") if match else ""
        if fence is None:
            if marker:
                fence = marker
                example = info.lower() in _MARKDOWN_LANGUAGES
        elif marker and marker[0] == fence[0] and len(marker) >= len(fence):
            if not info:
                fence, example = None, False
        elif example:
            include = _INCLUDE_LINE.match(line)
            if include:
                line = f"{include.group('space')};{include.group('line')}"
        out.append(line)
    return out


class _EscapeExampleIncludes(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        return escape_example_includes(lines)


class ExampleIncludesExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:
        md.preprocessors.register(_EscapeExampleIncludes(md), "workshop_example_includes", SNIPPETS_PRIORITY + 1)


def makeExtension(**kwargs: Any) -> ExampleIncludesExtension:
    return ExampleIncludesExtension(**kwargs)
