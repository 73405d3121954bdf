"""Everything a serving runner holds, started and stopped in order.

Postgres, the template, the run-database factory, the sandbox pool and the run
service; plus a watchdog that restarts the embedded cluster if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from pathlib import Path

import asyncpg

from .backend_memory import BackendMemory
from .capacity import cpus_available
from .cgroups import CgroupDriver, CgroupLimits, open_driver
from .clone_space import CloneSpace
from .database_guard import DatabaseGuard
from .databases import DatabaseFactory
from .forkserver import ForkLauncher, ForkServer, ForkServerFailed, ForkSpawner, can_fork_sandboxes
from .health import Troubles
from .isolation import BubblewrapLauncher, Launcher, PlainLauncher, choose_launcher
from .pool import SandboxPool
from .postgres import EmbeddedCluster, ExternalServer, PostgresServer, service_owner
from .process import OsSpawner, Spawner
from .runs import RunService
from .sandbox import SandboxEnv
from .settings import Settings
from .snippets import Catalogue, Snippet
from .template import ensure_template

log = logging.getLogger("runner")


RUN_TABLESPACE = "workshop_runs"


def fast_clone_base(setting: str) -> Path | None:
    """The folder for run databases: a tmpfs such as /dev/shm when it has room, unless turned off."""
    if setting in {"", "off"}:
        return None
    if setting != "auto":
        return Path(setting)
    shm = Path("/dev/shm")
    try:
        usage = shutil.disk_usage(shm)
    except OSError:
        return None
    return shm if usage.free >= 1 << 30 else None


def make_server(settings: Settings) -> PostgresServer:
    if settings.database_url:
        return ExternalServer(settings.database_url)
    return EmbeddedCluster(settings.cache_dir / "runner-pg", backend_memory=settings.db_memory_limit)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._catalogue = Catalogue()
        self.server = make_server(settings)
        self.launcher: Launcher = PlainLauncher()
        self.cgroups: CgroupDriver | None = None
        self.cgroups_problem = "not started"
        self.backend_memory: BackendMemory | None = None
        self.backend_memory_problem = "not started"
        self.factory: DatabaseFactory | None = None
        self.pool: SandboxPool | None = None
        self.service: RunService | None = None
        self.postgres_healthy = False
        self.template = ""
        self.started_seconds: float | None = None
        self.draining = False
        """Set on SIGTERM: health answers 503 `draining` and no run is admitted."""
        self.stopping = False
        self.troubles = Troubles()
        self.clone_location: Path | None = None
        """Where run databases are cloned (a tablespace folder), when not beside the template."""
        self.connections: tuple[int, int] | None = None
        """PostgreSQL's client connections and max_connections, read by the watchdog each second."""
        """Recent failures to prepare a run (sandbox start, clone space), for health."""
        self._watchdog: asyncio.Task[None] | None = None
        self.fork_server: ForkServer | None = None

    @property
    def snippets(self) -> dict[str, Snippet]:
        """The published samples as `code/` holds them now: one added or edited while serving runs as it is."""
        return self._catalogue.current()

    async def start(self) -> None:
        began = time.perf_counter()
        try:
            await self._start_parts()
        except BaseException:
            await self.stop()
            raise
        self.started_seconds = time.perf_counter() - began
        log.info(
            "runner ready in %.2f s: postgres=%s template=%s snippets=%d pool=%d isolation=%s (missing: %s)",
            self.started_seconds,
            self.server.kind,
            self.template,
            len(self.snippets),
            self.settings.pool_size,
            ",".join(self.layers()),
            ",".join(self.missing_layers()) or "none",
        )

    async def _start_parts(self) -> None:
        await self.server.start()
        self.postgres_healthy = True
        self._open_cgroups()
        self.launcher = await asyncio.to_thread(self._choose_launcher)
        self.template = await ensure_template(self.server.admin)
        self.factory = DatabaseFactory(
            self.server.admin,
            self.template,
            self.settings.instance,
            size_limit=self.settings.db_size_limit,
            reuse=self.settings.db_reuse,
        )
        await self.factory.open()
        await self.factory.drop_orphans()
        self.connections = await self._count_connections(self.factory)
        await self._use_fast_clone_dir()
        self.backend_memory, self.backend_memory_problem = await BackendMemory.open(
            self.cgroups, self.server, self.template
        )
        if self.backend_memory is None:
            log.warning("run backends have no memory group: %s", self.backend_memory_problem)
        guard = DatabaseGuard(
            self.factory, self.backend_memory, self.settings.db_size_limit, self.settings.db_memory_limit
        )
        limits = CgroupLimits(self.settings.run_memory, self.settings.run_pids, self.settings.run_cpus)
        spawner: Spawner = OsSpawner()
        if self.settings.fork_server:
            spawner = await self._start_fork_server() or spawner
        env = SandboxEnv(self.factory, self.launcher, spawner, self.cgroups, limits, guard)
        self.pool = SandboxPool(
            env,
            size=self.settings.pool_size,
            refill_concurrency=self.settings.pool_refill,
            prepare_concurrency=max(1, round(cpus_available())),
            max_size=max(self.settings.pool_size, self.settings.max_concurrent_runs) if self.settings.pool_size else 0,
        )
        self.pool.fill()
        self.service = RunService(self.settings, self.pool)
        self._watchdog = asyncio.create_task(self._watch())

    async def _use_fast_clone_dir(self) -> None:
        base = fast_clone_base(self.settings.clone_dir)
        if base is None or not isinstance(self.server, EmbeddedCluster) or self.factory is None:
            return
        try:
            location = self.server.prepare_clone_dir(base)
            space = CloneSpace.prepare(location, self.settings.clone_space, service_owner())
            await self.factory.ensure_tablespace(RUN_TABLESPACE, location, space)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("run databases stay beside the template (no tablespace in %s): %s", base, error)
            return
        self.clone_location = location
        log.info(
            "run databases are cloned into %s (%d MiB%s, then onto disk)",
            location,
            space.ceiling >> 20,
            ", a tmpfs of its own" if space.enforced else "",
        )

    async def _start_fork_server(self) -> ForkSpawner | None:
        """The fork server where it can run (bubblewrap works here, with its filter); otherwise None and why."""
        problem = can_fork_sandboxes()
        bubblewrap = self.launcher
        if not isinstance(bubblewrap, BubblewrapLauncher) or bubblewrap.seccomp is None:
            problem = "the fork server builds bubblewrap's layers and needs its system-call filter in force"
        elif problem is None:
            server = ForkServer(bubblewrap)
            try:
                await server.start()
            except (ForkServerFailed, OSError) as error:
                problem = str(error)
            else:
                spawner = ForkSpawner(server)
                problem = await spawner.probe()
                if problem is None:
                    self.fork_server = server
                    self.launcher = ForkLauncher(bubblewrap)
                    return spawner
                await server.close()
        log.warning("sandboxes start with bubblewrap, not the fork server: %s", problem)
        return None

    def layers(self) -> list[str]:
        """The isolation layers in force for every sandbox."""
        return [*self.launcher.layers, *(["cgroups"] if self.cgroups is not None else [])]

    def missing_layers(self) -> list[str]:
        return [*self.launcher.missing, *([] if self.cgroups is not None else ["cgroups"])]

    def editing_enabled(self, settings: Settings | None = None) -> bool:
        """Edited code runs unless turned off, or in public mode while a layer is missing."""
        settings = settings or self.settings
        if settings.allow_edits is not None:
            return settings.allow_edits
        return not (settings.public and self.missing_layers())

    def _open_cgroups(self) -> None:
        mode = self.settings.cgroups  # one of auto, required, off (checked by Settings)
        if mode == "off":
            self.cgroups_problem = "turned off (WORKSHOP_CGROUPS=off)"
            return
        self.cgroups, problem = open_driver()
        if self.cgroups is None:
            self.cgroups_problem = problem
            if mode == "required":
                raise SystemExit(f"WORKSHOP_CGROUPS=required but no cgroup can be made here: {problem}")
            log.warning("runs have NO per-run cgroup (memory, processes, CPU): %s", problem)
        else:
            self.cgroups_problem = ""
            log.info("per-run cgroups (%s) under %s", self.cgroups.version, self.cgroups.where)

    def _choose_launcher(self) -> Launcher:
        mode = self.settings.sandbox
        launcher = choose_launcher(want_bubblewrap=mode != "plain", want_seccomp=self.settings.seccomp)
        if mode == "bubblewrap" and launcher.name != "bubblewrap":
            raise SystemExit("WORKSHOP_SANDBOX=bubblewrap but bubblewrap does not work here (see the log)")
        missing = [*launcher.missing, *([] if self.cgroups is not None else ["cgroups"])]
        if self.settings.public and missing and not self.settings.allow_weak_isolation:
            raise SystemExit(
                "refusing to serve in public mode: sandboxes lack "
                + ", ".join(missing)
                + " (see docs/operators/isolation.md: bubblewrap, libseccomp2, cgroup delegation; or pass"
                " --allow-weak-isolation to accept the risk, with edited code refused)"
            )
        return launcher

    async def drain(self, grace: float) -> bool:
        """Admit no more runs and wait up to `grace` seconds for those in progress; True if they all ended."""
        self.draining = True
        service = self.service
        if service is None:
            return True
        idle = asyncio.Event()

        def check(_run: object = None) -> None:
            if service.running == 0 and service.waiting == 0:
                idle.set()

        service.on_finish.append(check)
        check()
        try:
            await asyncio.wait_for(idle.wait(), grace)
        except TimeoutError:
            return False
        finally:
            service.on_finish.remove(check)
        return True

    def clone_space(self) -> tuple[int, int] | None:
        """Free and total bytes where run databases are cloned (the embedded cluster's folder by default)."""
        if not isinstance(self.server, EmbeddedCluster):
            return None
        try:
            usage = shutil.disk_usage(self.clone_location or self.settings.cache_dir)
        except OSError:
            return None
        return usage.free, usage.total

    @staticmethod
    async def _count_connections(factory: DatabaseFactory) -> tuple[int, int]:
        async with factory.admin_connection() as conn:
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE backend_type = 'client backend') AS used,"
                " current_setting('max_connections')::int AS most FROM pg_stat_activity"
            )
        assert row is not None
        return int(row["used"]), int(row["most"])

    async def stop(self) -> None:
        self.stopping = True
        if self._watchdog:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self.factory:
            self.factory.reuse = False  # the sandboxes closed now drop their databases: no run will come
        if self.pool:
            await self.pool.close()
        if self.fork_server is not None:
            await self.fork_server.close()
        if self.factory:
            with contextlib.suppress(Exception):
                await self.factory.drop_parked()
            with contextlib.suppress(Exception):
                await self.factory.drop_orphans()
            await self.factory.close()
        if self.backend_memory is not None:
            await self.backend_memory.close()
        await self.server.stop()
        if self.factory and self.factory.clone_space:
            self.factory.clone_space.unmount()
        if self.cgroups is not None:
            self.cgroups.close()

    async def _watch(self) -> None:
        """Notice when Postgres goes away; restart the embedded one and refill the pool."""
        while True:
            await asyncio.sleep(1)
            try:
                healthy = await self.server.is_healthy()
                if not healthy:
                    if self.postgres_healthy:
                        log.error("postgres is down")
                    self.postgres_healthy = False
                    if await self.server.restart_if_down():
                        healthy = await self.server.is_healthy()
                if healthy and not self.postgres_healthy:
                    log.info("postgres is back")
                    # defensive after a crash: check the template, and renew prepared sandboxes
                    # (their databases were made with durable commits, but nothing else vouches for them)
                    self.template = await ensure_template(self.server.admin)
                    if self.factory:
                        await self.factory.close()
                        self.factory.template = self.template
                        await self.factory.open()
                    if self.backend_memory is not None:
                        await self.backend_memory.attach_server()
                    if self.pool:
                        self.pool.discard_ready()
                if healthy and self.factory and self.factory.undropped:
                    await self.factory.retry_drops()
                if healthy and self.factory:
                    self.connections = await self._count_connections(self.factory)
                self.postgres_healthy = healthy
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("health check failed: %s", error)
                self.postgres_healthy = False
