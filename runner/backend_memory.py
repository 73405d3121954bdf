"""Memory that PostgreSQL spends on a run's behalf, bounded per run without risking the server.

A run's SQL executes in server processes (backends) that the sandbox's own cgroup
does not contain: they are children of the postmaster. Two bounds apply to them:

* Each backend, hard: the embedded cluster's postmaster starts with RLIMIT_DATA at
  `WORKSHOP_DB_MEMORY_LIMIT` (runner/postgres.py), inherited by every backend. An
  allocation beyond it fails in malloc, which PostgreSQL turns into an "out of
  memory" ERROR for that statement: the backend lives on, nothing is killed.
* All backends of a run together: they share a memory cgroup of their own (this
  module). It has no limit the kernel enforces; the runner watches it instead.
  What counts is what they hold: private memory and the pages their database adds on
  a tmpfs, not the page cache the kernel may reclaim. On v1 an eventfd threshold on
  `memory.usage_in_bytes` wakes a thread of the runner the moment the group passes
  the run's limit, and it ends every backend of the group at once (SIGTERM: they exit
  normally, as with pg_terminate_backend); on v2 `memory.high` throttles the group
  (it never fails an allocation) while the run's owner polls `under_pressure()`.

Why no kernel-enforced limit: with `memory.limit_in_bytes` and the OOM killer
disabled, a backend at the limit does wait in its page fault, but every charge made
outside a page fault (a page-cache page for a WAL write, the inode of a new WAL
segment) fails with ENOMEM instead, and PostgreSQL answers a failed WAL write with a
PANIC: the postmaster then restarts every backend of every run. Both were reproduced
here, the second even with WAL written with direct I/O. With the OOM killer on, a
killed backend has the same effect. RLIMIT_DATA fails only the allocations of the
backend that asks, in malloc, where PostgreSQL expects failure.

Getting each backend into its run's group before its first query: the template
carries a login event trigger (PostgreSQL 17+). Its SECURITY DEFINER function,
owned by the admin, writes the backend's own pid into `<base>/<database>/cgroup.procs`,
`<base>` being read from a file in the data directory (a client can override a
setting in its startup packet, not a file). If that write fails, the login fails.
Each group's `cgroup.procs` is chowned to the server's user, which lets a backend
move itself (v1: the writer is the process it moves; v2: the writer must also be
able to write the `cgroup.procs` of the common ancestor, so the postmaster is moved
below `<base>` and `<base>/cgroup.procs` is chowned too). Parallel workers would be
forked by the postmaster outside the group: the embedded cluster has none.

Lifecycle, for the runtime and the sandbox:

    layer, why = await BackendMemory.open(driver, server, template)  # at start; None and why if missing
    await layer.attach_server()                                      # after the embedded server restarted
    group = layer.create(db.name, group_limit(memory, quota, db.in_memory))  # before the run's role connects
    breach = await db_quota.watch(factory.size_probe(db), quota, group, memory)  # beside the run
    await layer.release(group, factory)                              # then factory.drop(db.name)
    await layer.close()                                              # at stop, before the driver's close
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import asyncpg
import psutil

from .cgroups import CgroupDriver, V1Driver, V2Driver, read_int, read_keyed, remove_group_folder, write_value
from .postgres import BACKEND_CGROUPS_FILE, EmbeddedCluster, PostgresServer, service_owner

log = logging.getLogger("runner.backend_memory")

GUARD_SCHEMA = "workshop_guard"
LOGIN_TRIGGER_SQL = f"""
CREATE SCHEMA {GUARD_SCHEMA};
REVOKE ALL ON SCHEMA {GUARD_SCHEMA} FROM PUBLIC;
CREATE FUNCTION {GUARD_SCHEMA}.enter_run_cgroup() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  base text;
BEGIN
  IF session_user::text <> current_database()::text THEN
    RETURN;  -- not a run's role (each is named after its database): the admin, the runner
  END IF;
  base := rtrim(pg_read_file('{BACKEND_CGROUPS_FILE}', true), E'\\n');
  IF base IS NULL OR base = '' THEN
    RETURN;
  END IF;
  EXECUTE format('COPY (SELECT pg_backend_pid()) TO %L', base || '/' || current_database() || '/cgroup.procs');
END
$fn$;
REVOKE ALL ON FUNCTION {GUARD_SCHEMA}.enter_run_cgroup() FROM PUBLIC;
CREATE EVENT TRIGGER workshop_enter_run_cgroup ON login EXECUTE FUNCTION {GUARD_SCHEMA}.enter_run_cgroup();
"""
"""Installed in the template, so that every clone has it; part of the template's fingerprint.

The function lives in a schema of the admin's: a run's role owns `public` (through the
template's owner role) and could drop it with everything in it."""

RELEASE_TIMEOUT = 5.0
"""Seconds `release` waits for the backends to exit."""


async def can_install(conn: asyncpg.Connection) -> bool:
    """Login event triggers need PostgreSQL 17 and a superuser to create them."""
    if conn.get_server_version().major < 17:
        return False
    return bool(await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))


async def install(conn: asyncpg.Connection) -> None:
    """Add the login trigger to the database `conn` is connected to (the template being built)."""
    await conn.execute(LOGIN_TRIGGER_SQL)


def group_limit(memory_limit: int, size_limit: int, database_in_memory: bool) -> int:
    """The limit of a run's backend group: the pages its database adds on a tmpfs are charged to it too."""
    return memory_limit + (size_limit if database_in_memory else 0)


class Terminator(Protocol):
    async def terminate_backends(self, name: str) -> int: ...


# -- files ------------------------------------------------------------------------------------------


def _members(folder: Path) -> list[int]:
    try:
        return [int(pid) for pid in (folder / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _move_all(pids: list[int], destination: Path) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            write_value(destination / "cgroup.procs", str(pid))


def _rmdir(folder: Path) -> bool:
    return remove_group_folder(folder, timeout=1.0)


def _terminate(pids: list[int]) -> None:
    """What pg_terminate_backend sends: the backend exits at its next interrupt check, normally."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


# -- the thread woken by the kernel ---------------------------------------------------------------


class ThresholdWatcher:
    """One thread blocked in epoll on the groups' eventfds: it reacts within microseconds of the kernel's
    signal, whatever the event loop is busy with (under load the loop may take tens of milliseconds,
    during which a backend allocates tens of MiB)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._epoll.register(self._wake, select.EPOLLIN)
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="backend-memory-thresholds", daemon=True)
        self._thread.start()

    def add(self, fd: int, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks[fd] = callback
            self._epoll.register(fd, select.EPOLLIN)

    def remove(self, fd: int) -> None:
        with self._lock:
            if self._callbacks.pop(fd, None) is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._epoll.unregister(fd)

    def close(self) -> None:
        self._stopping = True
        os.eventfd_write(self._wake, 1)
        self._thread.join(5)
        self._epoll.close()
        os.close(self._wake)

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # ahead of the backends it stops, when allowed (root)
            os.setpriority(os.PRIO_PROCESS, 0, -5)  # 0: this thread (Linux)
        while not self._stopping:
            try:
                ready = self._epoll.poll()
            except OSError:
                return
            for fd, _ in ready:
                with self._lock:
                    callback = self._callbacks.get(fd)
                if callback is None:  # removed since the poll: the number may name another file by now
                    continue
                try:
                    callback()
                except Exception:  # a group removed under its callback; the thread must live on
                    log.exception("backend memory threshold callback failed")


# -- one run's group --------------------------------------------------------------------------------


@dataclass
class BackendGroup:
    """The memory group of one run's backends.

    What counts against the limit is what the backends hold: their private memory
    and the pages their database adds on a tmpfs (`anon`/`rss` + `shmem` in
    memory.stat). The page cache of the WAL and of databases on disk is charged to
    the group too, but it is the kernel's to reclaim, so it does not count."""

    database: str
    folder: Path
    limit: int
    version: str
    tripped_at: float | None = None
    """When the runner saw the group pass its limit (time.monotonic) and told its backends to terminate."""
    held_at_trip: int = 0
    _fds: list[int] = field(default_factory=list, repr=False)
    _watcher: ThresholdWatcher | None = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    """Between the watcher's thread and the event loop: a closed eventfd's number may be reused at once."""

    def pids(self) -> list[int]:
        return _members(self.folder)

    def held(self) -> int:
        """Bytes the backends hold: private memory and tmpfs pages (not reclaimable cache)."""
        stat = read_keyed(self.folder / "memory.stat")
        if self.version == "v1":
            return stat.get("total_rss", stat.get("rss", 0)) + stat.get("total_shmem", stat.get("shmem", 0))
        return stat.get("anon", 0) + stat.get("shmem", 0)

    def usage(self) -> int:
        """Everything charged to the group, page cache included (0 when it cannot be read)."""
        return self.charged() or 0

    def charged(self) -> int | None:
        """The usage, or None when it cannot be read: what vouches for a database's size must not read 0."""
        try:
            usage = self.folder / ("memory.usage_in_bytes" if self.version == "v1" else "memory.current")
            return int(usage.read_text())
        except (OSError, ValueError):
            return None

    def peak(self) -> int:
        """The highest usage so far, page cache included."""
        return read_int(self.folder / ("memory.max_usage_in_bytes" if self.version == "v1" else "memory.peak"))

    def under_pressure(self) -> bool:
        """True once the run's backends together have held more than the limit."""
        return self.tripped_at is not None or self._check()

    def _check(self) -> bool:
        """Trip (terminate every backend of the group) if it holds more than its limit."""
        with self._lock:
            if self.tripped_at is not None:
                return True
            if self.usage() <= self.limit:  # what they hold is part of the usage: one number, not memory.stat
                return False
            held = self.held()
            if held <= self.limit or not self.folder.exists():
                return False
            self.tripped_at = time.monotonic()
            self.held_at_trip = held
            _terminate(self.pids())
        log.info("backends of %s held %d MiB (limit %d MiB): terminated", self.database, held >> 20, self.limit >> 20)
        return True

    def _watch_threshold(self, watcher: ThresholdWatcher) -> None:
        """v1: the kernel signals an eventfd as the usage crosses a threshold, and `watcher` looks at once.

        The usage counts page cache as well, so it is never below what the backends hold: it
        crosses the limit first. If the cache made it cross, the next threshold goes where the
        usage will be when the backends could hold the limit: usage + (limit - held)."""
        event = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        usage = os.open(self.folder / "memory.usage_in_bytes", os.O_RDONLY | os.O_CLOEXEC)
        self._fds = [event, usage]
        self._watcher = watcher
        armed = self.limit

        def arm(threshold: int) -> None:
            write_value(self.folder / "cgroup.event_control", f"{event} {usage} {threshold}")

        def crossed() -> None:
            nonlocal armed
            with self._lock:
                if not self._fds:  # closed meanwhile: `event` may already name another file
                    return
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(event)
                if self._check() or not self.folder.exists():
                    watcher.remove(event)
                    return
                threshold = self.usage() + self.limit - self.held() + 1
                if threshold > armed:
                    with contextlib.suppress(OSError):
                        arm(threshold)
                        armed = threshold

        try:
            arm(armed)
        except OSError:
            self._close_fds()
            raise
        watcher.add(event, crossed)

    def _close_fds(self) -> None:
        with self._lock:
            fds, self._fds = self._fds, []
            if fds and self._watcher is not None:
                self._watcher.remove(fds[0])
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def remove(self, refuge: Callable[[], Path]) -> bool:
        """Remove the group; backends still in it (they did not exit in time) move to `refuge()`."""
        self._close_fds()
        left = self.pids()
        if left:
            log.warning("backends %s of %s outlived their release; moving them out", left, self.database)
            _move_all(left, refuge())
        return _rmdir(self.folder)


# -- the layer --------------------------------------------------------------------------------------


def _prefault_shared_memory(pid: int) -> int:
    """Touch every page of the postmaster's shared memory, so that it is charged to the postmaster's group.

    Shared memory pages are charged to the first process that touches them; untouched, a
    run's backends would be charged for the shared buffers they happen to use first."""
    touched = 0
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as memory:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or not fields[1].endswith("s"):
                continue
            if not (fields[5].startswith("/dev/zero") or fields[5].startswith("/SYSV")):
                continue
            low, high = (int(part, 16) for part in fields[0].split("-"))
            memory.seek(low)
            while low < high:
                chunk = memory.read(min(1 << 20, high - low))
                if not chunk:
                    break
                low += len(chunk)
                touched += len(chunk)
    return touched


class BackendMemory:
    """Creates, watches and releases the memory groups of run backends on the embedded cluster."""

    def __init__(self, version: str, base: Path, server: EmbeddedCluster, owner: tuple[int, int] | None) -> None:
        self.version = version
        self.base = base
        self.server = server
        self.owner = owner
        self.groups: dict[str, BackendGroup] = {}
        self.watcher: ThresholdWatcher | None = None
        self._watcher_lock = threading.Lock()

    @property
    def where(self) -> str:
        return str(self.base)

    @classmethod
    async def open(
        cls, driver: CgroupDriver | None, server: PostgresServer, template: str
    ) -> tuple[BackendMemory | None, str]:
        """The layer, ready for `create`; or None and why it is missing (never an exception)."""
        if not isinstance(server, EmbeddedCluster):
            return None, "the PostgreSQL server is external: its backends are not in the runner's reach"
        cls._clear(server)
        if driver is None:
            return None, "no cgroup layer to put backends in"
        try:
            problem = await cls._check_server(server, template)
            if problem:
                return None, problem
            if isinstance(driver, V1Driver):
                memory = driver.bases.get("memory")
                if memory is None:
                    return None, "the cgroup v1 driver has no memory hierarchy"
                layer = cls("v1", memory.parent / f"workshop-pg-{os.getpid()}", server, service_owner())
            elif isinstance(driver, V2Driver):
                layer = cls("v2", driver.base.parent / f"workshop-pg-{os.getpid()}", server, service_owner())
            else:
                return None, f"unknown cgroup driver {driver.version}"
            layer._remove_stale()
            layer._make_base()
            await layer.attach_server()
            layer._publish()
        except (OSError, asyncpg.PostgresError) as error:
            cls._clear(server)
            return None, f"cannot set up backend memory groups: {error}"
        log.info("run backends get memory groups under %s (%s)", layer.base, layer.version)
        return layer, ""

    # -- set-up ------------------------------------------------------------------------------------

    @staticmethod
    def _clear(server: EmbeddedCluster) -> None:
        (server.data_dir / BACKEND_CGROUPS_FILE).unlink(missing_ok=True)

    @staticmethod
    async def _check_server(server: EmbeddedCluster, template: str) -> str:
        conn = await asyncpg.connect(**server.admin.connect_kwargs())
        try:
            has_trigger = await conn.fetchval("SELECT dathasloginevt FROM pg_database WHERE datname = $1", template)
            workers = int(await conn.fetchval("SHOW max_worker_processes"))
        finally:
            await conn.close()
        if not has_trigger:
            return f"the template {template} has no login trigger (PostgreSQL 17+ and a superuser admin needed)"
        if workers:
            return "the server may start parallel workers, which would escape the groups"
        if server.backend_memory is None:
            return "the server's processes have no memory cap of their own (RLIMIT_DATA)"
        return ""

    def _make_base(self) -> None:
        self.base.mkdir(exist_ok=True)
        if self.version == "v2":
            write_value(self.base / "cgroup.subtree_control", "+memory")
            (self.base / "server").mkdir(exist_ok=True)
            self._chown(self.base / "cgroup.procs")  # the common ancestor of the server's group and the runs'

    def _publish(self) -> None:
        path = self.server.data_dir / BACKEND_CGROUPS_FILE
        path.write_text(f"{self.base}\n")
        if self.owner:
            os.chown(path, *self.owner)

    def _chown(self, path: Path) -> None:
        if self.owner:
            os.chown(path, *self.owner)

    def _refuge(self) -> Path:
        """Where processes go when their group must be removed: the runner's own group."""
        me = os.getpid()
        parent = self.base.parent
        for folder in [parent, *sorted(p for p in parent.iterdir() if p.is_dir() and p != self.base)]:
            if me in _members(folder):
                return folder
        return parent

    def _remove_stale(self) -> None:
        """Groups left by a runner that died (its pid is in the name and is gone)."""
        for folder in self.base.parent.glob("workshop-pg-*"):
            pid = folder.name.removeprefix("workshop-pg-")
            if not pid.isdigit() or int(pid) == os.getpid() or psutil.pid_exists(int(pid)):
                continue
            for child in [c for c in folder.iterdir() if c.is_dir()]:
                BackendGroup(child.name, child, 0, self.version).remove(self._refuge)
            _rmdir(folder)

    async def attach_server(self) -> None:
        """Call after the server (re)starts: warm its shared memory; on v2 move it below the base."""
        pid = self.server.pid
        if pid is None:
            return
        if self.version == "v2":
            write_value(self.base / "server" / "cgroup.procs", str(pid))  # first: what it forks now lands there
            with contextlib.suppress(psutil.Error):
                _move_all([child.pid for child in psutil.Process(pid).children(recursive=True)], self.base / "server")
        try:
            touched = await asyncio.to_thread(_prefault_shared_memory, pid)
        except OSError as error:
            log.info("could not pre-fault the server's shared memory (runs may be charged for it): %s", error)
        else:
            log.debug("pre-faulted %d MiB of shared memory", touched >> 20)

    # -- per run -----------------------------------------------------------------------------------

    def create(self, database: str, limit: int) -> BackendGroup:
        """The group for `database`'s backends, watched against `limit` bytes.

        Make it before the run's role first connects: its logins fail until then."""
        folder = self.base / database
        try:
            folder.mkdir()
        except FileExistsError:  # left by an earlier run of this (reused) database whose clean-up failed
            log.warning("a memory group of %s was left behind; removing it", database)
            BackendGroup(database, folder, 0, self.version).remove(self._refuge)
            folder.mkdir()
        group = BackendGroup(database, folder, limit, self.version)
        try:
            if self.version == "v1":
                files = ["cgroup.procs", "tasks"]
                with self._watcher_lock:  # `create` runs in worker threads (DatabaseGuard.attach)
                    if self.watcher is None:
                        self.watcher = ThresholdWatcher()
                group._watch_threshold(self.watcher)
            else:
                write_value(folder / "memory.high", str(limit))  # throttles, never fails an allocation
                with contextlib.suppress(OSError):
                    write_value(folder / "memory.swap.max", "0")
                files = ["cgroup.procs", "cgroup.threads"]
            for name in files:
                self._chown(folder / name)
        except BaseException:
            group.remove(self._refuge)
            raise
        self.groups[database] = group
        return group

    async def release(self, group: BackendGroup, factory: Terminator | None) -> bool:
        """End the run's backends normally and remove the group; call before dropping the database.

        True when every backend exited within RELEASE_TIMEOUT. An empty group spares the SQL: a
        session of the run's role exists only once its backend has entered the group (else its login
        failed), and none can leave it."""
        try:
            if factory is not None and group.pids():
                await factory.terminate_backends(group.database)
        except Exception as error:  # the server may be down or unreachable: signal them ourselves
            log.warning("could not terminate the backends of %s through SQL: %s", group.database, error)
            _terminate(group.pids())
        if group.version == "v2":
            with contextlib.suppress(OSError):
                write_value(group.folder / "memory.high", "max")  # a throttled backend gets to its exit sooner
        deadline = time.monotonic() + RELEASE_TIMEOUT
        while group.pids() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        exited = not group.pids()
        await asyncio.to_thread(group.remove, self._refuge)  # closing its eventfd and rmdir can wait on the kernel
        self.groups.pop(group.database, None)
        return exited

    async def close(self) -> None:
        """Stop moving backends, and remove every group (backends still in one move out)."""
        self._clear(self.server)
        for group in list(self.groups.values()):
            group.remove(self._refuge)
        self.groups.clear()
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
        if self.version == "v2":
            pid = self.server.pid
            if pid is not None:
                refuge = self._refuge()
                with contextlib.suppress(psutil.Error):
                    _move_all([pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))], refuge)
            _rmdir(self.base / "server")
        _rmdir(self.base)
