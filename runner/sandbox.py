"""A single-use sandbox: one run's database plus a warmed-up child process waiting for code.

Preparing one (cloning the database, starting the child, importing asyncpg) is the
slow part of a run; a pool can do it ahead of time. Executing hands the job over
and streams what comes back. Destroying kills the whole process tree and drops the
database and role, whatever state the sample left them in.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import psutil

from . import events
from .databases import DatabaseFactory, RunDatabase
from .events import Event, Status
from .gate import GATE_HOST, serve_gate
from .isolation import GATE_FD_ENV, Launcher, LaunchPlan, Limits
from .postgres import ServerAddress

log = logging.getLogger("runner.sandbox")


class SandboxFailed(RuntimeError):
    """The sandbox could not be prepared (the child died during warm-up)."""


@dataclass
class Outcome:
    """How the execution ended, for the run's summary."""

    status: Status = "ok"
    exit_code: int | None = None
    truncated: bool = False
    reason: str | None = None
    run_seconds: float = 0.0


@dataclass
class Job:
    code: str
    filename: str
    timeout: float
    output_limit: int
    limits: Limits = field(default_factory=Limits)


class Sandbox:
    def __init__(
        self,
        database: RunDatabase,
        process: asyncio.subprocess.Process,
        events_reader: asyncio.StreamReader,
        plan: LaunchPlan,
        factory: DatabaseFactory,
        gate: asyncio.Task[None],
    ) -> None:
        self.id = secrets.token_hex(4)
        self._gate = gate
        self.database = database
        self.process = process
        self._events = events_reader
        self._plan = plan
        self._factory = factory
        self._destroyed = False

    # -- preparing ---------------------------------------------------------------------------

    @classmethod
    async def prepare(cls, factory: DatabaseFactory, launcher: Launcher) -> Sandbox:
        """Clone the database and warm the child up at the same time."""
        started = await asyncio.gather(factory.create(), _start_child(launcher, factory.admin), return_exceptions=True)
        database, child = started
        if isinstance(database, BaseException) or isinstance(child, BaseException):
            if not isinstance(database, BaseException):
                await factory.drop(database.name)
            if not isinstance(child, BaseException):
                _kill_tree(child[0])
                child[2].cleanup()
                child[3].cancel()
            error = database if isinstance(database, BaseException) else child
            assert isinstance(error, BaseException)
            raise error
        process, reader, plan, gate = child
        log.debug("prepared sandbox with %s (pid %s)", database.name, process.pid)
        return cls(database, process, reader, plan, factory, gate)

    # -- executing ---------------------------------------------------------------------------

    async def execute(self, job: Job, outcome: Outcome) -> AsyncIterator[Event]:
        """Stream output and timing events; fill `outcome` as it ends. Always kills the tree."""
        assert self.process.stdin and self.process.stdout and self.process.stderr
        payload = {
            "code": job.code,
            "filename": job.filename,
            "connect": {**self.database.address.connect_kwargs(), "host": GATE_HOST},
            "limits": job.limits.as_job(),
        }
        started = time.perf_counter()
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        pumps = [
            asyncio.create_task(_pump_output("stdout", self.process.stdout, queue, started)),
            asyncio.create_task(_pump_output("stderr", self.process.stderr, queue, started)),
            asyncio.create_task(_pump_events(self._events, queue)),
        ]
        closer = asyncio.create_task(_close_when_done(pumps, queue))
        budget = job.output_limit
        try:
            self.process.stdin.write(json.dumps(payload).encode())
            self.process.stdin.close()
            deadline = time.perf_counter() + job.timeout
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.perf_counter()))
                except TimeoutError:
                    outcome.status, outcome.reason = "timeout", f"stopped after the {job.timeout:g} s time limit"
                    break
                if item is None:
                    break
                if item["event"] == "output":
                    size = len(item["text"].encode())
                    if size > budget:
                        item["text"] = item["text"].encode()[:budget].decode(errors="ignore")
                        if item["text"]:
                            yield item
                        outcome.truncated = True
                        outcome.status = "killed"
                        outcome.reason = f"output limit of {job.output_limit} bytes reached"
                        break
                    budget -= size
                yield item
        finally:
            _kill_tree(self.process)
            closer.cancel()
            for pump in pumps:
                pump.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 5)
            outcome.run_seconds = time.perf_counter() - started
            outcome.exit_code = self.process.returncode
            if outcome.status == "ok":
                if outcome.exit_code is not None and outcome.exit_code < 0:
                    outcome.status = "killed"
                    outcome.reason = f"killed by signal {signal.Signals(-outcome.exit_code).name}"
                elif outcome.exit_code != 0:
                    outcome.status = "error"

    # -- destroying --------------------------------------------------------------------------

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        _kill_tree(self.process)
        self._gate.cancel()
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(self.process.wait(), 5)
        self._plan.cleanup()
        await self._factory.drop(self.database.name)
        log.debug("destroyed sandbox with %s", self.database.name)


async def _start_child(
    launcher: Launcher, server: ServerAddress
) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader, LaunchPlan, asyncio.Task[None]]:
    read_fd, write_fd = os.pipe()
    runner_end, sandbox_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    plan = launcher.plan(write_fd)
    plan.env[GATE_FD_ENV] = str(sandbox_end.fileno())
    try:
        process = await asyncio.create_subprocess_exec(
            *plan.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=plan.env,
            cwd=plan.cwd,
            pass_fds=(write_fd, sandbox_end.fileno(), *plan.pass_fds),
            start_new_session=True,
            **plan.process_options,
        )
    except BaseException:
        os.close(read_fd)
        runner_end.close()
        plan.cleanup()
        raise
    finally:
        os.close(write_fd)
        sandbox_end.close()
    gate = asyncio.create_task(serve_gate(runner_end, server))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0))
    try:
        line = await asyncio.wait_for(reader.readline(), 20)
    except TimeoutError:
        line = b""
    if not line.startswith(b'{"event": "ready"'):
        gate.cancel()
        _kill_tree(process)
        assert process.stderr
        detail = (await process.stderr.read(4000)).decode(errors="replace").strip()
        plan.cleanup()
        raise SandboxFailed(f"the sandbox's child did not start: {detail or 'no output'}")
    return process, reader, plan, gate


async def _pump_output(
    stream: str, reader: asyncio.StreamReader, queue: asyncio.Queue[Event | None], started: float
) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := await reader.read(65536):
        text = decoder.decode(chunk)
        if text:
            await queue.put(events.output(stream, text, time.perf_counter() - started))
    if tail := decoder.decode(b"", final=True):
        await queue.put(events.output(stream, tail, time.perf_counter() - started))


async def _pump_events(reader: asyncio.StreamReader, queue: asyncio.Queue[Event | None]) -> None:
    while line := await reader.readline():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        kind = message.get("event") if isinstance(message, dict) else None
        if kind == "timing":
            start = message.get("start")
            await queue.put(
                events.timing(
                    str(message.get("name")),
                    float(message.get("seconds", 0)),
                    float(start) if isinstance(start, int | float) else None,
                )
            )
        elif kind == "queries":
            await queue.put(message)


async def _close_when_done(pumps: list[asyncio.Task[None]], queue: asyncio.Queue[Event | None]) -> None:
    await asyncio.gather(*pumps, return_exceptions=True)
    await queue.put(None)


def _kill_tree(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the child, its process group and every descendant still reachable."""
    if process.returncode is not None and not _group_alive(process.pid):
        return
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for proc in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
