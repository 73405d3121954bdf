"""The pool in-process: a burst waits for the next sandbox ready, preparations a few at a time, size from demand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from runner import pool as pool_module
from runner.databases import RunDatabase
from runner.errors import PostgresUnavailable
from runner.pool import SandboxPool
from runner.sandbox import Sandbox

from .fakes import FakeDatabases, FakeSpawner, Pause
from .test_sandbox_core import assert_nothing_left, make_env

pytestmark = pytest.mark.anyio


@dataclass
class CountingDatabases(FakeDatabases):
    """Counts the clones under way at once (each takes a few turns of the loop, as a real one awaits)."""

    active: int = 0
    most: int = 0

    async def create(self) -> RunDatabase:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            return await super().create()
        finally:
            self.active -= 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_burst_on_an_empty_pool_is_served_first_come_first_served_a_few_at_a_time() -> None:
    databases = CountingDatabases()
    env = make_env(databases=databases)
    pool = SandboxPool(env, size=0, prepare_concurrency=2)
    served: list[int] = []

    async def reader(index: int) -> Sandbox:
        sandbox = await pool.take()
        served.append(index)
        return sandbox

    boxes = await asyncio.wait_for(asyncio.gather(*(reader(i) for i in range(6))), 5)
    assert len({box.id for box in boxes}) == 6
    assert served == list(range(6))  # the first to ask got the first sandbox ready
    assert databases.most == 2, f"{databases.most} preparations at once"
    assert len(databases.created) == 6  # one each: no preparation wasted on a second path
    for box in boxes:
        pool.release(box)
    await pool.close()
    assert_nothing_left(env)


async def test_the_pool_grows_with_the_runs_wanted_at_once_and_shrinks_back_when_that_passes() -> None:
    clock = Clock()
    env = make_env()
    pool = SandboxPool(env, size=1, refill_concurrency=2, max_size=4, clock=clock)
    for _ in range(5):  # one reader, one run after the other, slowly: one sandbox at a time is enough
        pool.release(await asyncio.wait_for(pool.take(), 5))
        clock.now += pool_module.RATE_WINDOW
    assert pool.target() == 1
    boxes = await asyncio.wait_for(asyncio.gather(*(pool.take() for _ in range(6))), 5)
    assert pool.target() == 4  # six at once (a room pressing Run), capped at the most
    for box in boxes:
        pool.release(box)
    await asyncio.wait_for(_until(lambda: pool.state().settled and pool.ready == 4), 5)
    clock.now += pool_module.DEMAND_WINDOW + 1
    assert pool.target() == 1


async def test_a_fast_reader_keeps_as_many_ready_as_are_taken_while_one_is_prepared() -> None:
    clock = Clock()
    env = make_env()
    pool = SandboxPool(env, size=1, max_size=8, clock=clock)
    for _ in range(20):  # a run every 0.1 s for 2 s: 4 a second
        pool.release(await asyncio.wait_for(pool.take(), 5))
        clock.now += 0.1
    pool._prepare_seconds = 0.5  # a preparation takes half a second: two are taken meanwhile, and half again
    assert pool.target() == 3
    await pool.close()
    assert_nothing_left(env)
    await pool.close()
    assert_nothing_left(env)


async def test_a_reader_that_leaves_while_waiting_gives_its_sandbox_to_the_pool() -> None:
    env = make_env()
    pool = SandboxPool(env, size=0)
    leaving = asyncio.create_task(pool.take())
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    await asyncio.wait_for(_until(lambda: pool.state().preparing == 0), 5)
    assert pool.ready == 1 and pool.busy == 0  # prepared for nobody now: the next reader takes it
    assert not pool._waiters, "the reader that left still counts as waiting (and asks for another sandbox)"
    box = await pool.take()
    pool.release(box)
    await pool.close()
    assert_nothing_left(env)


async def test_a_sandbox_handed_to_a_reader_that_left_meanwhile_goes_to_the_next_one() -> None:
    pause = Pause()
    env = make_env(spawner=FakeSpawner(pause=pause))
    pool = SandboxPool(env, size=0, prepare_concurrency=1)
    leaving = asyncio.create_task(pool.take())
    await asyncio.wait_for(pause.reached.wait(), 5)
    pause.go.set()
    for _ in range(1000):  # inline, not in a task of its own: the reader's wake-up is queued behind this step
        if not pool._waiters:
            break  # handed over; the reader has not resumed yet
        await asyncio.sleep(0)
    assert not leaving.done()
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    assert pool.ready == 1 and pool.busy == 0
    box = await asyncio.wait_for(pool.take(), 5)
    pool.release(box)
    await pool.close()
    assert_nothing_left(env)


async def test_readers_waiting_for_a_sandbox_get_the_failure_when_the_database_is_down() -> None:
    env = make_env(databases=FakeDatabases(fail=PostgresUnavailable("PostgreSQL is unreachable")))
    pool = SandboxPool(env, size=0)
    results = await asyncio.wait_for(asyncio.gather(*(pool.take() for _ in range(3)), return_exceptions=True), 5)
    assert all(isinstance(result, PostgresUnavailable) for result in results), results
    await pool.close()
    assert_nothing_left(env)


async def _until(condition: object) -> None:
    assert callable(condition)
    while not condition():
        await asyncio.sleep(0)


async def test_a_used_sandbox_is_cleaned_up_as_soon_as_its_answer_is_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The refill starts right after the answer, not a fixed delay later: a paced reader's next run finds it done."""
    monkeypatch.setattr(pool_module, "RELEASE_DELAY", 3600.0)  # the fallback for an answer that never goes out
    databases = FakeDatabases()
    env = make_env(databases=databases)
    pool = SandboxPool(env, size=1)
    sandbox = await asyncio.wait_for(pool.take(), 5)
    answered = asyncio.Event()
    pool.release(sandbox, after=answered)
    for _ in range(20):
        await asyncio.sleep(0)
    assert sandbox.database.name not in databases.dropped, "cleaned up before the answer went out"
    answered.set()
    await asyncio.wait_for(_until(lambda: sandbox.database.name in databases.dropped), 5)
    await asyncio.wait_for(_until(lambda: pool.state().settled), 5)
    await pool.close()
    assert_nothing_left(env)
