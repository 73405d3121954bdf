"""One database and one login role per run, cloned from the template and dropped afterwards.

The role may connect to its own database only (CONNECT granted to it alone, and the
embedded cluster's pg_hba admits a non-admin role only into the database of the
same name). Its defaults bound what a sample can do to the server.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from .changes import template_objects
from .errors import PostgresUnavailable
from .postgres import ServerAddress
from .template import SANDBOX_OWNER

log = logging.getLogger("runner.databases")

ROLE_CONNECTION_LIMIT = 16
ROLE_DEFAULTS = {
    "statement_timeout": "20s",
    "idle_in_transaction_session_timeout": "20s",
    "temp_file_limit": "64MB",
}


@dataclass(frozen=True)
class RunDatabase:
    """The database of one run; its name is also its role's name."""

    name: str
    address: ServerAddress


def run_prefix(instance: str) -> str:
    """Names start with a digest of the replica's name, so each replica only cleans its own."""
    return f"wsrun_{hashlib.sha256(instance.encode()).hexdigest()[:6]}_"


class DatabaseFactory:
    def __init__(self, admin: ServerAddress, template: str, instance: str, tablespace: str | None = None) -> None:
        self.admin = admin
        self.template = template
        self.prefix = run_prefix(instance)
        self.tablespace = tablespace
        self._pool: asyncpg.Pool | None = None
        self._role_options = ""
        self.undropped: set[str] = set()
        """Runs whose drop failed (Postgres went away mid-drop); retried by `retry_drops`."""
        self.template_objects: frozenset[str] | None = None
        """The template's tables, indexes, functions...: read from the first clone (see runner/changes.py)."""

    async def open(self) -> None:
        # the cluster commits asynchronously for speed, but creating and dropping run databases must
        # survive a Postgres crash: a drop lost in one would bring an orphan database back to life
        self._pool = await asyncpg.create_pool(
            **self.admin.connect_kwargs(), min_size=1, max_size=4, server_settings={"synchronous_commit": "on"}
        )
        async with self._pool.acquire() as conn:
            if conn.get_server_version().major >= 16:
                # one SCRAM iteration: the password is a random one-off token, and every connect pays for it
                self._role_options = "SET scram_iterations = 1;"

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def admin_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """One of the factory's admin connections (to the server's maintenance database)."""
        if self._pool is None:
            raise PostgresUnavailable("the runner is not connected to PostgreSQL")
        async with self._pool.acquire() as conn:
            yield conn

    async def _execute(self, sql: str) -> None:
        if self._pool is None:
            raise PostgresUnavailable("the runner is not connected to PostgreSQL")
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(sql)
        except (
            OSError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.AdminShutdownError,
        ) as error:
            raise PostgresUnavailable(f"PostgreSQL is unreachable: {error}") from error

    async def create(self) -> RunDatabase:
        name = self.prefix + secrets.token_hex(6)
        password = secrets.token_urlsafe(18)
        defaults = "".join(f"ALTER ROLE {name} SET {key} = '{value}';" for key, value in ROLE_DEFAULTS.items())
        try:
            await self._execute(
                self._role_options
                + f"CREATE ROLE {name} LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                f"NOBYPASSRLS CONNECTION LIMIT {ROLE_CONNECTION_LIMIT} IN ROLE {SANDBOX_OWNER};" + defaults
            )
            where = f" TABLESPACE {self.tablespace} STRATEGY FILE_COPY" if self.tablespace else ""
            await self._execute(f'CREATE DATABASE {name} TEMPLATE "{self.template}"{where}')
            await self._execute(
                f"REVOKE ALL ON DATABASE {name} FROM PUBLIC;GRANT CONNECT, TEMPORARY ON DATABASE {name} TO {name};"
            )
            if self.template_objects is None:
                self.template_objects = await template_objects(self.admin, name)
        except BaseException:
            # the server may have done part of it even if the reply was lost: drop what may exist
            with contextlib.suppress(Exception):
                await self.drop(name)  # on failure the name stays in `undropped` for a retry
            raise
        return RunDatabase(name, self.admin.as_role(name, password, name))

    async def drop(self, name: str) -> None:
        """Drop the run's database (ending its sessions) and its role; safe to repeat."""
        if not name.startswith(self.prefix):
            raise ValueError(f"refusing to drop {name}: not a run database of this runner")
        try:
            await self._execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await self._execute(f"DROP ROLE IF EXISTS {name}")
        except BaseException:
            self.undropped.add(name)
            raise
        self.undropped.discard(name)

    async def retry_drops(self) -> None:
        for name in sorted(self.undropped):
            try:
                await self.drop(name)
            except Exception as error:
                log.warning("still cannot drop %s: %s", name, error)
                return
            log.info("dropped %s, left over when PostgreSQL went away", name)

    async def leftovers(self) -> list[str]:
        """Run databases and roles of this replica that still exist."""
        if self._pool is None:
            return []
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT datname AS name FROM pg_database WHERE starts_with(datname, $1) "
                "UNION SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)",
                self.prefix,
            )
        return sorted(r["name"] for r in rows)

    async def ensure_tablespace(self, name: str, location: Path) -> None:
        """A tablespace at `location` (tmpfs: cloning there is ~15x faster than on disk) for run databases.

        A tmpfs is empty after a reboot: a tablespace whose folder lost its contents is dropped and made
        again (its databases were orphans, dropped before this is called).
        """
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            current = await conn.fetchval(
                "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = $1", name
            )
            if current == str(location) and any(location.glob("PG_*")):
                self.tablespace = name
                return
            if current is not None:
                await conn.execute(f"DROP TABLESPACE {name}")
            await conn.execute(f"CREATE TABLESPACE {name} LOCATION '{location}'")
        self.tablespace = name

    async def drop_orphans(self) -> int:
        """Remove what a runner killed mid-run left behind; called at start-up."""
        names = await self.leftovers()
        for name in names:
            await self.drop(name)
        if names:
            log.warning("removed %d orphaned run database(s)/role(s): %s", len(names), ", ".join(names))
        return len(names)
