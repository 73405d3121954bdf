"""In-process stand-ins for a sandbox's child and its database, for fast unit tests.

A `FakeChild` speaks the child's protocol over real pipes (so backpressure is real)
but runs a scripted coroutine instead of a process: no bubblewrap, no PostgreSQL.
Every fake records what was made and what was released, so tests can assert that
nothing is left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from runner.databases import RunDatabase
from runner.isolation import Launcher, LaunchPlan
from runner.postgres import ServerAddress

ADMIN = ServerAddress("/nonexistent", 5432, "admin", "secret", "postgres")


class Pause:
    """A point where a fake waits until the test lets it go (or cancels what waits)."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    async def __call__(self) -> None:
        self.reached.set()
        await self.go.wait()


@dataclass
class Pipe:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, limit: int = 1 << 16) -> Pipe:  # asyncio's default, as for a real child's pipes
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        reader = asyncio.StreamReader(limit=limit)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0))
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(write_fd, "wb", 0)
        )
        return cls(reader, asyncio.StreamWriter(transport, protocol, None, loop))


class Streams:
    """What a fake program writes to: the child's stdout, stderr and events channel."""

    def __init__(self, stdout: Pipe, stderr: Pipe, events: Pipe) -> None:
        self.stdout, self.stderr, self.events = stdout.writer, stderr.writer, events.writer

    async def event(self, payload: dict[str, Any] | bytes) -> None:
        line = payload if isinstance(payload, bytes) else json.dumps(payload).encode() + b"\n"
        self.events.write(line)
        await self.events.drain()

    async def print(self, text: str, stream: str = "stdout") -> None:
        writer = self.stdout if stream == "stdout" else self.stderr
        writer.write(text.encode())
        await writer.drain()


Program = Callable[[dict[str, Any], Streams], Awaitable[int]]


async def quiet(job: dict[str, Any], streams: Streams) -> int:
    await streams.print("hello\n")
    return 0


class FakeChild:
    def __init__(self, program: Program, stdout: Pipe, stderr: Pipe, events: Pipe, ready: bool) -> None:
        self.pid = 0
        self.stdout = stdout.reader
        self.stderr = stderr.reader
        self.events = events.reader
        self.gate, self._sandbox_end = socket.socketpair()
        self._writers = Streams(stdout, stderr, events)
        self._job: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._returncode: int | None = None
        self.closed = False
        self.killed = False
        self._task = asyncio.create_task(self._main(program, ready))

    async def _main(self, program: Program, ready: bool) -> None:
        try:
            if not ready:  # dies during warm-up, as a child with a broken installation would
                await self._writers.print("ImportError: no module named asyncpg\n", "stderr")
                self._returncode = 1
                return
            await self._writers.event({"event": "ready", "pid": 0})
            job = await self._job
            code = await program(job, self._writers)
            if self._returncode is None:
                self._returncode = code
        finally:
            for writer in (self._writers.stdout, self._writers.stderr, self._writers.events):
                writer.close()

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def send_job(self, payload: bytes) -> None:
        self._job.set_result(json.loads(payload))

    async def wait(self) -> int:
        await asyncio.wait([self._task])  # the program's own end; a cancelled waiter sees its cancellation
        assert self._returncode is not None
        return self._returncode

    def tree(self) -> list[int]:
        return []

    def kill(self) -> None:
        if self._task.done():
            return
        self.killed = True
        self._returncode = -9
        self._task.cancel()

    async def close(self) -> None:
        self.kill()
        await asyncio.gather(self._task, return_exceptions=True)
        self.gate.close()
        self._sandbox_end.close()
        self.closed = True


@dataclass
class FakeSpawner:
    program: Program = quiet
    ready: bool = True
    pause: Pause | None = None
    children: list[FakeChild] = field(default_factory=list)

    async def spawn(self, launcher: Launcher) -> FakeChild:
        if self.pause is not None:
            await self.pause()
        pipes = [await Pipe.open(), await Pipe.open(), await Pipe.open(limit=512 * 1024)]
        child = FakeChild(self.program, *pipes, ready=self.ready)
        self.children.append(child)
        return child


class FakeLauncher:
    name = "fake"
    layers: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    def plan(self, events_fd: int) -> LaunchPlan:
        raise AssertionError("the fake spawner does not plan processes")


@dataclass
class FakeDatabases:
    admin: ServerAddress = ADMIN
    pause: Pause | None = None
    fail: BaseException | None = None
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    async def create(self) -> RunDatabase:
        name = f"run{len(self.created)}"
        self.created.append(name)
        try:  # like the real factory: whatever happens midway, what may exist is dropped
            if self.pause is not None:
                await self.pause()
            if self.fail is not None:
                raise self.fail
        except BaseException:
            self.dropped.append(name)
            raise
        return RunDatabase(name, ADMIN.as_role(name, "pw", name))

    async def release(self, name: str) -> None:
        self.dropped.append(name)

    @property
    def alive(self) -> list[str]:
        return [name for name in self.created if name not in self.dropped]
