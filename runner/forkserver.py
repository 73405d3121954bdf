"""The runner's side of the fork server (`runner/zygote.py`): start it, ask it for children, follow them.

`ForkServer` starts the server once per runner, with bubblewrap's layout (the same
read-only binds, the same sizes, the same uid and system-call filter) and the
scrubbed environment. `ForkSpawner` is a `Spawner`: each `spawn` makes the child's
pipes and gate, hands their other ends to the server and gets back the child's pid.
The child is not the runner's own, so its exit comes from the server's message.

When the server cannot start (no root, a kernel that refuses), the runtime keeps
the launcher it has (bubblewrap), and the log says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import SandboxFailed
from .isolation import CHILD_ARGV, SANDBOX_UID, SHM_SIZE, TMP_SIZE, BubblewrapLauncher, Launcher, scrubbed_env
from .process import MAX_EVENT_LINE, _group_alive, process_tree
from .settings import REPO_ROOT

log = logging.getLogger("runner.forkserver")

SERVER_ARGV = [*CHILD_ARGV[:-1], "runner.zygote"]
START_TIMEOUT = 20.0
CHILD_FDS = 5


class ForkServerFailed(SandboxFailed):
    """The fork server did not start or stopped answering (a run that needed it gets a 503)."""


def layout() -> list[list[str]]:
    """What the sandbox's root holds, in bubblewrap's order: /usr, /etc, the top-level links, the Python paths."""
    found: list[list[str]] = [["bind", "/usr"], ["bind", "/etc"]]
    for top in ("/bin", "/lib", "/lib32", "/lib64", "/sbin"):
        if os.path.islink(top):
            found.append(["symlink", os.readlink(top), top])
        elif os.path.isdir(top):
            found.append(["bind", top])
    found += [["bind", str(path)] for path in BubblewrapLauncher.readable_paths()]
    return found


class ForkLauncher:
    """The layers a forked sandbox has: bubblewrap's, made by the fork server after each fork."""

    name = "fork-server"

    def __init__(self, bubblewrap: BubblewrapLauncher) -> None:
        self.bubblewrap = bubblewrap
        self.layers = bubblewrap.layers
        self.missing = bubblewrap.missing

    def plan(self, events_fd: int) -> Any:
        raise AssertionError("forked sandboxes are not planned as processes")


class ForkServer:
    def __init__(self, bubblewrap: BubblewrapLauncher) -> None:
        self.bubblewrap = bubblewrap
        self.process: asyncio.subprocess.Process | None = None
        self._control: socket.socket | None = None
        self._root: Path | None = None
        self._reader: asyncio.Task[None] | None = None
        self._spawning: deque[asyncio.Future[int]] = deque()
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Start the server and wait for its `ready`; raise ForkServerFailed (after cleaning up) if it does not come."""
        self._spawning.clear()  # a restart: what the last server owed has failed already
        self._exits.clear()
        runner_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control = runner_end
        self._root = Path(tempfile.mkdtemp(prefix="workshop-sandbox-root-"))
        seccomp_fd = self.bubblewrap.seccomp.open() if self.bubblewrap.seccomp else None
        config = {
            "control_fd": server_end.fileno(),
            "seccomp_fd": seccomp_fd,
            "layout": layout(),
            "uid": SANDBOX_UID,
            "tmp_size": TMP_SIZE,
            "shm_size": SHM_SIZE,
            "root": str(self._root),
            "env": scrubbed_env(3),
        }
        env = {**scrubbed_env(3), "WORKSHOP_ZYGOTE_CONFIG": json.dumps(config)}
        try:
            self.process = await asyncio.create_subprocess_exec(
                *SERVER_ARGV,
                stdin=asyncio.subprocess.DEVNULL,
                stderr=None,
                env=env,
                cwd=str(REPO_ROOT),
                pass_fds=[fd for fd in (server_end.fileno(), seccomp_fd) if fd is not None],
                start_new_session=True,
            )
        finally:
            server_end.close()
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        runner_end.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(START_TIMEOUT):
                first = json.loads(await loop.sock_recv(runner_end, 256) or b"{}")
        except (TimeoutError, ValueError):
            first = {}
        if "ready" not in first:
            await self.close()
            raise ForkServerFailed("the fork server did not start")
        self._reader = asyncio.create_task(self._read())
        log.info("fork server ready (pid %s)", self.process.pid)

    async def _read(self) -> None:
        assert self._control is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.sock_recv(self._control, 256)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            if "spawned" in message or "error" in message:
                waiter = self._spawning.popleft()
                if not waiter.done():
                    if "spawned" in message:
                        waiter.set_result(int(message["spawned"]))
                    else:
                        waiter.set_exception(ForkServerFailed(f"the fork server refused: {message}"))
            elif "exited" in message:
                self._exit(int(message["exited"])).set_result(int(message["status"]))
        failure = ForkServerFailed("the fork server went away")
        for waiter in [*self._spawning, *self._exits.values()]:
            if not waiter.done():
                waiter.set_exception(failure)

    def _exit(self, pid: int) -> asyncio.Future[int]:
        future = self._exits.get(pid)
        if future is None:
            future = self._exits[pid] = asyncio.get_running_loop().create_future()
        return future

    async def spawn(self, fds: list[int]) -> tuple[int, asyncio.Future[int]]:
        """Ask for a child with these five descriptors; its pid and the future of its exit code."""
        if self._control is None or self._reader is None or self._reader.done():
            raise ForkServerFailed("the fork server is not running")
        async with self._lock:
            waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._spawning.append(waiter)
            await _send_fds(self._control, b"spawn", fds)
        try:
            pid = await asyncio.shield(waiter)
        except asyncio.CancelledError:
            waiter.add_done_callback(self._kill_orphan)  # the child comes all the same: nobody will own it
            raise
        return pid, self._exit(pid)

    def _kill_orphan(self, spawned: asyncio.Future[int]) -> None:
        if spawned.cancelled() or spawned.exception() is not None:
            return
        pid = spawned.result()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        self._exit(pid).add_done_callback(lambda _: self.forget(pid))

    @property
    def running(self) -> bool:
        return self._control is not None and self._reader is not None and not self._reader.done()

    def forget(self, pid: int) -> None:
        self._exits.pop(pid, None)

    async def close(self) -> None:
        if self._control is not None:
            self._control.close()  # the server kills what it started and exits
            self._control = None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.process is not None and self.process.returncode is None:
            try:
                async with asyncio.timeout(5):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)


async def _send_fds(sock: socket.socket, message: bytes, fds: list[int]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            socket.send_fds(sock, [message], fds)
            return
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(sock.fileno(), writable.set_result, None)
            try:
                await writable
            finally:
                loop.remove_writer(sock.fileno())


class ForkChild:
    """A sandbox's child forked by the server: the same handles as an OS child, its exit told by the server."""

    def __init__(
        self,
        server: ForkServer,
        pid: int,
        exit_code: asyncio.Future[int],
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        events: asyncio.StreamReader,
        gate: socket.socket,
    ) -> None:
        self.server = server
        self.pid = pid
        self._exit_code = exit_code
        self._stdin = stdin
        self.stdout, self.stderr, self.events, self.gate = stdout, stderr, events, gate

    @property
    def returncode(self) -> int | None:
        future = self._exit_code
        return future.result() if future.done() and not future.cancelled() and not future.exception() else None

    def send_job(self, payload: bytes) -> None:
        self._stdin.write(payload)
        self._stdin.close()

    async def wait(self) -> int:
        return await asyncio.shield(self._exit_code)

    def tree(self) -> list[int]:
        return process_tree(self.pid)

    def kill(self) -> None:
        if self._exit_code.done() and not _group_alive(self.pid):
            return
        descendants = self.tree()[1:]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in descendants:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    async def close(self) -> None:
        self.kill()
        with contextlib.suppress(ForkServerFailed):
            await self.wait()
        self.server.forget(self.pid)
        self._stdin.close()
        self.gate.close()


class ForkSpawner:
    """A `Spawner` whose children come from the fork server."""

    def __init__(self, server: ForkServer) -> None:
        self.server = server
        self._restarting = asyncio.Lock()

    async def _ensure_running(self) -> None:
        """Start the server again if it went away (its sandboxes died with it; new ones need it)."""
        if self.server.running:
            return
        async with self._restarting:
            if not self.server.running:
                log.warning("the fork server stopped; starting it again")
                await self.server.close()
                await self.server.start()

    async def probe(self) -> str | None:
        """Fork one sandbox and see it ready (a container may refuse the namespaces); None, or why not."""
        try:
            child = await self.spawn(ForkLauncher(self.server.bubblewrap))
        except (ForkServerFailed, OSError) as error:
            return f"the fork server cannot start a sandbox: {error}"
        try:
            async with asyncio.timeout(START_TIMEOUT):
                line = await child.events.readline()
                if b'"ready"' not in line:
                    detail = (await child.stderr.read(2000)).decode(errors="replace").strip()
                    return f"a forked sandbox did not start: {detail or 'no output'}"
                child.send_job(b"")  # nothing to run: it exits
                code = await child.wait()
        except (TimeoutError, ForkServerFailed, ValueError):
            return "a forked sandbox did not answer"
        finally:
            await child.close()
        return None if code == 0 else f"a forked sandbox exited with {code}"

    async def spawn(self, launcher: Launcher) -> ForkChild:
        await self._ensure_running()
        loop = asyncio.get_running_loop()
        ours: list[Any] = []
        theirs: list[int] = []
        try:
            stdin_read, stdin_write = os.pipe()
            ours.append(stdin_write)
            theirs.append(stdin_read)
            readers: list[asyncio.StreamReader] = []
            for limit in (1 << 16, 1 << 16, MAX_EVENT_LINE):
                read_fd, write_fd = os.pipe()
                ours.append(read_fd)
                theirs.append(write_fd)
                readers.append(asyncio.StreamReader(limit=limit))
            runner_end, sandbox_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            ours.append(runner_end)
            theirs.append(sandbox_end.detach())
            pid, exit_code = await self.server.spawn(theirs)
        except BaseException:
            for item in ours:
                item.close() if isinstance(item, socket.socket) else os.close(item)
            raise
        finally:
            for fd in theirs:
                with contextlib.suppress(OSError):
                    os.close(fd)
        stdin_fd, *read_fds, gate = ours
        for reader, fd in zip(readers, read_fds, strict=True):
            await loop.connect_read_pipe(_protocol(reader), os.fdopen(fd, "rb", 0))
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(stdin_fd, "wb", 0)
        )
        stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        stdout, stderr, events = readers
        return ForkChild(self.server, pid, exit_code, stdin, stdout, stderr, events, gate)


def _protocol(reader: asyncio.StreamReader) -> Callable[[], asyncio.StreamReaderProtocol]:
    return lambda: asyncio.StreamReaderProtocol(reader)


def can_fork_sandboxes() -> str | None:
    """None when this runner may start the fork server (root: it builds namespaces itself), otherwise why not."""
    if os.geteuid() != 0:
        return "the fork server needs root (it builds each sandbox's namespaces itself)"
    if sys.platform != "linux":
        return "the fork server needs Linux"
    return None
