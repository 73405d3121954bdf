"""`python -m runner check`: run an exercise and its check at home, as the site does.

A learner runs `make db` (a seeded PostgreSQL on 127.0.0.1:5432), edits an
exercise's starter, and asks for a verdict. The command starts a runner of its own
against that server (the same code path as the site: a fresh copy of the course
database for the run, the wire record, the check in a process of its own), prints
what the code printed and then the verdict. Exit status: 0 solved, 1 not yet,
2 for a wrong command.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TextIO

from . import lessons
from .errors import WorkshopError
from .settings import REPO_ROOT, Settings

HOME_DATABASE_URL = "postgresql://postgres:password@127.0.0.1:5432/postgres"
"""The server `make db` serves (user postgres, password password)."""


def exercise_ids(root: Path = REPO_ROOT) -> list[str]:
    return [lessons.snippet_id(root, p) for p in lessons.sample_paths(root) if lessons.is_exercise(p)]


def choose_code(exercise: str, file: str | None, *, solution: bool, root: Path = REPO_ROOT) -> str:
    """The code to judge: FILE, the solution, or the starter; ValueError says what is wrong."""
    if exercise not in exercise_ids(root):
        known = ", ".join(exercise_ids(root)) or "none yet"
        raise ValueError(f"{exercise!r} is not an exercise; the exercises are: {known}")
    starter = lessons.sample_path(root, exercise)
    path = Path(file) if file else lessons.solution_path(starter) if solution else starter
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None


async def check_command(
    settings: Settings,
    exercise: str,
    file: str | None,
    *,
    solution: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    from .runs import collect
    from .runtime import Runtime

    try:
        code = choose_code(exercise, file, solution=solution)
    except ValueError as error:
        print(f"error: {error}", file=out)
        return 2
    if settings.database_url is None:
        settings = dataclasses.replace(settings, database_url=HOME_DATABASE_URL)
    runtime = Runtime(dataclasses.replace(settings, pool_size=0))
    try:
        await runtime.start()
        assert runtime.service is not None
        summary = await collect(await runtime.service.start(runtime.snippets[exercise], code))
    except WorkshopError as error:
        print(f"error: {error} (is `make db` running?)", file=out)
        return 2
    finally:
        await runtime.stop()
    for event in summary["output"]:
        out.write(event["text"])
    if summary["reason"]:
        print(f"[{summary['status']}: {summary['reason']}]", file=out)
    verdict = summary["check"]
    print(file=out)
    print(verdict_line(verdict["passed"], verdict["judged"], verdict["message"]), file=out)
    return 0 if verdict["passed"] else 1


def verdict_line(passed: bool, judged: bool, message: str) -> str:
    """`Solved: ...`, `Not yet: ...` or `Not judged: ...`, without saying it twice."""
    label = "Solved" if passed else "Not yet" if judged else "Not judged"
    return message if message.startswith(label) else f"{label}: {message}"
