"""The sandbox core with a fake child: lifecycle, cancellation at every step, budgets and stops (no OS, no DB)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterable
from typing import Any, cast

import pytest

from runner import sandbox as sandbox_module
from runner.backend_memory import BackendMemory
from runner.cgroups import CgroupLimits, RunCgroup, Usage
from runner.channel import wire_size
from runner.database_guard import DatabaseGuard
from runner.databases import DatabaseFactory
from runner.errors import PostgresUnavailable, SandboxFailed
from runner.models import OutputEvent, RunEvent, TimingEvent
from runner.pool import SandboxPool
from runner.sandbox import Job, Outcome, Sandbox, SandboxEnv

from .fakes import FakeDatabases, FakeLauncher, FakeSpawner, Pause, Program, Streams

pytestmark = pytest.mark.anyio


def make_env(spawner: FakeSpawner | None = None, databases: FakeDatabases | None = None) -> SandboxEnv:
    return SandboxEnv(databases or FakeDatabases(), FakeLauncher(), spawner or FakeSpawner())


def job(limit: int = 4096, timeout: float = 5.0) -> Job:
    return Job(code="print('x')", filename="sample.py", timeout=timeout, output_limit=limit)


async def run_program(
    program: Program, *, limit: int = 4096, timeout: float = 5.0
) -> tuple[list[RunEvent], Outcome, SandboxEnv]:
    env = make_env(FakeSpawner(program))
    box = await Sandbox.prepare(env)
    outcome = Outcome()
    events = [event async for event in box.execute(job(limit, timeout), outcome)]
    await box.destroy()
    return events, outcome, env


def assert_nothing_left(env: SandboxEnv) -> None:
    databases, spawner = env.databases, env.spawner
    assert isinstance(databases, FakeDatabases) and isinstance(spawner, FakeSpawner)
    assert databases.alive == [], f"databases left: {databases.alive}"
    assert all(child.closed for child in spawner.children), "a child was not closed"
    others = [
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task() and "TestRunner" not in getattr(t.get_coro(), "__qualname__", "")
    ]
    assert others == [], f"tasks left: {others}"


async def test_a_run_streams_its_output_and_leaves_nothing_behind() -> None:
    async def program(job: dict[str, Any], streams: Streams) -> int:
        assert job["code"] == "print('x')" and job["connect"]["user"] == "run0"
        await streams.print("x\n")
        await streams.event({"event": "timing", "name": "main", "seconds": 0.5, "start": 0.1})
        return 0

    events, outcome, env = await run_program(program)
    assert [type(e) for e in events] in ([OutputEvent, TimingEvent], [TimingEvent, OutputEvent])
    assert (outcome.status, outcome.exit_code, outcome.reason) == ("ok", 0, None)
    assert_nothing_left(env)


async def test_a_failing_sample_is_an_error() -> None:
    async def program(job: dict[str, Any], streams: Streams) -> int:
        await streams.print("Traceback...\n", "stderr")
        return 1

    _, outcome, env = await run_program(program)
    assert (outcome.status, outcome.exit_code) == ("error", 1)
    assert_nothing_left(env)


@pytest.mark.parametrize("step", ["database", "spawn"])
async def test_cancelling_preparation_at_each_step_leaves_nothing(step: str) -> None:
    pause = Pause()
    databases = FakeDatabases(pause=pause if step == "database" else None)
    spawner = FakeSpawner(pause=pause if step == "spawn" else None)
    env = make_env(spawner, databases)
    preparing = asyncio.create_task(Sandbox.prepare(env))
    await pause.reached.wait()
    preparing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await preparing
    assert_nothing_left(env)


async def test_cancelling_while_waiting_for_the_child_to_be_ready_leaves_nothing() -> None:
    started = asyncio.Event()

    class SlowSpawner(FakeSpawner):
        async def spawn(self, launcher: Any) -> Any:
            child = await super().spawn(launcher)
            started.set()
            return child

    spawner = SlowSpawner(ready=True)
    env = make_env(spawner, FakeDatabases(pause=Pause()))  # the database never finishes: the child waits
    preparing = asyncio.create_task(Sandbox.prepare(env))
    await started.wait()
    preparing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await preparing
    assert spawner.children and spawner.children[0].closed
    assert_nothing_left(env)


async def test_a_child_that_dies_during_warm_up_is_a_sandbox_failure_with_its_words() -> None:
    env = make_env(FakeSpawner(ready=False))
    with pytest.raises(SandboxFailed, match="no module named asyncpg"):
        await Sandbox.prepare(env)
    assert_nothing_left(env)


async def test_a_database_failure_surfaces_as_itself_and_the_child_is_closed() -> None:
    env = make_env(databases=FakeDatabases(fail=PostgresUnavailable("PostgreSQL is unreachable")))
    with pytest.raises(PostgresUnavailable):
        await Sandbox.prepare(env)
    assert_nothing_left(env)


async def test_output_beyond_the_budget_is_cut_at_the_budget_and_the_run_stopped() -> None:
    async def program(job: dict[str, Any], streams: Streams) -> int:
        while True:
            await streams.print("y" * 999 + "\n")

    events, outcome, env = await run_program(program, limit=4096)
    sent = sum(wire_size(e.text) for e in events if isinstance(e, OutputEvent))
    assert 4096 - 6 <= sent <= 4096
    assert (outcome.status, outcome.truncated, outcome.reason) == ("killed", True, "output limit of 4 KiB reached")
    assert_nothing_left(env)


async def test_events_are_charged_to_the_same_budget() -> None:
    async def program(job: dict[str, Any], streams: Streams) -> int:
        while True:
            await streams.event({"event": "timing", "name": "x" * 100, "seconds": 1.0, "start": 0.0})

    events, outcome, env = await run_program(program, limit=4096)
    sent = sum(len(e.model_dump_json()) for e in events)
    assert sent <= 4096 + 200  # each event is charged as the line that came in
    assert (outcome.status, outcome.truncated) == ("killed", True)
    assert_nothing_left(env)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"not json\n", "invalid message"),
        (json.dumps({"event": "finished", "status": "ok"}).encode() + b"\n", "invalid message"),
        (json.dumps({"event": "timing", "name": 1}).encode() + b"\n", "invalid message"),
        (b'{"event": "timing", "name": "' + b"z" * (600 * 1024) + b'"}\n', "oversized line"),
    ],
    ids=["not-json", "unknown-kind", "wrong-fields", "oversized"],
)
async def test_a_bad_event_ends_the_run_promptly_with_a_clear_reason(line: bytes, words: str) -> None:
    async def program(job: dict[str, Any], streams: Streams) -> int:
        await streams.event(line)
        await asyncio.Event().wait()  # would run until the time limit
        return 0

    _, outcome, env = await run_program(program, timeout=30)
    assert outcome.status == "killed" and outcome.reason and words in outcome.reason, outcome
    assert outcome.run_seconds < 5
    assert_nothing_left(env)


async def test_the_time_limit_holds() -> None:
    async def program(job: dict[str, Any], streams: Streams) -> int:
        await asyncio.Event().wait()
        return 0

    _, outcome, env = await run_program(program, timeout=0.2)
    assert (outcome.status, outcome.reason) == ("timeout", "stopped after the 0.2 s time limit")
    assert_nothing_left(env)


async def test_a_reader_that_stops_reading_holds_a_bounded_buffer_then_the_run_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sandbox_module, "STALL_TIMEOUT", 0.3)
    written = 0

    async def program(job: dict[str, Any], streams: Streams) -> int:
        nonlocal written
        while True:
            await streams.print("z" * 65536)
            written += 65536

    env = make_env(FakeSpawner(program))
    box = await Sandbox.prepare(env)
    outcome = Outcome()
    stream = box.execute(job(limit=64 << 20, timeout=30), outcome)
    await anext(stream)  # then stop reading
    loop = asyncio.get_running_loop()
    stalled = loop.time()
    while box.child.returncode is None and loop.time() - stalled < 5:
        await asyncio.sleep(0.05)
    assert box.child.returncode is not None, "the run went on although nobody read it"
    # the queue (16 reads of at most 64 KiB), asyncio's stream buffer (twice its 64 KiB limit), the pipe
    assert written <= (sandbox_module.QUEUE_EVENTS + 6) * 65536, f"{written >> 10} KiB buffered"
    rest = [event async for event in stream]
    assert len(rest) <= sandbox_module.QUEUE_EVENTS
    assert (outcome.status, outcome.reason) == ("killed", "stopped: the output was not read for 0.3 s")
    await box.destroy()
    assert_nothing_left(env)


async def test_abandoning_the_stream_midway_kills_the_child_and_destroy_releases_everything() -> None:
    async def program(job: dict[str, Any], streams: Streams) -> int:
        while True:
            await streams.print("tick\n")
            await asyncio.sleep(0.01)

    env = make_env(FakeSpawner(program))
    box = await Sandbox.prepare(env)
    outcome = Outcome()
    stream = box.execute(job(), outcome)
    await anext(stream)
    await stream.aclose()
    assert box.child.returncode == -9
    await box.destroy()
    await box.destroy()  # idempotent
    assert_nothing_left(env)


@pytest.mark.parametrize("steps_before_close", [0, 1])
async def test_closing_the_pool_right_after_a_release_destroys_the_released_sandbox(steps_before_close: int) -> None:
    """`runner expected` stops its runtime as soon as the last run ends: no release may be lost."""
    env = make_env()
    pool = SandboxPool(env, size=0)
    box = await pool.take()
    pool.release(box)  # its destruction is a task that has not begun yet
    for _ in range(steps_before_close):
        await asyncio.sleep(0)  # one loop step: the task starts its RELEASE_DELAY wait
    await pool.close()
    assert_nothing_left(env)


class LoopCheck:
    """Returns only once the event loop has run meanwhile: called on the loop's own thread, it waits for itself.

    Stands for a cgroup write that waits on the kernel (its cgroup lock, an RCU grace period):
    made on the loop, it would stall every run for as long."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: list[str] = []
        self.on_the_loop: list[str] = []

    def __call__(self, what: str) -> None:
        self.calls.append(what)
        ran = threading.Event()
        self.loop.call_soon_threadsafe(ran.set)
        if not ran.wait(1.0):
            self.on_the_loop.append(what)


class QuietGroup:
    """A run's cgroup with no processes and no usage: what the fakes below record is their own."""

    name = "run-quiet"

    def add(self, pids: Iterable[int]) -> None:
        pass

    def usage(self) -> Usage:
        return Usage(memory_peak=0, cpu_seconds=0.0, oom_kills=0)

    def pids(self) -> list[int]:
        return []

    def kill(self) -> None:
        pass

    def remove(self) -> bool:
        return True


class CheckedGroup(QuietGroup):
    def __init__(self, check: LoopCheck) -> None:
        self.check = check

    def add(self, pids: Iterable[int]) -> None:
        self.check("add")

    def remove(self) -> bool:
        self.check("remove")
        return True


class CheckedCgroups:
    version, where = "checked", "nowhere"

    def __init__(self, check: LoopCheck) -> None:
        self.check = check

    def create(self, name: str, limits: CgroupLimits) -> RunCgroup:
        self.check("create")
        return CheckedGroup(self.check)

    def close(self) -> None:
        pass


class CheckedBackendMemory:
    def __init__(self, check: LoopCheck) -> None:
        self.check = check

    def create(self, database: str, limit: int) -> object:
        self.check("backend group")
        return object()

    async def release(self, group: object, factory: object) -> bool:
        return True


async def test_cgroup_work_of_a_sandbox_never_runs_on_the_event_loop() -> None:
    check = LoopCheck(asyncio.get_running_loop())
    guard = DatabaseGuard(
        cast(DatabaseFactory, None), cast(BackendMemory, CheckedBackendMemory(check)), 1 << 30, 1 << 30
    )
    env = dataclasses.replace(make_env(), cgroups=CheckedCgroups(check), guard=guard)
    box = await Sandbox.prepare(env)
    await box.destroy()
    assert sorted(check.calls) == ["add", "backend group", "create", "remove"]
    assert check.on_the_loop == []


class HeldMaker:
    """Cgroups and backend groups whose creation, in a worker thread, waits until the test lets it go."""

    version, where = "held", "nowhere"

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.go = threading.Event()
        self.made: list[str] = []
        self.removed: list[str] = []

    def create(self, name: str, limits: CgroupLimits | int) -> HeldGroup:
        self.entered.release()
        assert self.go.wait(5), "the test never let the creation go"
        what = "backend group" if isinstance(limits, int) else "run group"
        self.made.append(what)
        return HeldGroup(what, self.removed)

    async def release(self, group: HeldGroup, factory: object) -> bool:
        return group.remove()


class HeldGroup(QuietGroup):
    def __init__(self, name: str, removed: list[str]) -> None:
        self.name, self._removed = name, removed

    def remove(self) -> bool:
        self._removed.append(self.name)
        return True

    def close(self) -> None:
        pass


async def test_a_preparation_abandoned_while_its_groups_are_made_in_threads_leaves_no_group_behind() -> None:
    """A thread cannot be cancelled: what it makes after the preparation was abandoned must still be removed."""
    maker = HeldMaker()
    guard = DatabaseGuard(cast(DatabaseFactory, None), cast(BackendMemory, maker), 1 << 30, 1 << 30)
    env = dataclasses.replace(make_env(), cgroups=maker, guard=guard)
    preparing = asyncio.create_task(Sandbox.prepare(env))
    for _ in range(2):  # both groups are being made, each in its thread
        assert await asyncio.to_thread(maker.entered.acquire, True, 5), "a group's creation never began"
    preparing.cancel()
    maker.go.set()
    with pytest.raises(asyncio.CancelledError):
        await preparing
    assert sorted(maker.made) == ["backend group", "run group"]
    assert sorted(maker.removed) == sorted(maker.made), "a group made after the cancellation was left behind"
    assert_nothing_left(env)
