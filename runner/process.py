"""The seam between a sandbox and the process it runs: how a child is started, read and killed.

`Spawner.spawn` starts the child program described by a launcher's plan and
returns a `ChildProcess`: its stdin, its stdout, stderr and events streams, the
runner's end of its connection gate, and a way to kill the whole tree. The real
spawner starts an OS process (bubblewrap or plain); tests pass a fake one, so the
sandbox, the pool and the runs can be tested in-process in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from typing import Protocol

import psutil

from .isolation import GATE_FD_ENV, Launcher, LaunchPlan

MAX_EVENT_LINE = 512 * 1024
"""Longest line the child may write on its events channel; a longer one ends the run."""


_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")
"""Whether the kernel lists each thread's children in /proc (CONFIG_PROC_CHILDREN, on in common kernels)."""


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants ([] once `pid` is gone).

    Read from each process's own list of children in /proc, a few small files: psutil
    finds children by reading the status of every process on the host, which costs a
    millisecond or more per call beside a busy PostgreSQL, several times per run.
    """
    if not _CHILDREN_FILES:
        try:
            return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
        except psutil.NoSuchProcess:
            return []
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            threads = os.listdir(f"/proc/{current}/task")
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
        found.append(current)
        for thread in threads:
            try:
                with open(f"/proc/{current}/task/{thread}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
            except (FileNotFoundError, ProcessLookupError):
                continue  # the thread ended
    return found


class ChildProcess(Protocol):
    pid: int
    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader
    events: asyncio.StreamReader
    gate: socket.socket

    @property
    def returncode(self) -> int | None: ...

    def send_job(self, payload: bytes) -> None: ...
    async def wait(self) -> int: ...
    def kill(self) -> None: ...
    def tree(self) -> list[int]: ...
    async def close(self) -> None: ...


class Spawner(Protocol):
    async def spawn(self, launcher: Launcher) -> ChildProcess: ...


class OsChild:
    """A child started as an OS process, in its own session (so its group can be killed at once)."""

    def __init__(
        self, process: asyncio.subprocess.Process, events: asyncio.StreamReader, gate: socket.socket, plan: LaunchPlan
    ) -> None:
        assert process.stdout and process.stderr
        self.process = process
        self.pid = process.pid
        self.stdout = process.stdout
        self.stderr = process.stderr
        self.events = events
        self.gate = gate
        self.plan = plan

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def send_job(self, payload: bytes) -> None:
        assert self.process.stdin
        self.process.stdin.write(payload)
        self.process.stdin.close()

    async def wait(self) -> int:
        return await self.process.wait()

    def tree(self) -> list[int]:
        """The child and every descendant (all of them are the runner's trusted code until a job arrives)."""
        return process_tree(self.pid)

    def kill(self) -> None:
        """SIGKILL the child, its process group and every descendant still reachable."""
        if self.process.returncode is not None and not _group_alive(self.pid):
            return
        descendants = self.tree()[1:]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in descendants:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    async def close(self) -> None:
        """Kill, reap and release everything of the child's; safe to repeat."""
        self.kill()
        await self.process.wait()
        self.gate.close()
        self.plan.cleanup()


class OsSpawner:
    async def spawn(self, launcher: Launcher) -> OsChild:
        read_fd, write_fd = os.pipe()
        runner_end, sandbox_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            plan = launcher.plan(write_fd)
        except BaseException:
            for fd in (read_fd, write_fd):
                os.close(fd)
            runner_end.close()
            sandbox_end.close()
            raise
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
        events = asyncio.StreamReader(limit=MAX_EVENT_LINE)
        try:
            loop = asyncio.get_running_loop()
            pipe = os.fdopen(read_fd, "rb", 0)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(events), pipe)
        except BaseException:
            child = OsChild(process, events, runner_end, plan)
            await asyncio.shield(child.close())
            raise
        return OsChild(process, events, runner_end, plan)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
