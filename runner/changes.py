"""What a run did to its database: rows committed per table, objects created or dropped.

Read after the run's processes are gone, before the database is dropped. Row counts
come from PostgreSQL's cumulative statistics of the run's database, which start at
zero in every fresh clone: `n_tup_ins/upd/del` count every attempted change, committed
or rolled back, while `n_mod_since_analyze` (inserts + updates + deletes) and
`n_live_tup` (inserts - deletes) count committed ones only. A backend publishes its
statistics when it exits, so the run's remaining sessions are ended first.

Objects are compared by name with the template's list, read once per template from a
fresh clone (`read_catalog`, called by the factory). A database used again
(runner/reuse.py) was proven unchanged, so its statistics still count from zero.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
from pydantic import BaseModel, Field

from .errors import PostgresUnavailable
from .postgres import ServerAddress

if TYPE_CHECKING:
    from .databases import DatabaseFactory

log = logging.getLogger("runner.changes")

END_SESSIONS_TIMEOUT_MS = 2000
"""How long PostgreSQL may take to end a run's leftover session (it waits for the exit)."""

_USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'"
_NAME = "CASE WHEN n.nspname = 'public' THEN {0} ELSE n.nspname || '.' || {0} END"
CATALOG_SQL = f"""
SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
         WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'i' THEN 'index'
         WHEN 'I' THEN 'index' WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'type' END
       || ' ' || {_NAME.format("c.relname")}
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_SCHEMAS} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'i', 'I', 'f', 'c')
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END
       || ' ' || {_NAME.format("p.proname")} || '(' || pg_get_function_identity_arguments(p.oid) || ')'
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {_USER_SCHEMAS}
UNION ALL
SELECT 'type ' || {_NAME.format("t.typname")}
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE {_USER_SCHEMAS} AND t.typtype IN ('e', 'd', 'r', 'm')
UNION ALL
SELECT 'trigger ' || t.tgname || ' on ' || {_NAME.format("c.relname")}
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal
UNION ALL
SELECT 'schema ' || n.nspname FROM pg_namespace n WHERE {_USER_SCHEMAS} AND n.nspname <> 'public'
UNION ALL
SELECT 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql'
UNION ALL
SELECT 'column ' || {_NAME.format("c.relname")} || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_SCHEMAS} AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'policy ' || p.polname || ' on ' || {_NAME.format("c.relname")}
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
UNION ALL
SELECT 'row security on ' || {_NAME.format("c.relname")}
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_SCHEMAS} AND (c.relrowsecurity OR c.relforcerowsecurity)
UNION ALL
SELECT 'rule ' || r.rulename || ' on ' || {_NAME.format("c.relname")}
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_SCHEMAS} AND r.rulename <> '_RETURN'
UNION ALL
SELECT 'setting ' || setting
  FROM pg_db_role_setting d CROSS JOIN LATERAL unnest(d.setconfig) AS setting
 WHERE (d.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_database())
        AND d.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())))
    OR (d.setrole = 0 AND d.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()))
"""
"""Every object a run could add, drop or alter, by name: tables and their columns, views, functions,
triggers, policies, rules, the run role's and database's settings... (a `setting` of the run's role
reads the same in every clone: its role is named after its database)."""

STATS_SQL = """
SELECT CASE WHEN schemaname = 'public' THEN relname ELSE schemaname || '.' || relname END AS name,
       n_tup_ins, n_tup_upd, n_tup_del, n_live_tup, n_mod_since_analyze,
       analyze_count + autoanalyze_count + vacuum_count + autovacuum_count AS maintained
  FROM pg_stat_user_tables
 WHERE n_tup_ins + n_tup_upd + n_tup_del > 0
 ORDER BY 1
"""


class TableChange(BaseModel):
    """Rows of one table changed by committed transactions (`rolled_back`: changes undone)."""

    table: str
    inserted: int = Field(ge=0)
    updated: int = Field(ge=0)
    deleted: int = Field(ge=0)
    rolled_back: int = Field(ge=0, default=0, description="Row changes made and then rolled back.")


class DatabaseChanges(BaseModel):
    """What a run left in its database, compared with the template it was cloned from."""

    tables: list[TableChange] = Field(default_factory=list)
    created: list[str] = Field(default_factory=list, description='Objects added, e.g. "table notes".')
    dropped: list[str] = Field(default_factory=list, description='Template objects gone, e.g. "index brand_pkey".')


def committed(inserts: int, updates: int, deletes: int, live: int, modified: int) -> tuple[int, int, int]:
    """Committed (inserted, updated, deleted) from attempted counts and two committed-only sums.

    live = I - D and modified = I + U + D hold for committed changes. When nothing was
    rolled back, or everything was, the answer is exact; in the mixed case the split
    between kinds is the one that stays within the attempted counts.
    """
    if modified == inserts + updates + deletes:
        return inserts, updates, deletes
    if modified <= 0:
        return 0, 0, 0
    # D as large as the attempts allow, with U = modified - live - 2D >= 0 and I = live + D <= inserts
    d = max(0, -live, min(deletes, (modified - live) // 2, inserts - live))
    i = max(0, live + d)
    u = max(0, modified - i - d)
    return i, u, d


async def read_catalog(conn: asyncpg.Connection) -> frozenset[str]:
    return frozenset(r[0] for r in await conn.fetch(CATALOG_SQL) if r[0])


END_SESSIONS_SQL = """
WITH ended AS MATERIALIZED (
    SELECT count(pg_catalog.pg_terminate_backend(pid, $2)) FROM pg_catalog.pg_stat_activity
     WHERE (datname = $1 OR usename = $1) AND pid <> pg_catalog.pg_backend_pid() AND pid IS DISTINCT FROM $3
)
SELECT pg_catalog.statement_timestamp() AS began,
       (SELECT d.tup_inserted + d.tup_updated + d.tup_deleted
          FROM pg_catalog.pg_stat_database d WHERE d.datname = $1) AS touched
  FROM ended
"""
"""The sessions end first (the CTE is materialized, and its one row is an aggregate over every
termination); the statistics, read after, then hold what each ended backend published as it exited."""


@dataclass(frozen=True)
class Ended:
    began: datetime.datetime
    """When the server began the statement: later than whatever the connection ran before it."""
    rows_touched: int
    """Rows inserted, updated or deleted in the database, system catalogs (so DDL) included, committed or not."""


async def end_sessions(conn: asyncpg.Connection, database: str, keep: int | None = None) -> Ended:
    """End every session on the run's database, or of its role (named after it), wait until each has
    exited (and so published its statistics), then count the rows the database saw touched: one round trip.

    `conn` reads statistics live (`stats_fetch_consistency = none`: the admin pool's setting).
    `keep`: the admin's inspector session in a reused database (runner/reuse.py)."""
    row = await conn.fetchrow(END_SESSIONS_SQL, database, END_SESSIONS_TIMEOUT_MS, keep)
    assert row is not None  # an aggregate always has its row
    return Ended(row["began"], int(row["touched"] or 0))


async def measure(admin: ServerAddress, database: str, before: frozenset[str]) -> DatabaseChanges:
    """Compare the run's database with the template; call once its sessions have ended."""
    conn = await asyncpg.connect(**admin.as_role(admin.user, admin.password, database).connect_kwargs())
    try:
        rows = await conn.fetch(STATS_SQL)
        after = await read_catalog(conn)
    finally:
        await conn.close()
    tables = []
    for row in rows:
        ins, upd, dele = row["n_tup_ins"], row["n_tup_upd"], row["n_tup_del"]
        if row["maintained"]:
            # ANALYZE or VACUUM reset the committed-only counters: attempted counts are what is left
            i, u, d = ins, upd, dele
        else:
            i, u, d = committed(ins, upd, dele, row["n_live_tup"], row["n_mod_since_analyze"])
        tables.append(
            TableChange(
                table=row["name"],
                inserted=i,
                updated=u,
                deleted=d,
                rolled_back=max(0, ins + upd + dele - i - u - d),
            )
        )
    return DatabaseChanges(tables=tables, **compare(before, after))


def compare(before: frozenset[str], after: frozenset[str]) -> dict[str, list[str]]:
    """Objects created and dropped; the columns of a relation created or dropped whole go with it."""
    created, dropped = after - before, before - after
    whole = {name.split(" ", 1)[1] for name in created | dropped if name.startswith(("table ", "view "))}

    def shown(name: str) -> bool:
        return not (name.startswith("column ") and name[len("column ") :].rsplit(".", 1)[0] in whole)

    return {"created": sorted(filter(shown, created)), "dropped": sorted(filter(shown, dropped))}


async def _after_run(factory: DatabaseFactory, database: str, before: frozenset[str], *, full: bool) -> DatabaseChanges:
    ended = await factory.end_run(database, final=not full)  # an exercise's check still logs in as the role
    if not full and not ended.rows_touched:
        return DatabaseChanges()  # the common case: nothing written, no connection to the run's database needed
    return await measure(factory.admin, database, before)


MEASURE_TIMEOUT = 5.0


async def after_run(factory: DatabaseFactory, database: str, *, full: bool = False) -> DatabaseChanges | None:
    """The changes of a finished run, or None when they cannot be read (they never fail a run).

    `full` reads the catalog even when the database's statistics saw no write: a role's
    settings live in a shared catalog, whose writes no database's statistics count.
    """
    if factory.template_objects is None:
        return None
    try:
        return await asyncio.wait_for(
            _after_run(factory, database, factory.template_objects, full=full), MEASURE_TIMEOUT
        )
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, PostgresUnavailable) as error:
        log.warning("could not read what the run did to %s: %s", database, error)
        return None
