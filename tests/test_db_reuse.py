"""A run database goes to another run only when its run provably changed nothing (runner/reuse.py).

Each test drives a factory of its own (reuse on) against the live runner's server:
the run's role connects, does one thing, and the database is released; the next
`create()` must give the same database back when that thing changed nothing, and
a fresh clone when it changed anything, in any of the ways PostgreSQL offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from runner import databases
from runner.database_guard import DatabaseGuard
from runner.databases import DatabaseFactory, RunDatabase
from runner.reuse import Baseline, Proof, Spare, prove

from .conftest import LiveRunner, session_ended

Step = Callable[[asyncpg.Connection], Awaitable[object]]


@asynccontextmanager
async def reusing_factory(live_runner: LiveRunner) -> AsyncIterator[DatabaseFactory]:
    runtime = live_runner.runtime
    factory = DatabaseFactory(runtime.server.admin, runtime.template, "reuse-test", reuse=True)
    await factory.open()
    try:
        yield factory
    finally:
        await factory.drop_orphans()  # the parked ones too
        left = await factory.leftovers()
        await factory.close()
    assert left == [], f"databases left behind: {left}"


@asynccontextmanager
async def as_the_run(
    live_runner: LiveRunner, factory: DatabaseFactory, database: RunDatabase
) -> AsyncIterator[asyncpg.Connection]:
    """Connected as the run's role, its backends in their memory group as in a sandbox."""
    runtime = live_runner.runtime
    guard = DatabaseGuard(
        factory, runtime.backend_memory, runtime.settings.db_size_limit, runtime.settings.db_memory_limit
    )
    group = await guard.attach(database)
    try:
        conn = await asyncpg.connect(**database.address.connect_kwargs(), timeout=10)
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        if group is not None:
            await guard.release(group)


async def release_settled(factory: DatabaseFactory, name: str) -> None:
    """Release `name`, then wait until every login begun so far has finished.

    A login under way keeps a released database parked (whose login it is cannot be told
    before it ends), so the next run would get a fresh clone: these tests want the reuse."""
    await factory.release(name)
    async with factory.admin_connection() as conn:
        began = await conn.fetchval("SELECT clock_timestamp()")
        for _ in range(1000):
            under_way = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'starting' AND backend_start <= $1", began
            )
            if not under_way:
                return
            await asyncio.sleep(0.01)  # polling: the server sends no event when a login ends
    raise AssertionError("a login stayed under way for 10 s")


async def run_then_next(live_runner: LiveRunner, factory: DatabaseFactory, step: Step) -> tuple[str, str]:
    """The database a run doing `step` had, and the one the next run gets."""
    first = await factory.create()
    async with as_the_run(live_runner, factory, first) as conn:
        with contextlib.suppress(asyncpg.PostgresError):  # a refused statement: what counts is what it left
            await step(conn)
    await release_settled(factory, first.name)
    second = await factory.create()
    await factory.release(second.name)
    return first.name, second.name


async def brand_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM brand"))


READS: dict[str, Step] = {
    "nothing": lambda conn: asyncio.sleep(0),
    "select": brand_count,
    "prepared statement": lambda conn: conn.fetch("SELECT * FROM product WHERE brand_id = $1", 1),
    "cursor in a transaction": lambda conn: _cursor(conn),
    "rolled-back read-only transaction": lambda conn: _rolled_back_read(conn),
    "session settings and advisory lock": lambda conn: conn.execute(
        "SET work_mem = '64MB'; SELECT pg_advisory_lock(1); LISTEN x; NOTIFY x, 'hi'"
    ),
    "row lock": lambda conn: conn.fetch("SELECT * FROM brand WHERE brand_id = 1 FOR UPDATE"),
    "statement refused": lambda conn: conn.execute("SELECT * FROM no_such_table"),
}


async def _cursor(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        async for _ in conn.cursor("SELECT * FROM sku"):
            break


async def _rolled_back_read(conn: asyncpg.Connection) -> None:
    transaction = conn.transaction()
    await transaction.start()
    await conn.fetch("SELECT * FROM brand")
    await transaction.rollback()


CHANGES: dict[str, Step] = {
    "insert": lambda conn: conn.execute("INSERT INTO brand (brand_name) VALUES ('x')"),
    "insert rolled back": lambda conn: _rolled_back_insert(conn),
    "update to the same value": lambda conn: conn.execute(
        "UPDATE brand SET brand_name = brand_name WHERE brand_id = 1"
    ),
    "delete": lambda conn: conn.execute("DELETE FROM sku WHERE sku_id = 1"),
    "truncate": lambda conn: conn.execute("TRUNCATE sku"),
    "temporary table": lambda conn: conn.execute("CREATE TEMP TABLE t (x int)"),
    "table": lambda conn: conn.execute("CREATE TABLE t (x int)"),
    "index": lambda conn: conn.execute("CREATE INDEX ON brand (brand_name)"),
    "function": lambda conn: conn.execute("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'"),
    "comment": lambda conn: conn.execute("COMMENT ON TABLE brand IS 'mine'"),
    "grant": lambda conn: conn.execute("GRANT SELECT ON brand TO PUBLIC"),
    "nextval": lambda conn: conn.fetchval("SELECT nextval('brand_brand_id_seq')"),
    "setval to the same value": lambda conn: conn.fetchval(
        "SELECT setval('brand_brand_id_seq', last_value, true) FROM brand_brand_id_seq"
    ),
    "insert refused by NOT NULL": lambda conn: conn.execute("INSERT INTO brand (brand_name) VALUES (NULL)"),
    "vacuum": lambda conn: conn.execute("VACUUM brand"),
    "analyze": lambda conn: conn.execute("ANALYZE brand"),
    "own role setting": lambda conn: conn.execute("ALTER ROLE CURRENT_USER SET work_mem = '1GB'"),
    "own role setting in the database": lambda conn: _role_setting_in_database(conn),
    "large object": lambda conn: conn.fetchval("SELECT lo_create(0)"),
    "default privileges": lambda conn: conn.execute("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC"),
}


async def _rolled_back_insert(conn: asyncpg.Connection) -> None:
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("INSERT INTO brand (brand_name) VALUES ('x')")
    await transaction.rollback()


async def _role_setting_in_database(conn: asyncpg.Connection) -> None:
    database = await conn.fetchval("SELECT current_database()")
    await conn.execute(f"ALTER ROLE CURRENT_USER IN DATABASE {database} SET work_mem = '1GB'")


@pytest.mark.parametrize("what", list(READS))
def test_a_run_that_only_read_leaves_its_database_for_the_next(live_runner: LiveRunner, what: str) -> None:
    async def scenario() -> tuple[str, str, int]:
        async with reusing_factory(live_runner) as factory:
            first, second = await run_then_next(live_runner, factory, READS[what])
            return first, second, factory.reuses["reused"]

    first, second, reused = live_runner.call(scenario())
    assert second == first, f"after {what!r} the next run got a fresh clone"
    assert reused == 1


@pytest.mark.parametrize("what", list(CHANGES))
def test_a_run_that_changed_anything_gets_its_database_dropped(live_runner: LiveRunner, what: str) -> None:
    async def scenario() -> tuple[str, str, list[str]]:
        async with reusing_factory(live_runner) as factory:
            first, second = await run_then_next(live_runner, factory, CHANGES[what])
            return first, second, await factory.leftovers()

    first, second, existing = live_runner.call(scenario())
    assert second != first, f"after {what!r} the next run got the same database"
    assert first not in existing, f"after {what!r} the changed database was not dropped"


def test_a_reused_database_is_reused_again_and_reads_as_fresh(live_runner: LiveRunner) -> None:
    """Three runs on one database: each sees the seeded rows and statistics of its own only."""

    async def scenario() -> list[tuple[str, int, int]]:
        seen = []
        async with reusing_factory(live_runner) as factory:
            for _ in range(3):
                database = await factory.create()
                async with as_the_run(live_runner, factory, database) as conn:
                    scans = await conn.fetchval("SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_user_tables")
                    seen.append((database.name, await brand_count(conn), int(scans)))
                    await conn.fetch("SELECT * FROM sku")
                await release_settled(factory, database.name)
        return seen

    seen = live_runner.call(scenario())
    assert len({name for name, _, _ in seen}) == 1, seen
    assert len({count for _, count, _ in seen}) == 1, seen
    assert [scans for _, _, scans in seen] == [0, 0, 0], f"a run saw the scans of the one before: {seen}"


def test_the_previous_runs_password_opens_nothing(live_runner: LiveRunner) -> None:
    async def scenario() -> tuple[str, str, str]:
        async with reusing_factory(live_runner) as factory:
            first = await factory.create()
            await release_settled(factory, first.name)
            second = await factory.create()
            try:
                async with as_the_run(live_runner, factory, second):
                    pass
                try:
                    conn = await asyncpg.connect(**first.address.connect_kwargs(), timeout=10)
                except asyncpg.InvalidPasswordError as error:
                    old = type(error).__name__
                else:
                    await conn.close()
                    old = "connected"
            finally:
                await factory.release(second.name)
            return first.name, second.name, old

    first, second, old = live_runner.call(scenario())
    assert second == first
    assert old == "InvalidPasswordError"


def test_a_session_left_open_is_ended_before_the_next_run(live_runner: LiveRunner) -> None:
    async def scenario() -> tuple[str, str, bool]:
        async with reusing_factory(live_runner) as factory:
            first = await factory.create()
            async with as_the_run(live_runner, factory, first) as conn:
                await release_settled(factory, first.name)
                second = await factory.create()
                await factory.release(second.name)
                return first.name, second.name, await session_ended(conn)
        raise AssertionError("unreachable")

    first, second, ended = live_runner.call(scenario())
    assert second == first
    assert ended, "the previous run's session outlived the hand-over"


def test_a_login_begun_with_the_old_password_keeps_the_database_parked(live_runner: LiveRunner) -> None:
    """A login that started before the password changed could still finish with it: wait until it is gone."""
    server = live_runner.runtime.server.admin

    async def scenario() -> tuple[str, str, str]:
        async with reusing_factory(live_runner) as factory:
            first = await factory.create()
            login = await asyncio.to_thread(_begin_login, server.host, server.port, first.name)
            try:
                await factory.release(first.name)
                during = await factory.create()  # the half-made login is under way: not this database
                await factory.release(during.name)
            finally:
                login.close()
            async with factory.admin_connection() as conn:
                while await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE state = 'starting'"):
                    await asyncio.sleep(0.05)  # the server notices the closed socket on its own
            after = await factory.create()
            await factory.release(after.name)
            return first.name, during.name, after.name

    first, during, after = live_runner.call(scenario())
    assert during != first
    assert after == first


def test_a_login_that_ends_while_the_spare_is_proven_again_lets_the_run_reuse_it(
    live_runner: LiveRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Not yet" is proven again a few milliseconds later: a login ending meanwhile costs no clone."""
    server = live_runner.runtime.server.admin
    proofs: list[str] = []

    async def scenario() -> tuple[str, str]:
        async with reusing_factory(live_runner) as factory:
            first = await factory.create()
            login = await asyncio.to_thread(_begin_login, server.host, server.port, first.name)
            try:
                await factory.release(first.name)

                async def prove_then_end_the_login(spare: Spare, baseline: Baseline) -> Proof:
                    proof = await prove(spare, baseline)
                    proofs.append(proof)
                    if proof == "not yet" and len(proofs) == 1:
                        login.close()  # the login ends after the first proof saw it under way
                        async with factory.admin_connection() as conn:
                            while await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE state = 'starting'"):
                                await asyncio.sleep(0.01)  # polling: the server sends no event when a login ends
                    return proof

                monkeypatch.setattr(databases, "prove", prove_then_end_the_login)
                second = await factory.create()
                await factory.release(second.name)
            finally:
                login.close()
            return first.name, second.name

    first, second = live_runner.call(scenario())
    assert proofs == ["not yet", "unchanged"]
    assert second == first


def _begin_login(host: str, port: int, role: str) -> socket.socket:
    """A login as `role` that stops where the server asks for the password (its SCRAM challenge)."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(f"{host}/.s.PGSQL.{port}")
    params = b"user\0" + role.encode() + b"\0database\0" + role.encode() + b"\0\0"
    sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    assert sock.recv(1)[:1] == b"R", "the server did not ask for a password"
    return sock


def test_a_database_handed_out_before_a_server_restart_is_never_used_again(live_runner: LiveRunner) -> None:
    """A crash resets the statistics the proof counts writes with: what a run wrote before it would read as nothing."""

    async def scenario() -> tuple[str, str, list[str]]:
        async with reusing_factory(live_runner) as factory:
            first = await factory.create()
            await factory.close()  # what the runtime does when PostgreSQL went away and came back
            await factory.open()
            await factory.release(first.name)
            second = await factory.create()
            await factory.release(second.name)
            return first.name, second.name, await factory.leftovers()

    first, second, existing = live_runner.call(scenario())
    assert second != first
    assert first not in existing, "the database of before the restart was not dropped"


async def _login_refused(database: RunDatabase) -> bool:
    try:
        conn = await asyncpg.connect(**database.address.connect_kwargs(), timeout=10)
    except asyncpg.InvalidPasswordError:
        return True
    await conn.close()
    return False


@pytest.mark.parametrize("final", [True, False], ids=["a sample's run", "an exercise's run"])
def test_a_run_ended_for_good_is_retired_at_once_and_its_release_asks_nothing_more(
    live_runner: LiveRunner, monkeypatch: pytest.MonkeyPatch, final: bool
) -> None:
    """`end_run` of a run nothing logs in for again changes the password there and then; an exercise's
    check still logs in as the role, so its run keeps the password until the release."""
    ended_at_release: list[str] = []

    async def scenario() -> tuple[int, bool, str, str]:
        async with reusing_factory(live_runner) as factory:
            first = await factory.create()
            async with as_the_run(live_runner, factory, first) as conn:
                await brand_count(conn)
                ended = await factory.end_run(first.name, final=final)
                refused = await _login_refused(first)
            original = databases.end_sessions

            async def counted(*args: Any, **kwargs: Any) -> Any:
                ended_at_release.append("end_sessions")
                return await original(*args, **kwargs)

            monkeypatch.setattr(databases, "end_sessions", counted)
            await release_settled(factory, first.name)
            monkeypatch.setattr(databases, "end_sessions", original)
            second = await factory.create()
            await factory.release(second.name)
            return ended.rows_touched, refused, first.name, second.name

    touched, refused, first, second = live_runner.call(scenario())
    assert touched == 0
    assert refused is final
    assert ended_at_release == ([] if final else ["end_sessions"])
    assert second == first


def test_a_run_ended_for_good_that_wrote_is_dropped_at_its_release(live_runner: LiveRunner) -> None:
    async def scenario() -> tuple[int, str, str]:
        async with reusing_factory(live_runner) as factory:
            first = await factory.create()
            async with as_the_run(live_runner, factory, first) as conn:
                await conn.execute("INSERT INTO brand (brand_id, brand_name) VALUES (100001, 'written')")
                ended = await factory.end_run(first.name, final=True)
            await release_settled(factory, first.name)
            second = await factory.create()
            await factory.release(second.name)
            return ended.rows_touched, first.name, second.name

    touched, first, second = live_runner.call(scenario())
    assert touched >= 1
    assert second != first
