"""Attacks on PostgreSQL from inside a sample: other databases and roles, destructive SQL, time, connections.

The child redirects `asyncpg.connect` and `create_pool` to the run's own database;
these samples go around the redirect (`asyncpg.connection.connect.__wrapped__`, the
original function) or below it (the raw socket) to try other credentials.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from runner.databases import ROLE_CONNECTION_LIMIT, ROLE_DEFAULTS, DatabaseFactory, RunDatabase
from runner.template import SANDBOX_OWNER

from ..conftest import LiveRunner, output_text
from .support import BackgroundRun, assert_next_run_is_pristine, attack, lines_starting

ADDRESS = """
import asyncpg, os
connect = asyncpg.connection.connect.__wrapped__  # the real asyncpg.connect, around the redirect
own = await asyncpg.connect()
socket_path = own._addr
HOST, PORT = os.path.dirname(socket_path), int(socket_path.rsplit(".", 1)[1])
USER, PASSWORD, DATABASE = own._params.user, own._params.password, own._params.database
"""


@pytest.fixture
def other_run(live_runner: LiveRunner) -> Iterator[RunDatabase]:
    """Another run's database and role, alive while the attack runs."""
    factory = live_runner.runtime.factory
    assert isinstance(factory, DatabaseFactory)
    other = live_runner.call(factory.create())
    yield other
    live_runner.call(factory.drop(other.name))


def test_going_around_the_redirect_reaches_no_other_database_or_role(
    live_runner: LiveRunner, other_run: RunDatabase
) -> None:
    template = live_runner.runtime.template
    code = (
        ADDRESS
        + f"""
attempts = [
    ("own database, directly", USER, PASSWORD, DATABASE),
    ("the template", USER, PASSWORD, {template!r}),
    ("another run's database", USER, PASSWORD, {other_run.name!r}),
    ("the postgres database", USER, PASSWORD, "postgres"),
    ("template1", USER, PASSWORD, "template1"),
    ("another run's role", {other_run.name!r}, PASSWORD, {other_run.name!r}),
    ("the admin with the lesson's password", "postgres", "password", "postgres"),
    ("the admin with no password", "postgres", "", "postgres"),
    ("the admin with the run's password", "postgres", PASSWORD, DATABASE),
    ("the sandbox owner", {SANDBOX_OWNER!r}, PASSWORD, DATABASE),
]
for label, user, password, database in attempts:
    try:
        conn = await connect(host=HOST, port=PORT, user=user, password=password, database=database, timeout=5)
    except (asyncpg.PostgresError, OSError) as error:
        print("refused:", label, type(error).__name__)
    else:
        print("CONNECTED:", label, await conn.fetchval("SELECT current_user || '@' || current_database()"))
        await conn.close()
"""
    )
    text = output_text(attack(live_runner, code))
    connected = lines_starting(text, "CONNECTED")
    assert len(connected) == 1 and connected[0].startswith("CONNECTED: own database, directly"), text
    assert len(lines_starting(text, "refused")) == 9, text
    assert_next_run_is_pristine(live_runner)


def test_destructive_sql_outside_its_own_database_is_refused(live_runner: LiveRunner, other_run: RunDatabase) -> None:
    template = live_runner.runtime.template
    statements = [
        "DROP DATABASE {own}",
        f'DROP DATABASE "{template}"',
        f"DROP DATABASE {other_run.name}",
        "DROP DATABASE template1",
        f"DROP ROLE {other_run.name}",
        "DROP ROLE postgres",
        f"DROP ROLE {SANDBOX_OWNER}",
        "ALTER ROLE postgres PASSWORD 'pwned'",
        "ALTER ROLE postgres NOLOGIN",
        f"ALTER ROLE {other_run.name} PASSWORD 'pwned'",
        f"ALTER ROLE {SANDBOX_OWNER} LOGIN PASSWORD 'pwned'",
        "ALTER ROLE current_user CREATEDB",
        "ALTER ROLE current_user CREATEROLE",
        "ALTER ROLE current_user REPLICATION",
        "ALTER ROLE current_user BYPASSRLS",
        "ALTER ROLE current_user CONNECTION LIMIT -1",
        "ALTER DATABASE {own} CONNECTION LIMIT -1",
        "ALTER DATABASE {own} OWNER TO current_user",
        f'ALTER DATABASE "{template}" ALLOW_CONNECTIONS true',
        "ALTER SYSTEM SET listen_addresses = '*'",
        "ALTER SYSTEM RESET ALL",
        "CREATE ROLE intruder LOGIN SUPERUSER PASSWORD 'pwned'",
        "CREATE ROLE intruder LOGIN PASSWORD 'pwned'",
        "GRANT pg_read_server_files TO current_user",
        "GRANT pg_execute_server_program TO current_user",
        "GRANT postgres TO current_user",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "COPY (SELECT 1) TO PROGRAM 'touch /tmp/pwned'",
        "CREATE TEMP TABLE loot (line text); COPY loot FROM PROGRAM 'id'",
        "COPY (SELECT 1) TO '/tmp/pwned'",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_read_binary_file('global/pg_control')",
        "SELECT pg_ls_dir('.')",
        "SELECT lo_import('/etc/passwd')",
        "LOAD 'plpgsql'",
        "CREATE EXTENSION IF NOT EXISTS dblink",
        "CREATE EXTENSION IF NOT EXISTS file_fdw",
        "CREATE FUNCTION evil() RETURNS int AS 'libc.so.6', 'getpid' LANGUAGE c",
        "SELECT pg_reload_conf()",
        "SELECT pg_rotate_logfile()",
        "CHECKPOINT",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'postgres'",
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename = 'postgres'",
    ]
    code = f"""
import asyncpg
conn = await asyncpg.connect()
own = await conn.fetchval("SELECT current_database()")
admin_sessions = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = 'postgres'")
print("admin sessions", admin_sessions)
for sql in {statements!r}:
    sql = sql.format(own=own)
    try:
        result = await conn.fetch(sql)
        print("ALLOWED", sql, [tuple(row) for row in result])
    except asyncpg.PostgresError as error:
        print("refused", type(error).__name__)
"""
    text = output_text(attack(live_runner, code))
    assert int(lines_starting(text, "admin sessions")[0].split()[-1]) >= 1, "no admin session to attack"
    allowed = lines_starting(text, "ALLOWED")
    assert allowed == [], allowed
    assert len(lines_starting(text, "refused")) == len(statements), text
    assert_next_run_is_pristine(live_runner)


def test_wrecking_its_own_database_does_not_reach_the_next_run(live_runner: LiveRunner) -> None:
    code = """
import asyncpg
conn = await asyncpg.connect()
tables = [r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
await conn.execute("UPDATE product SET product_name = 'wrecked'")
await conn.execute("TRUNCATE sku CASCADE")
await conn.execute("SET ROLE workshop_sandbox")
await conn.execute("DROP SCHEMA public CASCADE")
print("wrecked", len(tables), "tables")
"""
    summary = attack(live_runner, code)
    assert output_text(summary).startswith("wrecked"), output_text(summary)
    assert_next_run_is_pristine(live_runner)


def test_sleeping_in_a_query_with_the_statement_timeout_lifted(live_runner: LiveRunner) -> None:
    code = """
import asyncpg
conn = await asyncpg.connect()
print("statement_timeout", await conn.fetchval("SHOW statement_timeout"), flush=True)
await conn.execute("SET statement_timeout = 0")
await conn.execute("SELECT pg_sleep(1e6)")
print("woke up")
"""
    summary = attack(live_runner, code)
    limit = live_runner.settings.run_timeout
    assert summary["status"] == "timeout", summary
    assert output_text(summary) == f"statement_timeout {ROLE_DEFAULTS['statement_timeout']}\n"
    assert limit <= summary["duration"]["run"] < limit + 5
    factory = live_runner.runtime.factory
    assert isinstance(factory, DatabaseFactory)

    async def sleeping_backends() -> list[str]:
        async with factory._pool.acquire() as conn:  # type: ignore[union-attr]
            rows = await conn.fetch(
                "SELECT usename FROM pg_stat_activity WHERE starts_with(usename, $1) AND query LIKE '%pg_sleep%'",
                factory.prefix,
            )
        return [r["usename"] for r in rows]

    deadline = time.monotonic() + 10
    while (left := live_runner.call(sleeping_backends())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], "the sleeping query outlived its run"
    assert_next_run_is_pristine(live_runner)


def test_exhausting_connections_stops_at_the_roles_limit(live_runner: LiveRunner) -> None:
    code = """
import asyncio, asyncpg
held = []
try:
    for _ in range(100):
        held.append(await asyncpg.connect(timeout=5))
    print("opened", len(held), "without refusal", flush=True)
except (asyncpg.PostgresError, OSError) as error:
    print("opened", len(held), "then", type(error).__name__, flush=True)
await asyncio.sleep(4)
"""
    attacker = BackgroundRun(live_runner, code)
    try:
        assert attacker.wait_for("opened", 30), attacker.text
        assert_next_run_is_pristine(live_runner)  # a reader's run while the attacker holds all it can
    finally:
        summary = attacker.finish()
    opened = lines_starting(attacker.text, "opened")[0]
    assert opened.split()[1:] == [str(ROLE_CONNECTION_LIMIT), "then", "TooManyConnectionsError"], opened
    assert summary["status"] == "ok", summary
    assert_next_run_is_pristine(live_runner)


STALL_HANDSHAKES = """
import os, socket, struct, time
import asyncpg
from runner.child import connect_through_gate  # the only way to the server: ask the runner's gate
own = await asyncpg.connect()
user, database = own._params.user, own._params.database
await own.close()
startup = b"".join(part.encode() + b"\\0" for part in ("user", user, "database", database)) + b"\\0"
packet = struct.pack("!ii", 8 + len(startup), 196608) + startup
for _ in range({workers} - 1):  # several processes: each may hold 256 open files
    if os.fork() == 0:
        break
held, outcome = [], "limit of this process"
deadline = time.monotonic() + 4  # as many as the runner hands out in 4 s
while len(held) < 240 and time.monotonic() < deadline:
    try:
        sock = connect_through_gate()
    except OSError as error:
        outcome = type(error).__name__
        break
    try:
        sock.settimeout(5)
        sock.sendall(packet)
        reply = sock.recv(1)  # b"R": the server asks for the password, which never comes
    except OSError as error:
        sock.close()
        outcome = type(error).__name__
        break
    if reply != b"R":
        sock.close()
        outcome = "the server refused: " + repr(reply)
        break
    held.append(sock)
os.write(1, f"stalled {{len(held)}} {{outcome}}\\n".encode())  # one write: the workers share stdout
time.sleep({hold})
"""


def test_stalled_handshakes_leave_the_next_run_working(live_runner: LiveRunner) -> None:
    """Handshakes that never finish take server slots the role's CONNECTION LIMIT does not count.

    Held for longer than the runner's health-check period; once the run is over the slots
    must come back at once (the next run may first be told to retry, as a 503 with Retry-After).
    """
    summary = attack(live_runner, STALL_HANDSHAKES.format(workers=2, hold=2.5))
    stalled = lines_starting(output_text(summary), "stalled")
    assert len(stalled) == 2, output_text(summary)
    held = sum(int(line.split()[1]) for line in stalled)
    assert 0 < held <= 2 * (32 + 16 * 5), stalled  # the gate's burst and rate bound it, far below max_connections
    assert_next_run_is_pristine(live_runner, honour_retry_after=True)


def test_stalled_handshakes_do_not_lock_out_a_concurrent_run(live_runner: LiveRunner) -> None:
    attacker = BackgroundRun(live_runner, STALL_HANDSHAKES.format(workers=2, hold=5))
    try:
        assert attacker.wait_for("stalled", 30), attacker.text
        time.sleep(0.5)  # both workers have had their turn
        stalled = lines_starting(attacker.text, "stalled")
        try:
            assert_next_run_is_pristine(live_runner)
        except AssertionError as failure:
            pytest.fail(
                f"while one sample stalled PostgreSQL handshakes ({stalled}), another reader's run failed: {failure}"
            )
    finally:
        attacker.finish()
    assert_next_run_is_pristine(live_runner, honour_retry_after=True)
