"""Expected output of each sample, kept beside it as `<name>.out`.

The runner's real output is normalised so that what varies from run to run or
machine to machine does not make it stale:

* durations printed by `async_timed` (`in 1.2345 second(s)`) become `in N.NNNN second(s)`;
* memory addresses (`at 0x7f3a...`) become `at 0x...`;
* the server version (`ServerVersion(major=18, ...)`) becomes `ServerVersion(...)`.

Everything else must match exactly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .settings import CODE_DIR

RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"in \d+\.\d+ second\(s\)"), "in N.NNNN second(s)"),
    (re.compile(r"0x[0-9a-fA-F]+"), "0x..."),
    (re.compile(r"ServerVersion\([^)]*\)"), "ServerVersion(...)"),
]


def normalise(text: str) -> str:
    for pattern, replacement in RULES:
        text = pattern.sub(replacement, text)
    return text


def combined_output(summary: dict[str, Any]) -> str:
    """stdout and stderr in the order they arrived, as a reader sees them."""
    return "".join(event["text"] for event in summary["output"])


def expected_path(snippet_id: str) -> Path:
    return (CODE_DIR / snippet_id).with_suffix(".out")


def read_expected(snippet_id: str) -> str | None:
    path = expected_path(snippet_id)
    return path.read_text() if path.exists() else None
