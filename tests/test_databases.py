"""Each run's role reaches its own database and nothing else; nothing outlives a run."""

from __future__ import annotations

import asyncpg
import pytest

from runner.databases import DatabaseFactory, run_prefix
from runner.template import TEMPLATE_PREFIX

from .conftest import LiveRunner, output_text


async def _connect_fails(**kwargs: object) -> str:
    try:
        conn = await asyncpg.connect(**kwargs, timeout=5)
    except (asyncpg.PostgresError, OSError) as error:
        return type(error).__name__
    await conn.close()
    return "connected"


def test_a_runs_role_connects_to_its_own_database_only(live_runner: LiveRunner) -> None:
    runtime = live_runner.runtime
    factory = runtime.factory
    assert isinstance(factory, DatabaseFactory)

    assert runtime.pool is not None
    guard = runtime.pool.env.guard

    async def scenario() -> dict[str, str]:
        mine, other = await factory.create(), await factory.create()
        # as a sandbox does: the backends' memory groups first (a run role's login joins its group)
        groups = [await guard.attach(mine), await guard.attach(other)] if guard is not None else []
        try:
            me = mine.address.connect_kwargs()
            results = {"own": await _connect_fails(**me)}
            results["other run"] = await _connect_fails(**{**me, "database": other.name})
            results["template"] = await _connect_fails(**{**me, "database": runtime.template})
            results["postgres"] = await _connect_fails(**{**me, "database": "postgres"})
            results["as admin without its password"] = await _connect_fails(**{**me, "user": "postgres"})
            results["no password"] = await _connect_fails(**{**me, "password": ""})
        finally:
            for group in groups:
                if group is not None and guard is not None:
                    await guard.release(group)
            await factory.drop(mine.name)
            await factory.drop(other.name)
        return results

    results = live_runner.call(scenario())
    assert results.pop("own") == "connected"
    assert all(outcome != "connected" for outcome in results.values()), results


def test_the_admin_needs_its_password(live_runner: LiveRunner) -> None:
    admin = live_runner.runtime.server.admin
    outcome = live_runner.call(_connect_fails(**{**admin.connect_kwargs(), "password": "password"}))
    assert outcome == "InvalidPasswordError"


def test_a_run_cannot_escalate_inside_postgres(live_runner: LiveRunner) -> None:
    code = """
import asyncpg
conn = await asyncpg.connect()
for sql in ["ALTER ROLE current_user SUPERUSER", "ALTER SYSTEM SET fsync = on",
            "COPY (SELECT 1) TO PROGRAM 'true'", "CREATE DATABASE escape", "DROP DATABASE postgres"]:
    try:
        await conn.execute(sql)
        print("ALLOWED", sql)
    except asyncpg.PostgresError as error:
        print("refused:", type(error).__name__)
"""
    text = output_text(live_runner.run("chapter_05/03_pool", code=code).json())
    assert "ALLOWED" not in text
    assert text.count("refused:") == 5


def test_nothing_is_left_behind_after_runs(live_runner: LiveRunner) -> None:
    for _ in range(3):
        assert live_runner.run("chapter_05/06_sync_generator").json()["status"] == "ok"
    factory = live_runner.runtime.factory
    assert factory is not None

    pool = live_runner.runtime.pool
    assert pool is not None

    async def leftovers() -> tuple[set[str], str]:
        import asyncio

        # sandboxes are destroyed in the background, just after the answer; the databases proven
        # unchanged are parked for the next runs (runner/reuse.py), and not leftovers
        for _ in range(250):
            if pool.state().settled and set(await factory.leftovers()) == pool.state().databases | factory.parked():
                break
            await asyncio.sleep(0.1)
        names = set(await factory.leftovers())
        snapshot = pool.state()
        return names - snapshot.databases - factory.parked(), f"{snapshot} parked={factory.parked()} all={names}"

    extra, state = live_runner.call(leftovers(), timeout=60)
    assert extra == set(), state
    assert len(pool.state().databases) == pool.size  # the ready sandboxes hold exactly their own databases


def test_a_replica_removes_its_own_orphans_and_keeps_others(live_runner: LiveRunner) -> None:
    runtime = live_runner.runtime
    admin = runtime.server.admin
    assert runtime.factory is not None
    ours = DatabaseFactory(admin, runtime.template, "replica-a")  # not the live runner's: its pool holds databases
    theirs = DatabaseFactory(admin, runtime.template, "replica-b")
    assert ours.prefix == run_prefix("replica-a") != theirs.prefix

    async def scenario() -> tuple[int, list[str]]:
        await ours.open()
        await theirs.open()
        try:
            await ours.create()
            kept = await theirs.create()
            removed = await ours.drop_orphans()
            remaining = await theirs.leftovers()
            await theirs.drop(kept.name)
            return removed, remaining
        finally:
            await ours.close()
            await theirs.close()

    removed, remaining = live_runner.call(scenario())
    assert removed == 1  # one name: the run's database and its role
    assert len(remaining) == 1 and remaining[0].startswith(theirs.prefix)


def test_the_template_accepts_no_connections(live_runner: LiveRunner) -> None:
    admin = live_runner.runtime.server.admin
    assert live_runner.runtime.template.startswith(TEMPLATE_PREFIX)
    outcome = live_runner.call(_connect_fails(**{**admin.connect_kwargs(), "database": live_runner.runtime.template}))
    assert outcome != "connected"


@pytest.mark.parametrize("name", ["postgres", "workshop_template_x", "wsrun_000000_x"])
def test_drop_refuses_names_that_are_not_this_runners(live_runner: LiveRunner, name: str) -> None:
    assert live_runner.runtime.factory is not None
    with pytest.raises(ValueError):
        live_runner.call(live_runner.runtime.factory.drop(name))


def test_an_admin_connection_goes_back_to_the_pool_without_a_statement(live_runner: LiveRunner) -> None:
    """asyncpg's default reset costs the server a statement per release; the admin's own never need one."""
    runtime = live_runner.runtime

    async def scenario() -> str:
        factory = DatabaseFactory(runtime.server.admin, runtime.template, "reset-test")  # a pool no refill shares
        await factory.open()
        try:
            async with factory.admin_connection() as conn:
                pid = conn.get_server_pid()
                await conn.fetchval("SELECT 'the last statement before the release'")
            watcher = await asyncpg.connect(**factory.admin.connect_kwargs())
            try:
                return str(await watcher.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid))
            finally:
                await watcher.close()
        finally:
            await factory.close()

    assert live_runner.call(scenario()) == "SELECT 'the last statement before the release'"
