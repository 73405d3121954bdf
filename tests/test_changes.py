"""What a run did to its database: the arithmetic alone, then real runs against the embedded PostgreSQL."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from runner.changes import DatabaseChanges, committed, end_sessions
from runner.databases import DatabaseFactory

from .conftest import LiveRunner, session_ended

CONNECT = (
    "import asyncpg\nconn = await asyncpg.connect(host='127.0.0.1', port=5432, user='postgres', password='password')\n"
)


@pytest.mark.parametrize(
    ("attempted", "live", "modified", "expected"),
    [
        ((3, 2, 1), 2, 6, (3, 2, 1)),  # nothing rolled back: the attempts are the answer
        ((2, 0, 0), 0, 0, (0, 0, 0)),  # everything rolled back
        ((3, 0, 0), 2, 2, (2, 0, 0)),  # one insert of three rolled back
        ((2, 0, 2), 1, 3, (2, 0, 1)),  # one delete of two rolled back
        ((1, 2, 0), 1, 2, (1, 1, 0)),  # one update of two rolled back
        ((0, 0, 3), -2, 2, (0, 0, 2)),  # deletes only
    ],
)
def test_committed_counts_from_attempts_and_committed_sums(
    attempted: tuple[int, int, int], live: int, modified: int, expected: tuple[int, int, int]
) -> None:
    assert committed(*attempted, live=live, modified=modified) == expected


def changes_of(live_runner: LiveRunner, snippet: str, code: str | None = None) -> DatabaseChanges:
    response = live_runner.run(snippet, code)
    assert response.status_code == 200, response.text
    summary: dict[str, Any] = response.json()
    assert summary["status"] == "ok", summary
    assert summary["changes"] is not None, summary
    return DatabaseChanges.model_validate(summary["changes"])


def test_the_transaction_sample_commits_nothing(live_runner: LiveRunner) -> None:
    changes = changes_of(live_runner, "chapter_05/05_transaction")
    assert [t.model_dump() for t in changes.tables] == [
        # both inserts were attempted (the second one failed on the key); neither was committed
        {"table": "brand", "inserted": 0, "updated": 0, "deleted": 0, "rolled_back": 2}
    ]
    assert changes.created == [] and changes.dropped == []


def test_a_read_only_sample_changes_nothing(live_runner: LiveRunner) -> None:
    assert changes_of(live_runner, "chapter_05/03_pool") == DatabaseChanges()


def test_rows_and_objects_are_counted(live_runner: LiveRunner) -> None:
    code = CONNECT + (
        "await conn.execute(\"INSERT INTO brand VALUES (5001, 'a'), (5002, 'b')\")\n"
        "await conn.execute(\"UPDATE product SET product_name = 'x' WHERE product_id <= 3\")\n"
        "await conn.execute('DELETE FROM sku WHERE sku_id = 1')\n"
        "await conn.execute('CREATE TABLE notes (id int PRIMARY KEY, body text)')\n"
        "await conn.execute(\"INSERT INTO notes VALUES (1, 'kept')\")\n"
        "await conn.execute('CREATE VIEW cheap AS SELECT * FROM brand')\n"
        "await conn.execute('DROP TABLE product_color CASCADE')\n"
        "await conn.execute('ALTER TABLE product_size ADD COLUMN note text')\n"
        "try:\n"
        "    async with conn.transaction():\n"
        "        await conn.execute(\"INSERT INTO brand VALUES (5003, 'c')\")\n"
        "        raise RuntimeError('undo')\n"
        "except RuntimeError:\n"
        "    pass\n"
        # a session still open when the run ends: its statistics must count too
        "other = await asyncpg.connect(host='127.0.0.1', port=5432, user='postgres', password='password')\n"
        "await other.execute(\"INSERT INTO brand VALUES (5004, 'd')\")\n"
        "print('done')\n"
    )
    changes = changes_of(live_runner, "chapter_05/01_connect", code)
    tables = {t.table: t.model_dump(exclude={"table"}) for t in changes.tables}
    assert tables == {
        "brand": {"inserted": 3, "updated": 0, "deleted": 0, "rolled_back": 1},
        "notes": {"inserted": 1, "updated": 0, "deleted": 0, "rolled_back": 0},
        "product": {"inserted": 0, "updated": 3, "deleted": 0, "rolled_back": 0},
        "sku": {"inserted": 0, "updated": 0, "deleted": 1, "rolled_back": 0},
    }
    assert {"table notes", "index notes_pkey", "view cheap"} <= set(changes.created), changes.created
    assert "table product_color" in changes.dropped, changes.dropped
    assert "column product_size.note text" in changes.created, changes.created
    # the columns of a table created or dropped whole are not listed one by one
    whole = ("column notes.", "column product_color.")
    assert not [c for c in changes.created + changes.dropped if c.startswith(whole)]
    assert not set(changes.created) & set(changes.dropped)


def test_the_summary_schema_describes_the_changes(live_runner: LiveRunner) -> None:
    from runner.openapi import openapi_schema

    schemas = openapi_schema()["components"]["schemas"]
    assert schemas["RunSummary"]["properties"]["changes"]["anyOf"][0] == {
        "$ref": "#/components/schemas/DatabaseChanges"
    }
    assert set(schemas["TableChange"]["properties"]) == {"table", "inserted", "updated", "deleted", "rolled_back"}


def test_ending_the_sessions_counts_the_rows_they_had_not_yet_published(live_runner: LiveRunner) -> None:
    """One statement ends the run's sessions, then counts rows: an open session's writes are still unpublished
    (a backend publishes its counts at most once a second, and at its exit), so a count read first reads 0."""
    factory = live_runner.runtime.factory
    assert isinstance(factory, DatabaseFactory)
    runtime = live_runner.runtime

    async def scenario() -> tuple[int, int, bool]:
        database = await factory.create()
        guard = runtime.pool.env.guard if runtime.pool is not None else None
        group = await guard.attach(database) if guard is not None else None
        try:
            conn = await asyncpg.connect(**database.address.connect_kwargs())
            await conn.execute("INSERT INTO brand (brand_id, brand_name) VALUES (100000, 'unpublished')")
            async with factory.admin_connection() as admin:
                before = await admin.fetchval(
                    "SELECT tup_inserted FROM pg_stat_database WHERE datname = $1", database.name
                )
                ended = await end_sessions(admin, database.name)
            return int(before or 0), ended.rows_touched, await session_ended(conn)
        finally:
            if group is not None and guard is not None:
                await guard.release(group)
            await factory.drop(database.name)

    before, touched, ended = live_runner.call(scenario())
    assert ended
    assert before == 0 and touched >= 1
