"""A run database used again, only when the run provably left it as it was cloned.

Cloning a database and dropping it cost about 20 ms of server CPU a run, and most
samples only read. After a run, its database is parked (a spare) instead of
dropped when nothing counted a write; before a spare goes to the next run, a
superuser session kept in it (its inspector) proves, in one query, that:

* no row of any table, system catalogs and TOAST included, was inserted, updated
  or deleted, committed or rolled back: `pg_stat_database` counts every attempt,
  and a backend publishes its counts before it leaves `pg_stat_activity`;
* no table of the database was vacuumed or analysed (both rewrite planner
  figures in place, which no row counter sees; the shared catalogs' counts are
  the whole server's);
* every sequence reads as in the template, values logged ahead included
  (`nextval` and `setval` change a sequence in place; an insert refused by a
  NOT NULL has still used a value);
* the role's own settings and memberships are those it was made with (shared
  catalogs, counted in no database's statistics);
* no prepared transaction belongs to the database;
* no session is left in the database or of its role, and no login that began
  before the password changed is still under way: a login may finish with the
  password it began with, and PostgreSQL 18 lists logins under way as `starting`
  (so reuse needs 18 or later);
* the statistics were not reset by anyone else, and the server is the same one
  (the inspector's session does not survive a restart, and its query then fails;
  a database in use when the server restarted is never parked: the factory
  forgets what it handed out when it reconnects).

Anything else, or any error, and the database is dropped; a new clone takes its
place. The role's password changes when the run ends (whoever had it cannot come
back), to the next run's, which only the runner knows until it hands the database
over. The activity statistics (scans, commits) are reset for the next run, so it
sees only its own.

Not compared, because no query's answer depends on them: hint bits, the
visibility map, the lock marks `SELECT ... FOR UPDATE` leaves in a row's hidden
`xmax`, and which pages are cached.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

import asyncpg

from .postgres import ServerAddress

INSPECTOR_NAME = "workshop-inspector"
TIMEOUT = 5.0
"""Seconds the inspector's statements may take; beyond it the proof fails and the database is dropped."""
MINIMUM_SERVER_VERSION = 18
"""Logins under way are listed in pg_stat_activity from PostgreSQL 18 on."""

_ROLE_SQL = """
SELECT (SELECT coalesce(array_agg(s.setdatabase::text || ':' || array_to_string(s.setconfig, ',')
                                  ORDER BY s.setdatabase), '{}')
          FROM pg_catalog.pg_db_role_setting s
         WHERE s.setrole = r.oid) AS settings,
       (SELECT coalesce(array_agg(CASE WHEN m.member = r.oid THEN 'in ' || m.roleid::regrole::text
                                       ELSE 'has ' || m.member::regrole::text END ORDER BY 1), '{}')
          FROM pg_catalog.pg_auth_members m
         WHERE m.member = r.oid OR m.roleid = r.oid) AS memberships
  FROM pg_catalog.pg_roles r WHERE r.rolname = $1
"""

_SEQUENCE_NAMES_SQL = """
SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS name
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'S' ORDER BY c.oid
"""


def sequences_sql(sequences: list[tuple[int, str]]) -> str:
    """One array of every template sequence's state: its last value, values logged ahead, and whether called."""
    if not sequences:
        return "SELECT '{}'::text[]"
    parts = " UNION ALL ".join(
        f"SELECT {oid} AS o, '{oid}=' || last_value || ',' || log_cnt || ',' || is_called AS s FROM {name}"
        for oid, name in sequences
    )
    return f"SELECT array_agg(s ORDER BY o) FROM ({parts}) q"


PROOF_SQL = """
SELECT d.tup_inserted + d.tup_updated + d.tup_deleted AS rows_touched,
       d.stats_reset,
       (SELECT count(*) FROM pg_catalog.pg_stat_activity a
         WHERE a.pid <> pg_catalog.pg_backend_pid() AND (a.datid = d.datid OR a.usename = $1)) AS sessions,
       (SELECT count(*) FROM pg_catalog.pg_stat_activity a
         WHERE a.state = 'starting' AND a.backend_start <= $2) AS logins_under_way,
       (SELECT coalesce(sum(pg_catalog.pg_stat_get_vacuum_count(c.oid) + pg_catalog.pg_stat_get_autovacuum_count(c.oid)
                            + pg_catalog.pg_stat_get_analyze_count(c.oid)
                            + pg_catalog.pg_stat_get_autoanalyze_count(c.oid)), 0)
          FROM pg_catalog.pg_class c
         WHERE c.relkind IN ('r', 't', 'm', 'p') AND NOT c.relisshared) AS maintained,  -- pg_stat_all_tables' kinds
       (SELECT count(*) FROM pg_catalog.pg_prepared_xacts p WHERE p.database = $1) AS prepared,
       ({sequences}) AS sequences,
       role.settings,
       role.memberships
  FROM pg_catalog.pg_stat_database d
  LEFT JOIN ({role}) role ON true
 WHERE d.datname = $1
"""
"""Everything the proof reads, in one round trip on the inspector (every name schema-qualified)."""


@dataclass(frozen=True)
class Baseline:
    """What every fresh clone and its role read as: the same for all, read once from the first clone."""

    sequences: tuple[str, ...]
    settings: tuple[str, ...]
    memberships: tuple[str, ...]
    proof_sql: str
    """PROOF_SQL with the template's sequences named."""


async def read_baseline(conn: asyncpg.Connection, role: str) -> Baseline:
    """Read from a clone nothing has touched yet, by the admin, right after its role was made."""
    await conn.execute("SET search_path = pg_catalog")
    read_sequences = sequences_sql([(r["oid"], r["name"]) for r in await conn.fetch(_SEQUENCE_NAMES_SQL)])
    sequences = await conn.fetchval(read_sequences)
    row = await conn.fetchrow(_ROLE_SQL, role)
    assert row is not None, f"role {role} does not exist"
    proof_sql = PROOF_SQL.format(sequences=read_sequences, role=_ROLE_SQL)
    return Baseline(tuple(sequences), tuple(row["settings"]), tuple(row["memberships"]), proof_sql)


Proof = Literal["unchanged", "not yet"] | str
"""`unchanged`; `not yet` (a login that began before the password changed is under way); else what changed."""


@dataclass
class Spare:
    """A parked run database, its inspector session, and what its proof compares against."""

    name: str
    oid: int
    in_memory: bool
    inspector: asyncpg.Connection
    retired_at: datetime.datetime
    """The server's clock just after the password changed: logins begun before may still use the old one."""
    password: str
    """The next run's password, set when the database was retired: the runner's secret until the hand-over."""
    stats_reset: datetime.datetime | None = None
    """When the runner last reset the database's statistics (None: never, a fresh clone)."""


async def prove(spare: Spare, baseline: Baseline) -> Proof:
    """Whether the spare is exactly as cloned (see the module's docstring for what that means)."""
    row = await spare.inspector.fetchrow(baseline.proof_sql, spare.name, spare.retired_at, timeout=TIMEOUT)
    if row is None:
        return "the database's statistics are gone"
    if row["sessions"]:
        return f"{row['sessions']} session(s) still in the database"
    if row["rows_touched"]:
        return f"{row['rows_touched']} row change(s)"
    if row["stats_reset"] != spare.stats_reset:
        return "its statistics were reset"
    if row["maintained"]:
        return "a table was vacuumed or analysed"
    if row["prepared"]:
        return "a prepared transaction"
    if tuple(row["sequences"]) != baseline.sequences:
        return "a sequence moved"
    if tuple(row["settings"] or ()) != baseline.settings:
        return "the role's settings changed"
    if tuple(row["memberships"] or ()) != baseline.memberships:
        return "the role's memberships changed"
    if row["logins_under_way"]:
        return "not yet"
    return "unchanged"


async def open_inspector(admin: ServerAddress, database: str) -> asyncpg.Connection:
    """The admin's session in a run database: only schema-qualified catalog reads, statistics read live."""
    return await asyncpg.connect(
        **admin.as_role(admin.user, admin.password, database).connect_kwargs(),
        server_settings={
            "search_path": "pg_catalog",
            "stats_fetch_consistency": "none",
            "application_name": INSPECTOR_NAME,
        },
        timeout=TIMEOUT,
    )


async def hand_over(spare: Spare) -> datetime.datetime | None:
    """Zero the database's activity statistics for the next run, in one round trip; their reset time.

    The reset runs in a materialized CTE, so it is done before the reset time is read (live:
    the inspector's statistics are not cached)."""
    reset: datetime.datetime | None = await spare.inspector.fetchval(
        "WITH reset AS MATERIALIZED (SELECT pg_catalog.pg_stat_reset()) "
        "SELECT pg_catalog.pg_stat_get_db_stat_reset_time($1) FROM reset",
        spare.oid,
        timeout=TIMEOUT,
    )
    return reset
