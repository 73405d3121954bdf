"""A single-use sandbox: one run's database plus a warmed-up child process waiting for code.

Preparing one (cloning the database, starting the child, importing asyncpg) is the
slow part of a run; a pool can do it ahead of time. Executing hands the job over
and streams what comes back. Destroying kills the whole process tree and drops the
database and role, whatever state the sample left them in.

Ownership: every resource a sandbox acquires (database, control group, process,
gate task) is registered on one `AsyncExitStack` the moment it exists, so a failure
or a cancellation at any await point of `prepare` releases exactly what was made,
and `destroy` releases the rest in reverse order.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from .backend_memory import BackendGroup
from .cgroups import CgroupDriver, CgroupLimits, RunCgroup
from .channel import Channel, Stopped
from .database_guard import DatabaseGuard
from .databases import RunDatabase
from .errors import SandboxFailed
from .gate import GATE_HOST, Tapping, serve_gate
from .isolation import Launcher, Limits
from .models import ChildReady, ChildRunning, ChildVerdict, RunEvent, Status, Stream, child_event_adapter
from .postgres import ServerAddress
from .process import ChildProcess, Spawner
from .shielding import finish_uncancelled, made_uncancelled
from .wire import WireRecord

log = logging.getLogger("runner.sandbox")

READY_TIMEOUT = 20.0
STALL_TIMEOUT = 10.0
"""Seconds a run may wait for its reader (a client that stopped reading) before it is stopped."""
QUEUE_EVENTS = 16
"""Events buffered between the child and the client: with 64 KiB reads, at most ~1.5 MiB per run."""
READ_CHUNK = 65536
EMPTY_TIMEOUT = 2.0
"""Seconds a run's killed processes may take to be reaped before its check is refused."""

T = TypeVar("T")


class Databases(Protocol):
    """What a sandbox needs of the run-database factory (the real one is `DatabaseFactory`)."""

    admin: ServerAddress

    async def create(self) -> RunDatabase: ...
    async def release(self, name: str) -> None:
        """Done with it: dropped, or kept for another run when provably unchanged (runner/reuse.py)."""


@dataclass(frozen=True)
class SandboxEnv:
    """Everything sandboxes are made from; one per runner."""

    databases: Databases
    launcher: Launcher
    spawner: Spawner
    cgroups: CgroupDriver | None = None
    limits: CgroupLimits = field(default_factory=CgroupLimits)
    guard: DatabaseGuard | None = None
    """The run database's quota and backend memory; None where they are not in force."""


@dataclass
class Outcome:
    """How the execution ended, for the run's summary."""

    status: Status = "ok"
    exit_code: int | None = None
    truncated: bool = False
    reason: str | None = None
    run_seconds: float = 0.0
    memory_peak: int | None = None
    cpu_seconds: float | None = None


@dataclass
class Job:
    code: str
    filename: str
    timeout: float
    output_limit: int
    limits: Limits = field(default_factory=Limits)
    record: WireRecord | None = None
    """Where the gate records the run's queries from the wire (exercise runs); None hands sockets over as they are."""
    round_trip_ms: float = 0
    """A simulated network round trip on each database connection (runner/round_trip.py)."""


@dataclass
class CheckJob:
    """An exercise's check: its source (read by the runner, not in the sandbox) and what the run did."""

    source: str
    filename: str
    result: dict[str, object]
    timeout: float
    limits: Limits = field(default_factory=Limits)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    meaningful = [e for e in leaves if not isinstance(e, asyncio.CancelledError)]
    return (meaningful or leaves)[0]


class Sandbox:
    def __init__(
        self,
        env: SandboxEnv,
        database: RunDatabase,
        child: ChildProcess,
        cgroup: RunCgroup | None,
        stack: AsyncExitStack,
        backends: BackendGroup | None = None,
        tapping: Tapping | None = None,
    ) -> None:
        self.id = secrets.token_hex(4)
        self.tapping = tapping or Tapping()
        self.env = env
        self.database = database
        self.child = child
        self.cgroup = cgroup
        self.backends = backends
        self._stack = stack
        self._destroyed = False
        self._checker: tuple[asyncio.Task[ChildProcess], AsyncExitStack] | None = None

    # -- preparing ---------------------------------------------------------------------------

    @classmethod
    async def prepare(cls, env: SandboxEnv) -> Sandbox:
        """Clone the database and warm the child up at the same time; on any failure, undo both."""
        stack = AsyncExitStack()
        tapping = Tapping()
        try:
            async with asyncio.TaskGroup() as group:
                database = group.create_task(cls._database(env, stack))
                child = group.create_task(cls._child(env, stack, tapping))
            cgroup, process = child.result()
            run_database, backends = database.result()
            sandbox = cls(env, run_database, process, cgroup, stack, backends, tapping)
        except BaseExceptionGroup as errors:
            await finish_uncancelled(stack.aclose())
            raise _first_error(errors) from None
        except BaseException:
            await finish_uncancelled(stack.aclose())
            raise
        log.debug("prepared sandbox with %s (pid %s)", sandbox.database.name, process.pid)
        return sandbox

    @staticmethod
    async def _database(env: SandboxEnv, stack: AsyncExitStack) -> tuple[RunDatabase, BackendGroup | None]:
        database = await env.databases.create()
        stack.push_async_callback(env.databases.release, database.name)
        backends = None
        if env.guard is not None:
            backends = await env.guard.attach(database)
            if backends is not None:
                stack.push_async_callback(env.guard.release, backends)  # before the drop
        return database, backends

    @staticmethod
    async def _child(env: SandboxEnv, stack: AsyncExitStack, tapping: Tapping) -> tuple[RunCgroup | None, ChildProcess]:
        cgroup = None
        if env.cgroups is not None:
            # cgroup writes can wait on the kernel (its cgroup lock, RCU grace periods): not on the event loop
            # (cancelled meanwhile, the thread still makes the group: removed at once)
            cgroup = await made_uncancelled(
                asyncio.to_thread(env.cgroups.create, f"run-{secrets.token_hex(6)}", env.limits),
                lambda made: asyncio.to_thread(made.remove),
            )
            stack.push_async_callback(asyncio.to_thread, cgroup.remove)  # after the process is reaped (reverse)
        return cgroup, await _start_child(env, stack, cgroup, tapping)

    # -- checking ----------------------------------------------------------------------------

    def warm_checker(self) -> None:
        """Start the check's child now, while the run goes, so the verdict does not wait for a cold start.

        It waits outside the run's control group (the end of the run, which kills that
        group, leaves it alone) and in namespaces of its own, where the run cannot reach
        it; `check` moves it into the group before handing it anything.
        """
        if self._checker is not None:
            return
        stack = AsyncExitStack()
        self._stack.push_async_callback(stack.aclose)
        task = asyncio.create_task(_start_child(self.env, stack, None, Tapping()))
        self._stack.push_async_callback(_cancel_and_wait, task)
        self._checker = (task, stack)

    async def check(self, job: CheckJob) -> ChildVerdict:
        """Judge the finished run in a child of its own: same database, same group, same limits.

        Called after `execute`, whose end killed every process of the run: nothing of
        the learner's runs beside the check, and the check's source comes from the runner.
        """
        self.tapping.record = None
        if self.cgroup is not None and not await _emptied(self.cgroup, EMPTY_TIMEOUT):
            raise SandboxFailed("the run's processes did not end, so its check cannot run")
        self.warm_checker()
        assert self._checker is not None
        task, stack = self._checker
        child = await task
        if self.cgroup is not None:
            await asyncio.to_thread(self.cgroup.add, child.tree())
        payload = {
            "check": {"source": job.source, "filename": job.filename, "result": job.result},
            "connect": {**self.database.address.connect_kwargs(), "host": GATE_HOST},
            "limits": _rlimits(job.limits, per_run_pids=self.cgroup is not None),
        }
        child.send_job(json.dumps(payload).encode())
        drains = [asyncio.create_task(_drain(child.stdout)), asyncio.create_task(_drain(child.stderr))]
        stack.push_async_callback(_cancel_and_wait, *drains)
        try:
            async with asyncio.timeout(job.timeout):
                verdict = await _read_verdict(child.events)
            if verdict is None:
                child.kill()
                await child.wait()
                stderr = drains[1].result() if drains[1].done() else b""
                detail = stderr.decode(errors="replace").strip()[-2000:]
                raise SandboxFailed(f"the check's process ended without a verdict: {detail or 'no output'}")
            return verdict
        except TimeoutError:
            raise SandboxFailed(f"the check did not finish within {job.timeout:g} s") from None
        finally:
            child.kill()

    # -- executing ---------------------------------------------------------------------------

    async def execute(self, job: Job, outcome: Outcome) -> AsyncIterator[RunEvent]:
        """Stream the run's events; fill `outcome` as it ends. Always kills the tree.

        Stop conditions (time limit, output budget, a bad event, a stalled reader, the memory
        limit) are enforced by tasks of their own, so they hold even while nobody reads.
        """
        started = time.perf_counter()
        channel = Channel(job.output_limit, QUEUE_EVENTS, STALL_TIMEOUT)
        stops: list[tuple[Status, str, bool]] = []

        def stop(status: Status, reason: str, truncated: bool = False) -> None:
            if not stops:
                stops.append((status, reason, truncated))
            self.kill()

        if job.record is not None:
            job.record.origin = started
        self.tapping.record = job.record
        payload = {
            "code": job.code,
            "filename": job.filename,
            "connect": {**self.database.address.connect_kwargs(), "host": GATE_HOST},
            "limits": _rlimits(job.limits, per_run_pids=self.cgroup is not None),
            "round_trip_ms": job.round_trip_ms,
        }
        self.child.send_job(json.dumps(payload).encode())
        tasks = [
            asyncio.create_task(_guard(_pump_output("stdout", self.child.stdout, channel, started), stop)),
            asyncio.create_task(_guard(_pump_output("stderr", self.child.stderr, channel, started), stop)),
            asyncio.create_task(_guard(_pump_events(self.child.events, channel), stop)),
        ]
        supervisor = asyncio.create_task(self._supervise(job, stop))
        if self.env.guard is not None:
            tasks.append(asyncio.create_task(self._guard_database(self.env.guard, stop)))
        closer = asyncio.create_task(_close_when_done(tasks[:3], channel))
        try:
            async for event in channel:
                yield event
        finally:
            self.kill()
            await finish_uncancelled(_cancel_and_wait(supervisor, closer, *tasks))
            await finish_uncancelled(self.child.wait())  # the pipes can close before the exit is reaped
            outcome.run_seconds = time.perf_counter() - started
            outcome.exit_code = self.child.returncode
            self._conclude(job, outcome, stops)

    async def _supervise(self, job: Job, stop: Callable[..., None]) -> None:
        """End the run at its time limit; once the child is gone, end whatever it left behind."""
        try:
            async with asyncio.timeout(job.timeout):
                await self.child.wait()
        except TimeoutError:
            stop("timeout", f"stopped after the {job.timeout:g} s time limit")
        self.kill()

    async def _guard_database(self, guard: DatabaseGuard, stop: Callable[..., None]) -> None:
        """End the run when its database outgrows its quota or its backends their memory."""
        try:
            breach = await guard.watch(self.database, self.backends)
        except Exception as error:  # the run goes on, bounded by the ceiling and the role's limits
            log.warning("cannot watch the database of sandbox %s: %s", self.id, error)
            return
        stop("killed", breach.reason)

    def _conclude(self, job: Job, outcome: Outcome, stops: list[tuple[Status, str, bool]]) -> None:
        usage = self.cgroup.usage() if self.cgroup is not None else None
        if usage is not None:
            outcome.memory_peak, outcome.cpu_seconds = usage.memory_peak, usage.cpu_seconds
        if usage is not None and usage.oom_kills and (not stops or stops[0][0] != "timeout"):
            mib = self.env.limits.memory // (1024 * 1024)
            stops.insert(0, ("killed", f"memory limit of {mib} MiB reached", False))
        if stops and outcome.status == "ok":
            outcome.status, outcome.reason, truncated = stops[0]
            outcome.truncated = outcome.truncated or truncated
        if outcome.status == "ok":
            code = outcome.exit_code
            if code is not None and code < 0:
                outcome.status = "killed"
                outcome.reason = f"killed by signal {signal.Signals(-code).name}"
            elif code != 0:
                outcome.status = "error"

    def kill(self) -> None:
        """Kill every process of the sandbox: its control group, its process group, its descendants."""
        if self.cgroup is not None:
            self.cgroup.kill()
        self.child.kill()

    # -- destroying --------------------------------------------------------------------------

    async def destroy(self) -> None:
        """Release everything in reverse order of acquisition; safe to repeat, hard to interrupt."""
        if self._destroyed:
            return
        self._destroyed = True
        self.kill()
        await finish_uncancelled(self._stack.aclose())
        log.debug("destroyed sandbox with %s", self.database.name)


async def _start_child(
    env: SandboxEnv, stack: AsyncExitStack, cgroup: RunCgroup | None, tapping: Tapping
) -> ChildProcess:
    """Spawn a child, serve its gate, wait until it is warm, and put it in the run's group."""
    child = await env.spawner.spawn(env.launcher)
    stack.push_async_callback(child.close)
    gate = asyncio.create_task(serve_gate(child.gate, env.databases.admin, tapping=tapping))
    stack.push_async_callback(_cancel_and_wait, gate)
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            line = await child.events.readline()
    except (TimeoutError, ValueError):
        line = b""
    if not _is_ready(line):
        child.kill()
        detail = ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                detail = (await child.stderr.read(4000)).decode(errors="replace").strip()
        raise SandboxFailed(f"the sandbox's child did not start: {detail or 'no output'}")
    if cgroup is not None:
        # the child waits for its job: nothing of a sample's runs yet, so the tree cannot change
        await asyncio.to_thread(cgroup.add, child.tree())
    return child


async def _emptied(cgroup: RunCgroup, timeout: float) -> bool:
    """Kill what is left in the group and wait until it is gone (reaped); False at the deadline."""
    cgroup.kill()
    try:
        async with asyncio.timeout(timeout):
            while cgroup.pids():
                await asyncio.sleep(0.005)  # polling a condition: the kernel sends no event for it here
    except TimeoutError:
        return False
    return True


async def _read_verdict(events: asyncio.StreamReader) -> ChildVerdict | None:
    """The check's verdict line; None when its process ended without one."""
    while line := await events.readline():
        with contextlib.suppress(ValidationError):
            return ChildVerdict.model_validate_json(line)
    return None


async def _drain(reader: asyncio.StreamReader, keep: int = 4000) -> bytes:
    """Read a stream to its end so the writer never blocks; keep its last `keep` bytes."""
    tail = b""
    while chunk := await reader.read(READ_CHUNK):
        tail = (tail + chunk)[-keep:]
    return tail


def _rlimits(limits: Limits, *, per_run_pids: bool) -> dict[str, int]:
    """Per-process limits, the second line; the uid-wide process count goes when the cgroup counts per run."""
    values = limits.as_job()
    if per_run_pids:
        del values["processes"]
    return values


def _is_ready(line: bytes) -> bool:
    try:
        return isinstance(child_event_adapter.validate_json(line), ChildReady)
    except ValidationError:
        return False


async def _cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _guard(pump: Awaitable[None], stop: Callable[..., None]) -> None:
    """Turn a pump's verdict (the budget is spent, a bad event, a stalled reader) into a stop."""
    try:
        await pump
    except Stopped as verdict:
        stop(verdict.status, verdict.reason, verdict.truncated)


async def _pump_output(stream: Stream, reader: asyncio.StreamReader, channel: Channel, started: float) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := await reader.read(READ_CHUNK):
        if text := decoder.decode(chunk):
            await channel.put_output(stream, text, time.perf_counter() - started)
    if tail := decoder.decode(b"", final=True):
        await channel.put_output(stream, tail, time.perf_counter() - started)


async def _pump_events(reader: asyncio.StreamReader, channel: Channel) -> None:
    """Validate each line where it arrives: only known, well-formed, bounded events get through."""
    while True:
        try:
            line = await reader.readline()
        except ValueError:
            raise Stopped("killed", "the sample wrote an oversized line to the runner's events channel") from None
        if not line:
            return
        try:
            event = child_event_adapter.validate_json(line)
        except ValidationError as error:
            problem = error.errors()[0]
            raise Stopped(
                "killed", f"the sample wrote an invalid message to the runner's events channel ({problem['msg']})"
            ) from None
        if isinstance(event, ChildReady | ChildRunning):
            continue
        await channel.put_event(event, len(line))


async def _close_when_done(pumps: list[asyncio.Task[None]], channel: Channel) -> None:
    await asyncio.gather(*pumps, return_exceptions=True)
    channel.close()
