"""One database and one login role per run, cloned from the template and dropped afterwards.

The role may connect to its own database only (CONNECT granted to it alone, and the
embedded cluster's pg_hba admits a non-admin role only into the database of the
same name). Its defaults bound what a sample can do to the server; a role may SET
most of them itself, so the hard bounds are elsewhere: the memory group of its
backends (runner/backend_memory.py) and the quota on its database (runner/db_quota.py),
which the factory measures, in RAM or on disk (runner/clone_space.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import struct
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg

from .changes import Ended, end_sessions, read_catalog
from .clone_space import OVERSHOOT_MARGIN, CloneSpace, CloneSpaceUsage
from .db_quota import FolderProbe, SizeProbe, SqlProbe, folder_size
from .errors import PostgresUnavailable
from .postgres import ServerAddress
from .reuse import MINIMUM_SERVER_VERSION, Baseline, Spare, hand_over, open_inspector, prove, read_baseline
from .shielding import finish_uncancelled
from .template import SANDBOX_OWNER

log = logging.getLogger("runner.databases")

UNREACHABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)
"""What a lost connection to the server looks like: each becomes PostgresUnavailable."""

ROLE_CONNECTION_LIMIT = 16
ROLE_DEFAULTS = {
    "statement_timeout": "20s",
    "idle_in_transaction_session_timeout": "20s",
    "temp_file_limit": "64MB",
    # memory in ordinary use: the lesson's queries need little, and a role may raise these itself
    "work_mem": "4MB",
    "hash_mem_multiplier": "1",
    "maintenance_work_mem": "16MB",
    "temp_buffers": "8MB",
    # a backend whose client was killed stops at its next check rather than finishing its query
    "client_connection_check_interval": "1s",
}
DEFAULT_SIZE_LIMIT = 256 * 1024 * 1024
MAX_SPARES = 8
"""Unchanged databases kept parked for the next runs at most (each holds its clone-space reservation)."""
NOT_YET_WAITS = (0.002, 0.004, 0.008, 0.016)
"""Seconds between proofs of a spare a login under way holds back: a login lasts milliseconds, and a
proof costs 0.2 ms of server CPU where a clone and its later drop cost about 20 ms. About a clone's
wall time in all; a login stalled longer (at most `authentication_timeout`) gets the run a clone."""


@dataclass(frozen=True)
class RunDatabase:
    """The database of one run; its name is also its role's name."""

    name: str
    address: ServerAddress
    oid: int = 0
    in_memory: bool = False
    """Cloned into the RAM-backed tablespace (else the default one, on disk)."""


def run_prefix(instance: str) -> str:
    """Names start with a digest of the replica's name, so each replica only cleans its own."""
    return f"wsrun_{hashlib.sha256(instance.encode()).hexdigest()[:6]}_"


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The admin pool's connections run only the runner's statements: nothing to reset between them.

    asyncpg's default reset is a round trip per release (`RESET ALL`, `UNLISTEN *`...), three or
    four a run; an open transaction is still rolled back by asyncpg itself."""


class DatabaseFactory:
    def __init__(
        self,
        admin: ServerAddress,
        template: str,
        instance: str,
        tablespace: str | None = None,
        size_limit: int = DEFAULT_SIZE_LIMIT,
        reuse: bool = False,
    ) -> None:
        self.admin = admin
        self.template = template
        self.prefix = run_prefix(instance)
        self.tablespace = tablespace
        self.size_limit = size_limit
        self.clone_space: CloneSpace | None = None
        """Reservations against the RAM-backed tablespace's ceiling; None: no reservations are kept."""
        self.data_dir: Path | None = None
        """The server's data directory when the runner can read it (the embedded cluster): sizes from files."""
        self._tablespace_dir: Path | None = None
        self._pool: asyncpg.Pool | None = None
        self._role_options = ""
        self.undropped: set[str] = set()
        """Runs whose drop failed (Postgres went away mid-drop); retried by `retry_drops`."""
        self.template_objects: frozenset[str] | None = None
        """The template's tables, indexes, functions...: read from the first clone (see runner/changes.py)."""
        self.reuse = reuse
        """Whether a database its run provably left unchanged is used again (runner/reuse.py)."""
        self.baseline: Baseline | None = None
        """What a fresh clone's sequences and role read as: read from the first clone."""
        self.clone_size: int | None = None
        """Bytes in the folder of a fresh in-memory clone: measured once, from the first."""
        self._spares: deque[Spare] = deque()
        self._out: dict[str, tuple[RunDatabase, Spare | None]] = {}
        self._retired: dict[str, tuple[Ended, str]] = {}
        """Runs retired by `end_run`: their end (sessions ended, rows counted) and the next run's password."""
        """Databases handed out and not yet released, with their spare record (None for a fresh clone)."""
        self.reuses = {"reused": 0, "cloned": 0, "changed": 0}
        """Counts for /metrics: databases given out again, cloned, and dropped after a run changed them."""

    async def open(self) -> None:
        # the cluster commits asynchronously for speed, but creating and dropping run databases must
        # survive a Postgres crash: a drop lost in one would bring an orphan database back to life
        self._pool = await asyncpg.create_pool(
            **self.admin.connect_kwargs(),
            min_size=1,
            max_size=4,
            # statistics read live: `end_sessions` counts rows right after the sessions that wrote them ended
            server_settings={"synchronous_commit": "on", "stats_fetch_consistency": "none"},
            reset=_keep_session,
        )
        async with self._pool.acquire() as conn:
            if conn.get_server_version().major >= 16:
                # one SCRAM iteration: the password is a random one-off token, and every connect pays for it
                self._role_options = "SET scram_iterations = 1;"
            if conn.get_server_version().major < MINIMUM_SERVER_VERSION:
                self.reuse = False
            self.data_dir = await _readable_data_dir(conn)

    async def close(self) -> None:
        """Drop the parked databases, then disconnect (after a server restart nothing vouches for them).

        Databases handed out before are never used again: a crash loses the statistics the proof
        counts writes with, so whatever a run wrote before it would read as nothing.
        """
        await self.drop_parked()
        self._retired.clear()
        handed_out, self._out = self._out, {}
        for _, spare in handed_out.values():
            if spare is not None:
                with contextlib.suppress(Exception):
                    await spare.inspector.close(timeout=2)
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
        except UNREACHABLE as error:
            raise PostgresUnavailable(f"PostgreSQL is unreachable: {error}") from error

    async def create(self) -> RunDatabase:
        """A new run database and role; a cancelled caller never leaves one behind.

        The statements are not cut short by a cancellation (the server might finish a
        CREATE DATABASE after a DROP sent meanwhile): they run to their end, then what
        they made is dropped.
        """
        while self.reuse and self._spares:
            spare = self._spares.popleft()
            outcome = await self._reuse_when_proven(spare)
            if isinstance(outcome, RunDatabase):
                return outcome
            if outcome == "not yet":
                # the oldest spare is back in front: a later one was retired later, so whatever
                # holds this one back holds every other one back too; clone
                break
        name = self.prefix + secrets.token_hex(6)
        try:
            database = await finish_uncancelled(self._create(name))
            self._out[name] = (database, None)
            self.reuses["cloned"] += 1
            return database
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await finish_uncancelled(self.drop(name))  # on failure the name stays in `undropped`
            raise

    async def _create(self, name: str) -> RunDatabase:
        password = secrets.token_urlsafe(18)
        defaults = "".join(f"ALTER ROLE {name} SET {key} = '{value}';" for key, value in ROLE_DEFAULTS.items())
        in_memory = self._reserve(name)
        try:
            await self._execute(
                self._role_options
                + f"CREATE ROLE {name} LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                f"NOBYPASSRLS CONNECTION LIMIT {ROLE_CONNECTION_LIMIT} IN ROLE {SANDBOX_OWNER};" + defaults
            )
            where = f" TABLESPACE {self.tablespace} STRATEGY FILE_COPY" if in_memory else ""
            await self._execute(f'CREATE DATABASE {name} TEMPLATE "{self.template}"{where}')
            await self._execute(
                f"REVOKE ALL ON DATABASE {name} FROM PUBLIC;GRANT CONNECT, TEMPORARY ON DATABASE {name} TO {name};"
            )
            if self.template_objects is None or (self.reuse and self.baseline is None):
                await self._read_template(name)
            oid = await self._fetch_int("SELECT oid FROM pg_database WHERE datname = $1", name)
            if in_memory and self.clone_size is None and (folder := self._folder(in_memory, oid)) is not None:
                # once: every clone is the same copy (after `_read_template`'s login wrote its cache file)
                self.clone_size = folder_size(folder) or None
        except BaseException:
            # the server may have done part of it even if the reply was lost: drop what may exist
            with contextlib.suppress(Exception):
                await self.drop(name)  # on failure the name stays in `undropped` for a retry
            raise
        return RunDatabase(name, self.admin.as_role(name, password, name), oid, in_memory)

    async def _read_template(self, fresh_clone: str) -> None:
        """The template's objects and the fresh clone's baseline, from a clone nothing has touched yet."""
        conn = await asyncpg.connect(
            **self.admin.as_role(self.admin.user, self.admin.password, fresh_clone).connect_kwargs()
        )
        try:
            self.template_objects = await read_catalog(conn)
            self.baseline = await read_baseline(conn, fresh_clone)
        finally:
            await conn.close()

    async def _reuse_when_proven(self, spare: Spare) -> RunDatabase | Literal["not yet", "dropped"]:
        """The spare for the next run, proven again while logins begun before its retirement finish.

        "not yet" when they outlast `NOT_YET_WAITS`: the spare is parked again, first in line.
        """
        for wait in (0.0, *NOT_YET_WAITS):
            if wait:
                try:
                    await asyncio.sleep(wait)  # polling: the server sends no event when a login ends
                except asyncio.CancelledError:
                    self._spares.appendleft(spare)
                    raise
            try:
                outcome = await finish_uncancelled(self._reuse(spare))
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await finish_uncancelled(self._discard(spare))
                raise
            if outcome != "not yet":
                return outcome
        self._spares.appendleft(spare)
        return "not yet"

    async def _reuse(self, spare: Spare) -> RunDatabase | Literal["not yet", "dropped"]:
        """The spare, proven unchanged, with a new password; else whether it may be tried again or was dropped."""
        assert self.baseline is not None
        try:
            proof = await prove(spare, self.baseline)
            if proof == "unchanged":
                spare.stats_reset = await hand_over(spare)
                address = self.admin.as_role(spare.name, spare.password, spare.name)
                database = RunDatabase(spare.name, address, spare.oid, spare.in_memory)
                self._out[spare.name] = (database, spare)
                self.reuses["reused"] += 1
                return database
        except Exception as error:
            proof = f"the proof failed: {error}"
        if proof == "not yet":
            return "not yet"
        log.info("not using %s again: %s", spare.name, proof)
        self.reuses["changed"] += 1
        await self._discard(spare)
        return "dropped"

    async def end_run(self, name: str, *, final: bool) -> Ended:
        """End the run's sessions and count the rows its database saw touched, in one statement.

        `final`: nothing will log in as the run's role again (no exercise check follows), so a
        database that may be parked is retired here, its password changed first, and its release
        has nothing left to ask the server."""
        retiring = final and self.reuse and name in self._out and len(self._spares) < MAX_SPARES
        ended, password = await self._end_sessions(name, self.inspector_pid(name), retire=retiring)
        if password is not None:
            self._retired[name] = (ended, password)
        return ended

    async def _end_sessions(self, name: str, keep: int | None, *, retire: bool) -> tuple[Ended, str | None]:
        """End the run's sessions and count its rows; with `retire`, first change the role's password to
        the next run's (nobody knows it before its hand-over), returned with the end."""
        password = secrets.token_urlsafe(18) if retire else None
        async with self.admin_connection() as conn:
            if password is not None:
                await conn.execute(f"{self._role_options}ALTER ROLE {name} PASSWORD '{password}'")
            ended = await end_sessions(conn, name, keep)
        return ended, password

    async def release(self, name: str) -> None:
        """The run is over: park its database for the next run when nothing counted a write, else drop it."""
        retired = self._retired.pop(name, None)
        if not self.reuse or name not in self._out:
            await self.drop(name)
            return
        database, spare = self._out.pop(name)
        parked = None
        if len(self._spares) < MAX_SPARES and self._pool is not None:
            try:
                parked = await finish_uncancelled(self._retire(database, spare, retired))
            except Exception as error:
                log.info("not using %s again: %s", name, error)
        if parked is None:
            if spare is not None:
                await self._discard(spare)
            else:
                await self.drop(name)
            self.reuses["changed"] += 1
            return
        self._spares.append(parked)

    async def _retire(
        self, database: RunDatabase, spare: Spare | None, retired: tuple[Ended, str] | None
    ) -> Spare | None:
        """Change the password, end the sessions, and keep the database only if no write was counted.

        `retired`: what `end_run` did already. A login under way then may have finished since, and
        written: the proof before the next use finds its session or its rows."""
        name = database.name
        if retired is None:
            ended, new_password = await self._end_sessions(
                name, spare.inspector.get_server_pid() if spare else None, retire=True
            )
            assert new_password is not None
            retired = ended, new_password
        ended, password = retired
        if ended.rows_touched:
            return None
        retired_at = ended.began
        if spare is None:
            inspector = await open_inspector(self.admin, name)
            spare = Spare(name, database.oid, database.in_memory, inspector, retired_at, password)
        spare.retired_at, spare.password = retired_at, password
        return spare

    async def _discard(self, spare: Spare) -> None:
        with contextlib.suppress(Exception):
            await spare.inspector.close(timeout=2)
        await self.drop(spare.name)

    async def drop_parked(self) -> None:
        """Drop every parked database (at stop, or when the server went away)."""
        spares, self._spares = list(self._spares), deque()
        for spare in spares:
            with contextlib.suppress(Exception):
                await self._discard(spare)  # on failure the name stays in `undropped` for a retry

    def inspector_pid(self, name: str) -> int | None:
        """The server pid of the admin's inspector session in run database `name`, if it has one."""
        _, spare = self._out.get(name, (None, None))
        return spare.inspector.get_server_pid() if spare is not None else None

    def parked(self) -> frozenset[str]:
        """Databases kept for the next runs (not leftovers: each is proven unchanged before use)."""
        return frozenset(spare.name for spare in self._spares)

    def _reserve(self, name: str) -> bool:
        """Whether `name` goes into the RAM-backed tablespace: only while its ceiling holds one more at quota."""
        if not self.tablespace:
            return False
        if self.clone_space is None:
            return True
        return self.clone_space.try_reserve(name, self.size_limit + OVERSHOOT_MARGIN)

    def _folder(self, in_memory: bool, oid: int) -> Path | None:
        """The folder of database `oid`'s files, when the runner can read it (the embedded cluster)."""
        if not oid:
            return None
        if in_memory and self._tablespace_dir is not None:
            return self._tablespace_dir / str(oid)
        if not in_memory and self.data_dir is not None:
            return self.data_dir / "base" / str(oid)
        return None

    def size_probe(self, database: RunDatabase) -> SizeProbe:
        """How to measure `database` while its run executes: from its folder when readable, else by SQL.

        An in-memory database starts at the size of a fresh clone (runner/db_quota.py says why)."""
        folder = self._folder(database.in_memory, database.oid)
        if folder is not None:
            return FolderProbe(folder, self.clone_size if database.in_memory else None)

        async def fetch() -> int:
            return await self._fetch_int("SELECT pg_database_size($1)", database.name)

        return SqlProbe(fetch)

    async def terminate_backends(self, name: str) -> int:
        """Ask every session of run `name` to end (SIGTERM through pg_terminate_backend); how many there were."""
        if not name.startswith(self.prefix):
            raise ValueError(f"refusing to terminate {name}: not a run of this runner")
        return await self._fetch_int(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1", name
        )

    def clone_space_usage(self) -> CloneSpaceUsage | None:
        """The RAM-backed tablespace's ceiling, reservations and use, for /api/health."""
        return self.clone_space.usage() if self.clone_space is not None else None

    async def _fetch_int(self, sql: str, *args: object) -> int:
        if self._pool is None:
            raise PostgresUnavailable("the runner is not connected to PostgreSQL")
        try:
            async with self._pool.acquire() as conn:
                value = await conn.fetchval(sql, *args)
                return int(value) if value is not None else 0
        except UNREACHABLE as error:
            raise PostgresUnavailable(f"PostgreSQL is unreachable: {error}") from error

    async def drop(self, name: str) -> None:
        """Drop the run's database (ending its sessions) and its role; safe to repeat."""
        if not name.startswith(self.prefix):
            raise ValueError(f"refusing to drop {name}: not a run database of this runner")
        _, spare = self._out.pop(name, (None, None))
        self._retired.pop(name, None)
        if spare is not None:
            with contextlib.suppress(Exception):
                await spare.inspector.close(timeout=2)
        try:
            await self._execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await self._execute(f"DROP ROLE IF EXISTS {name}")
        except BaseException:
            self.undropped.add(name)
            raise
        self.undropped.discard(name)
        if self.clone_space is not None:
            self.clone_space.release(name)

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

    async def ensure_tablespace(self, name: str, location: Path, space: CloneSpace | None = None) -> None:
        """A tablespace at `location` (tmpfs: cloning there is ~15x faster than on disk) for run databases.

        A tmpfs is empty after a reboot (or a fresh mount): a tablespace whose folder lost its contents
        is dropped and made again (its databases were orphans, dropped before this is called). With
        `space`, databases go there only while its ceiling holds one more at quota, else onto disk.
        """
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            current = await conn.fetchval(
                "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = $1", name
            )
            if current != str(location) or not any(location.glob("PG_*")):
                if current is not None:
                    await conn.execute(f"DROP TABLESPACE {name}")
                await conn.execute(f"CREATE TABLESPACE {name} LOCATION '{location}'")
        self.tablespace = name
        self.clone_space = space
        versions = sorted(location.glob("PG_*"))
        self._tablespace_dir = versions[-1] if versions else None

    async def drop_orphans(self) -> int:
        """Remove what a runner killed mid-run left behind; called at start-up."""
        names = await self.leftovers()
        for name in names:
            await self.drop(name)
        if names:
            log.warning("removed %d orphaned run database(s)/role(s): %s", len(names), ", ".join(names))
        return len(names)


async def _readable_data_dir(conn: asyncpg.Connection) -> Path | None:
    """The server's data directory if it is this host's and the runner may read it, else None.

    The same path may exist on this host for another cluster (a server in a container):
    the system identifier in its pg_control must be the server's own."""
    try:
        path = Path(str(await conn.fetchval("SHOW data_directory")))
        identifier = int(await conn.fetchval("SELECT system_identifier FROM pg_control_system()"))
        with open(path / "global" / "pg_control", "rb") as control:
            on_disk: int = struct.unpack("<Q", control.read(8))[0]
    except (OSError, struct.error, asyncpg.PostgresError, TypeError, ValueError):
        return None
    return path if on_disk == identifier else None
