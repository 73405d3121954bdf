"""The wire record: what PostgreSQL was really asked, read by a relay that changes no byte.

A relay served here on a unix socket stands between asyncpg and the test cluster
(as the gate's relay stands between a sandbox and the server), so every test sees
the record of real protocol traffic: the extended protocol of prepared statements,
simple queries, errors, transactions, cancel requests, cursors and large rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from runner.checking import Result
from runner.gate import open_server_socket
from runner.wire import ConnectionTap, MessageReader, WireRecord, relay

from .conftest import LiveRunner

Scenario = Callable[[dict[str, Any]], Awaitable[None]]


def recorded(live_runner: LiveRunner, scenario: Scenario) -> WireRecord:
    """Run `scenario(connect_kwargs)` with every connection relayed through one record."""

    async def go() -> WireRecord:
        admin = live_runner.runtime.server.admin
        record = WireRecord()
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory(prefix="wire-") as folder, socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(Path(folder) / ".s.PGSQL.5432"))
            listener.listen()
            listener.setblocking(False)

            async def serve() -> None:
                async with asyncio.TaskGroup() as relays:
                    while True:
                        client, _ = await loop.sock_accept(listener)
                        client.setblocking(False)
                        relays.create_task(relay(client, await open_server_socket(admin), ConnectionTap(record)))

            server = asyncio.create_task(serve())
            try:
                await scenario({**admin.connect_kwargs(), "host": folder, "port": 5432})
                assert await record.settled(5.0), "a relayed connection is still open"
            finally:
                server.cancel()
                await asyncio.gather(server, return_exceptions=True)
        return record

    result: WireRecord = live_runner.call(go(), timeout=60)
    return result


def as_result(record: WireRecord) -> Result:
    data = {"status": "ok", "exit_code": 0, "stdout": "", "stderr": "", "seconds": 1.0, "wire": record.as_dict()}
    return Result.from_record(data)


def test_prepared_statements_carry_their_text_parameters_and_rows(live_runner: LiveRunner) -> None:
    async def scenario(kwargs: dict[str, Any]) -> None:
        conn = await asyncpg.connect(**kwargs)
        assert await conn.fetch("SELECT generate_series(1, $1) AS n", 5)
        assert await conn.fetchval("SELECT $1::int + $2::int", 2, 3) == 5
        await conn.execute("SELECT 1; SELECT 2")
        await conn.close()

    result = as_result(recorded(live_runner, scenario))
    assert (result.connections, result.closed) == (1, 1)
    series = result.queries_matching(r"generate_series")
    assert [(q.parameters, q.rows, q.error) for q in series] == [(1, 5, None)]
    assert [q.parameters for q in result.queries_matching(r"\$1::int \+ \$2::int")] == [2]
    simple = result.queries_matching(r"^SELECT 1; SELECT 2$")
    assert [(q.parameters, q.rows) for q in simple] == [(0, 2)]
    assert all(q.end >= q.start for q in result.queries)


def test_errors_and_transaction_states_are_recorded(live_runner: LiveRunner) -> None:
    async def scenario(kwargs: dict[str, Any]) -> None:
        conn = await asyncpg.connect(**kwargs)
        try:
            async with conn.transaction():
                await conn.execute("CREATE TEMP TABLE t (x int)")
                await conn.execute("INSERT INTO t VALUES ($1)", 1)
                await conn.execute("SELECT * FROM no_such_table")
        except asyncpg.UndefinedTableError:
            pass
        with contextlib.suppress(asyncpg.PostgresSyntaxError):
            await conn.execute("SELEKT 1")
        await conn.close()

    result = as_result(recorded(live_runner, scenario))
    states = [(q.sql.split()[0].upper().rstrip(";"), q.transaction_after, q.error) for q in result.queries]
    assert ("BEGIN", "transaction", None) in states
    assert ("INSERT", "transaction", None) in states
    assert ("SELECT", "failed", "42P01") in states
    assert ("ROLLBACK", "idle", None) in states
    assert ("SELEKT", "idle", "42601") in states


def test_a_query_cancelled_by_a_timeout_is_seen_cancelled_on_the_server(live_runner: LiveRunner) -> None:
    async def scenario(kwargs: dict[str, Any]) -> None:
        conn = await asyncpg.connect(**kwargs)
        try:
            async with asyncio.timeout(0.3):
                await conn.fetchval("SELECT pg_sleep(5)")
        except TimeoutError:
            pass
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()

    result = as_result(recorded(live_runner, scenario))
    (sleep,) = result.queries_matching(r"pg_sleep")
    assert sleep.cancelled and sleep.error == "57014"
    assert sleep.end - sleep.start < 2.0
    assert len(result.cancel_requests) == 1 and sleep.start < result.cancel_requests[0] <= sleep.end
    assert result.connections == 1  # the cancel request's connection is not counted


def test_concurrent_queries_on_a_pool_overlap_in_the_record(live_runner: LiveRunner) -> None:
    async def scenario(kwargs: dict[str, Any]) -> None:
        async with asyncpg.create_pool(**kwargs, min_size=3, max_size=3) as pool:
            await asyncio.gather(*(pool.fetchval("SELECT pg_sleep(0.2)") for _ in range(3)))
            for _ in range(2):
                await pool.fetchval("SELECT pg_sleep(0.05)")

    result = as_result(recorded(live_runner, scenario))
    assert result.connections == 3
    assert result.closed == 3  # the pool's close says goodbye on each
    assert result.max_concurrency() == 3
    later = max(q.start for q in result.queries_matching(r"pg_sleep\(0\.05\)"))
    assert result.max_concurrency(start=later - 0.001) == 1


def test_cursors_executemany_and_large_rows_are_counted(live_runner: LiveRunner) -> None:
    big = "x" * (3 * 1024 * 1024)

    async def scenario(kwargs: dict[str, Any]) -> None:
        conn = await asyncpg.connect(**kwargs)
        async with conn.transaction():
            rows = [r async for r in conn.cursor("SELECT generate_series(1, 25)", prefetch=10)]
            assert len(rows) == 25
        await conn.execute("CREATE TEMP TABLE u (x int PRIMARY KEY)")
        with contextlib.suppress(asyncpg.UniqueViolationError):
            await conn.executemany("INSERT INTO u VALUES ($1)", [(1,), (1,), (2,)])
        assert await conn.fetchval("SELECT count(*) FROM u") == 0
        assert await conn.fetchval("SELECT $1::text", big) == big  # the relay changed no byte
        await conn.close()

    result = as_result(recorded(live_runner, scenario))
    assert sum(q.rows for q in result.queries_matching(r"generate_series\(1, 25\)")) == 25
    inserts = result.queries_matching(r"INSERT INTO u")
    assert [q.error for q in inserts] == [None, "23505"]  # the third was skipped by the server
    assert [q.rows for q in result.queries_matching(r"\$1::text")] == [1]


def test_messages_split_anywhere_read_the_same() -> None:
    def message(kind: bytes, body: bytes) -> bytes:
        return kind + struct.pack("!I", len(body) + 4) + body

    startup = struct.pack("!II", 8 + 6, 196608) + b"user\0\0"
    stream = (
        startup + message(b"Q", b"SELECT 1\0") + message(b"d", b"x" * 100_000) + message(b"P", b"s1\0SELECT $1\0\0\0")
    )
    whole = list(MessageReader(frozenset(b"QP"), startup=True).feed(stream))
    reader = MessageReader(frozenset(b"QP"), startup=True)
    pieces = [m for i in range(0, len(stream), 7) for m in reader.feed(stream[i : i + 7])]
    assert pieces == whole
    assert [kind for kind, _ in whole] == [0, ord("Q"), ord("d"), ord("P")]
    assert whole[1][1] == b"SELECT 1\0" and whole[2][1] == b""  # copy data is skipped, not kept


def test_the_record_stays_small_whatever_the_statements() -> None:
    from runner.wire import MAX_QUERIES, MAX_SQL

    def message(kind: bytes, body: bytes) -> bytes:
        return kind + struct.pack("!I", len(body) + 4) + body

    record = WireRecord()
    tap = ConnectionTap(record)
    tap.from_client(struct.pack("!II", 8 + 6, 196608) + b"user\0\0")
    sql = b"SELECT '" + b"x" * 60_000 + b"'\0"
    for _ in range(3):
        tap.from_client(message(b"Q", sql))
        tap.from_server(message(b"C", b"SELECT 1\0") + message(b"Z", b"I"))
    assert [len(q.sql) for q in record.queries] == [MAX_SQL] * 3
    assert record.queries[0].sql is record.queries[2].sql  # one copy of a text however often it runs
    for _ in range(MAX_QUERIES):
        tap.from_client(message(b"Q", b"SELECT 1\0"))
        tap.from_server(message(b"Z", b"I"))
    assert (len(record.queries), record.dropped) == (MAX_QUERIES, 3)
