"""The program inside a sandbox: warm up, wait for one job, run it as `__main__`, exit.

It runs with nothing but the job it is handed: the run's own database credentials
and the code. Warm-up (importing asyncpg and the lesson's utilities) happens before
the job arrives, so a prepared sandbox only has to read its job and go.

Protocol: the job is one JSON document on stdin; structured events (ready, timing)
are JSON lines on file descriptor 3; stdout and stderr are the sample's own.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import inspect
import json
import linecache
import os
import resource
import sys
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from runner.queries import QueryRecorder

EVENTS_FD = int(os.environ.get("WORKSHOP_EVENTS_FD", "3"))
REPO_ROOT = Path(__file__).resolve().parent.parent
RLIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "address_space": resource.RLIMIT_AS,
    "processes": resource.RLIMIT_NPROC,
    "file_size": resource.RLIMIT_FSIZE,
    "open_files": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
}
CONNECT_KEYS = ("dsn", "host", "port", "user", "password", "passfile", "database", "ssl", "direct_tls")

recorder = QueryRecorder()
_events = os.fdopen(EVENTS_FD, "w", buffering=1, closefd=False) if __name__ == "__main__" else None


def emit(event: dict[str, Any]) -> None:
    if _events is not None:
        _events.write(json.dumps(event) + "\n")


def import_lesson_utilities() -> None:
    """Put the repository root first, as the lesson expects, and import `code.utils`."""
    sys.path.insert(0, str(REPO_ROOT))
    stdlib_code = sys.modules.get("code")
    if stdlib_code is not None and not hasattr(stdlib_code, "__path__"):
        del sys.modules["code"]  # the standard library's `code` module, not the lesson's package
    import code.utils as utils

    utils.async_timed = report_timings(utils.async_timed)


def report_timings(async_timed: Callable[[], Callable[..., Any]]) -> Callable[[], Callable[..., Any]]:
    """Wrap the lesson's decorator so each timed call is also sent as a structured event."""

    @functools.wraps(async_timed)
    def factory() -> Callable[..., Any]:
        decorate = async_timed()

        def wrapper(func: Callable[..., Any]) -> Callable[..., Any]:
            timed = decorate(func)

            @functools.wraps(func)
            async def run(*args: Any, **kwargs: Any) -> Any:
                start = recorder.now()
                try:
                    return await timed(*args, **kwargs)
                finally:
                    end = recorder.now()
                    recorder.phase(func.__name__, start, end)
                    emit({"event": "timing", "name": func.__name__, "seconds": end - start, "start": start})

            return run

        return wrapper

    return factory


def redirect_connections(address: dict[str, Any]) -> None:
    """Whatever the code names (host, port, user, password, database), it gets the run's database."""
    original = asyncpg.connection.connect

    @functools.wraps(original)
    async def connect(*_args: Any, **kwargs: Any) -> Any:
        for key in CONNECT_KEYS:
            kwargs.pop(key, None)
        conn = await original(**kwargs, **address)
        recorder.attach(conn)
        return conn

    asyncpg.connection.connect = connect  # the pool looks it up here
    asyncpg.connect = connect


def apply_limits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        which = RLIMITS[name]
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def run_code(source: str, filename: str) -> int:
    """Run `source` as `__main__`; top-level `await` is allowed (notebook cells)."""
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    main = types.ModuleType("__main__")
    main.__file__ = filename
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    sys.argv = [filename]
    try:
        compiled = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        if compiled.co_flags & inspect.CO_COROUTINE:
            asyncio.run(eval(compiled, main.__dict__))
        else:
            exec(compiled, main.__dict__)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException as error:  # the sample's own failure: report it readably
        print_readable_traceback(error, filename)
        return 1
    return 0


def print_readable_traceback(error: BaseException, filename: str) -> None:
    """Show the sample's frames and the error, not the machinery between them."""
    keep = (filename, str(REPO_ROOT / "code"))
    tb = error.__traceback__
    frames = [f for f in traceback.extract_tb(tb) if f.filename.startswith(keep)] if tb else []
    for frame in frames:  # paths relative to the repository read the same on every machine
        if frame.filename.startswith(str(REPO_ROOT) + os.sep):
            frame.filename = os.path.relpath(frame.filename, REPO_ROOT)
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)] if frames else []
    lines += traceback.format_exception_only(type(error), error)
    sys.stdout.flush()
    sys.stderr.write("".join(lines))
    sys.stderr.flush()


def main() -> int:
    import_lesson_utilities()
    emit({"event": "ready", "pid": os.getpid()})
    job = json.loads(sys.stdin.buffer.read() or b"{}")
    if not job:
        return 0  # the sandbox was discarded without a job
    recorder.t0 = time.monotonic()
    redirect_connections(job["connect"])
    apply_limits(job.get("limits", {}))
    emit({"event": "running"})
    status = run_code(job["code"], job["filename"])
    sys.stdout.flush()
    sys.stderr.flush()
    summary = recorder.summary()
    if summary is not None:
        emit({"event": "queries", **summary})
    return status


if __name__ == "__main__":
    sys.exit(main())
