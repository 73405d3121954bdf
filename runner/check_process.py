"""The check's side of an exercise run: load the check, give it the result, return the verdict.

This runs in a sandbox child of its own (`runner/child.py` with a `check` job),
started once every process of the learner's run is gone, so the learner's code
cannot reach the modules or the memory used here. The check's source comes in
the job from the runner, not from a file the sandbox could change.
"""

from __future__ import annotations

import asyncio
import traceback
import types
from typing import Any

import asyncpg

from runner.checking import NotSolved, Result

BROKEN = "The check itself failed, which is a bug of the course, not of your code"


def load_check(source: str, filename: str) -> Any:
    module = types.ModuleType("exercise_check")
    module.__file__ = filename
    exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)
    check = getattr(module, "check", None)
    if check is None or not asyncio.iscoroutinefunction(check):
        raise TypeError(f"{filename} defines no `async def check(result)`")
    return check


async def judge(job: dict[str, Any], connect: dict[str, Any]) -> tuple[bool, str]:
    check = load_check(job["source"], job["filename"])
    result = Result.from_record(job["result"])
    # names mean what they mean in the template, whatever search_path the run gave its role
    result.db = await asyncpg.connect(**connect, server_settings={"search_path": "pg_catalog, public"})
    try:
        message = await check(result)
    except NotSolved as verdict:
        return False, verdict.message
    finally:
        await result.db.close()
    return True, str(message)


def run_check(job: dict[str, Any], connect: dict[str, Any]) -> dict[str, Any]:
    """The verdict event: passed and the learner's message, or a broken check and why (in `detail`)."""
    try:
        passed, message = asyncio.run(judge(job, connect))
    except Exception as error:
        detail = "".join(traceback.format_exception(error))[-4000:]
        return {"event": "verdict", "passed": False, "message": f"{BROKEN} ({type(error).__name__}).", "detail": detail}
    return {"event": "verdict", "passed": passed, "message": message[:4000], "detail": None}
