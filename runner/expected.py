"""Expected output of each sample, kept beside it as `<name>.out`, and `python -m runner expected`.

The runner's real output is normalised so that what varies from run to run or
machine to machine does not make it stale:

* durations printed by `async_timed` (`in 1.2345 second(s)`) become `in N.NNNN second(s)`;
* memory addresses (`at 0x7f3a...`) become `at 0x...`;
* the server version (`ServerVersion(major=18, ...)`) becomes `ServerVersion(...)`.

Everything else must match exactly. A sample must run without error, unless it
carries the line `# expect: error`: then it must end in an error (and its
traceback is what it is expected to print). The command never records a run that
breaks that rule, so a crash cannot become a sample's "expected" output.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from . import lessons
from .settings import CODE_DIR, Settings

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


def expected_path(snippet_id: str, code_dir: Path = CODE_DIR) -> Path:
    return (code_dir / snippet_id).with_suffix(".out")


def read_expected(snippet_id: str, code_dir: Path = CODE_DIR) -> str | None:
    path = expected_path(snippet_id, code_dir)
    return path.read_text(encoding="utf-8") if path.exists() else None


def expected_status(source: str) -> str:
    """The status a sample's run must end with: `error` for a sample marked `# expect: error`, else `ok`."""
    return "error" if lessons.meant_to_fail(source) else "ok"


def wrong_ending(snippet_id: str, source: str, summary: dict[str, Any]) -> str | None:
    """Why this run must not be taken as the sample's expected output, or None when it may."""
    status, want = summary["status"], expected_status(source)
    if status == want:
        return None
    how = f"status {status}, exit code {summary.get('exit_code')}"
    if summary.get("reason"):
        how += f": {summary['reason']}"
    if status in {"timeout", "killed", "cancelled"}:
        return (
            f"{snippet_id} did not finish ({how}). A sample must end by itself within the runner's "
            f"time and output limits: make code/{snippet_id}.py do less, or run it again on a less busy machine"
        )
    if want == "ok":
        return (
            f"{snippet_id} did not run cleanly ({how}). Fix the sample; or, if it is meant to fail, "
            f"add a line `# expect: error` to code/{snippet_id}.py and record it again"
        )
    return (
        f"{snippet_id} is marked `# expect: error` but its run ended with {how}. "
        f"Make it fail as the lesson intends, or remove the marker from code/{snippet_id}.py"
    )


def stale_message(snippet_id: str, expected: str | None, actual: str) -> str:
    """A stale or missing `.out`, the difference, and the command that records the new output."""
    fix = lessons.write_expected_command(snippet_id)
    if expected is None:
        return f"{snippet_id} has no expected output (code/{snippet_id}.out): record it with `{fix}`\n"
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            f"code/{snippet_id}.out (expected)",
            "this run",
        )
    )
    return f"{snippet_id}: the expected output is stale; if this run's output is right, record it with `{fix}`\n" + diff


def resolve(targets: Sequence[str], code_dir: Path = CODE_DIR) -> list[str]:
    """Snippet ids for what the command was given: ids, lesson folders or paths; nothing means every sample.

    Exercises' starters are left out: they have no expected output (`python -m runner check` runs them).

    Raises ValueError naming what matches no sample.
    """
    root = code_dir.parent
    every = [lessons.snippet_id(root, p) for p in lessons.sample_paths(root) if not lessons.is_exercise(p)]
    if not targets:
        return every
    chosen: list[str] = []
    for target in targets:
        name = target.removeprefix("code/").removesuffix(".py").removesuffix(".out").rstrip("/")
        matches = [sid for sid in every if sid == name or sid.startswith(name + "/")]
        if not matches:
            example = every[0] if every else "chapter_NN/01_name"
            raise ValueError(f"{target!r} is neither a sample nor a lesson; samples look like {example}")
        chosen += [sid for sid in matches if sid not in chosen]
    return chosen


async def run_command(settings: Settings, targets: Sequence[str], *, write: bool, out: TextIO = sys.stdout) -> int:
    """Run the chosen samples on a runner of their own; check their `.out` files, or write them.

    The runner keeps no sandboxes prepared ahead (pool size 0), so when it stops
    nothing is left half-made: no run database outlives the command.
    """
    from .runs import collect
    from .runtime import Runtime

    try:
        chosen = resolve(targets)
    except ValueError as error:
        print(f"error: {error}", file=out)
        return 2
    runtime = Runtime(dataclasses.replace(settings, pool_size=0))
    await runtime.start()
    failures = 0
    try:
        assert runtime.service is not None
        catalogue = runtime.snippets
        for snippet_id in chosen:
            snippet = catalogue[snippet_id]
            summary = await collect(await runtime.service.start(snippet, None))
            actual = normalise(combined_output(summary))
            refusal = wrong_ending(snippet_id, snippet.code, summary)
            if refusal is not None:
                failures += 1
                print(f"refused: {refusal}\n--- its output ---\n{actual}--- end ---", file=out)
                continue
            expected = read_expected(snippet_id)
            if write:
                if expected == actual:
                    print(f"unchanged {expected_path(snippet_id).relative_to(CODE_DIR.parent)}", file=out)
                else:
                    expected_path(snippet_id).write_text(actual, encoding="utf-8")
                    print(f"wrote {expected_path(snippet_id).relative_to(CODE_DIR.parent)}", file=out)
            elif expected != actual:
                failures += 1
                print(stale_message(snippet_id, expected, actual), file=out)
            else:
                print(f"ok {snippet_id}", file=out)
    finally:
        await runtime.stop()
    return 1 if failures else 0
