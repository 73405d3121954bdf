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
import atexit
import errno
import functools
import inspect
import json
import linecache
import os
import resource
import socket
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

import asyncpg

from runner.gate import GATE_HOST, GRANTED
from runner.lesson import REPO_ROOT, forget_changed_lesson_utilities, prefer_lesson_package
from runner.queries import QueryRecorder
from runner.round_trip import PreciseTimers, delayed, unwrap

EVENTS_FD = int(os.environ.get("WORKSHOP_EVENTS_FD", "3"))
RLIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "address_space": resource.RLIMIT_AS,
    "processes": resource.RLIMIT_NPROC,
    "file_size": resource.RLIMIT_FSIZE,
    "open_files": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
}
REFUSED_NOTE = (
    "note: the sandbox refuses system calls that a lesson never needs (mounts, namespaces, tracing, io_uring, "
    'kernel keys, bpf, ...); a refused call fails with EPERM, "Operation not permitted".\n'
)
CONNECT_KEYS = ("dsn", "host", "port", "user", "password", "passfile", "database", "ssl", "direct_tls")

recorder = QueryRecorder()
_gate = socket.socket(fileno=int(os.environ["WORKSHOP_GATE_FD"])) if "WORKSHOP_GATE_FD" in os.environ else None
_gate_lock = threading.Lock()
_events = os.fdopen(EVENTS_FD, "w", buffering=1, closefd=False) if __name__ == "__main__" else None


def emit(event: dict[str, Any]) -> None:
    if _events is not None:
        _events.write(json.dumps(event) + "\n")


def import_lesson_utilities() -> None:
    """Put the repository root first, as the lesson expects, and import `code.utils` (preloaded by the fork
    server unless its file changed since)."""
    prefer_lesson_package()
    forget_changed_lesson_utilities()
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


def connect_through_gate() -> socket.socket:
    """Ask the runner for a connection to the server: the sandbox has no other way to reach it."""
    if _gate is None:
        raise ConnectionRefusedError("this process was not started with a connection gate")
    with _gate_lock:
        _gate.sendall(b"c")
        message, fds, _, _ = socket.recv_fds(_gate, 1, 1)
    if message != GRANTED or not fds:
        raise ConnectionRefusedError("too many new database connections from this sandbox; wait and retry")
    return socket.socket(fileno=fds[0])


def install_gate(round_trip_ms: float = 0) -> None:
    """Connections to GATE_HOST (the host every connect is redirected to) come from the runner.

    With a simulated round trip, what each of them receives reaches asyncpg that much later.
    """
    loop_class: Any = asyncio.unix_events._UnixSelectorEventLoop
    original = loop_class.create_unix_connection

    @functools.wraps(original)
    async def create_unix_connection(self: Any, protocol_factory: Any, path: Any = None, **kwargs: Any) -> Any:
        if kwargs.get("sock") is None and path is not None and os.fspath(path).startswith(GATE_HOST):
            sock = connect_through_gate()
            factory = delayed(protocol_factory, round_trip_ms / 1000, self) if round_trip_ms else protocol_factory
            if sock.family != socket.AF_UNIX:  # an external server reached over TCP
                transport, protocol = await self.create_connection(factory, sock=sock, **kwargs)
            else:
                transport, protocol = await original(self, factory, None, sock=sock, **kwargs)
            return transport, unwrap(protocol)
        return await original(self, protocol_factory, path, **kwargs)

    loop_class.create_unix_connection = create_unix_connection


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
    # the header even without frames: it marks where the exception's report starts (runner/checking.py)
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(error), error)
    if isinstance(error, OSError) and error.errno == errno.EPERM:
        lines.append(REFUSED_NOTE)
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
    round_trip_ms = job.get("round_trip_ms", 0)
    install_gate(round_trip_ms)
    if round_trip_ms:
        asyncio.set_event_loop_policy(PreciseTimers())
    apply_limits(job.get("limits", {}))
    if "check" in job:  # this process judges a finished run (runner/exercises.py)
        from runner.check_process import run_check

        emit(run_check(job["check"], job["connect"]))
        return 0
    emit({"event": "running"})
    exit_hooks = atexit._ncallbacks()
    status = run_code(job["code"], job["filename"])
    sys.stdout.flush()
    sys.stderr.flush()
    summary = recorder.summary()
    if summary is not None:
        emit({"event": "queries", **summary})
    if threading.active_count() == 1 and atexit._ncallbacks() == exit_hooks:
        # nothing of the sample's is left to run at exit: skip the interpreter's teardown (tens of ms)
        if _events is not None:
            _events.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
