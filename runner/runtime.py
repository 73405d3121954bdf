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

from .clone_space import CloneSpace
from .databases import DatabaseFactory
from .isolation import Launcher, PlainLauncher, choose_launcher
from .pool import SandboxPool
from .postgres import EmbeddedCluster, ExternalServer, PostgresServer, service_owner
from .runs import RunService
from .settings import Settings
from .snippets import Snippet, load_catalogue
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
        self.snippets: dict[str, Snippet] = load_catalogue()
        self.server = make_server(settings)
        self.launcher: Launcher = PlainLauncher()
        self.factory: DatabaseFactory | None = None
        self.pool: SandboxPool | None = None
        self.service: RunService | None = None
        self.postgres_healthy = False
        self.template = ""
        self.started_seconds: float | None = None
        self._watchdog: asyncio.Task[None] | None = None

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
            ",".join(self.launcher.layers),
            ",".join(self.launcher.missing) or "none",
        )

    async def _start_parts(self) -> None:
        await self.server.start()
        self.postgres_healthy = True
        self.launcher = await asyncio.to_thread(self._choose_launcher)
        self.template = await ensure_template(self.server.admin)
        self.factory = DatabaseFactory(
            self.server.admin, self.template, self.settings.instance, size_limit=self.settings.db_size_limit
        )
        await self.factory.open()
        await self.factory.drop_orphans()
        await self._use_fast_clone_dir()
        self.pool = SandboxPool(
            self.factory, self.launcher, size=self.settings.pool_size, refill_concurrency=self.settings.pool_refill
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
        log.info(
            "run databases are cloned into %s (%d MiB%s, then onto disk)",
            location,
            space.ceiling >> 20,
            ", a tmpfs of its own" if space.enforced else "",
        )

    def _choose_launcher(self) -> Launcher:
        mode = self.settings.sandbox
        if mode not in {"auto", "bubblewrap", "plain"}:
            raise SystemExit(f"WORKSHOP_SANDBOX must be auto, bubblewrap or plain, not {mode!r}")
        launcher = choose_launcher(want_bubblewrap=mode != "plain")
        if mode == "bubblewrap" and launcher.name != "bubblewrap":
            raise SystemExit("WORKSHOP_SANDBOX=bubblewrap but bubblewrap does not work here (see the log)")
        if self.settings.public and launcher.missing and not self.settings.allow_weak_isolation:
            raise SystemExit(
                "refusing to serve in public mode: sandboxes lack "
                + ", ".join(launcher.missing)
                + " (install bubblewrap, or pass --allow-weak-isolation to accept the risk)"
            )
        return launcher

    async def stop(self) -> None:
        if self._watchdog:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self.pool:
            await self.pool.close()
        if self.factory:
            with contextlib.suppress(Exception):
                await self.factory.drop_orphans()
            await self.factory.close()
        await self.server.stop()
        if self.factory and self.factory.clone_space:
            self.factory.clone_space.unmount()

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
                    if self.pool:
                        self.pool.discard_ready()
                if healthy and self.factory and self.factory.undropped:
                    await self.factory.retry_drops()
                self.postgres_healthy = healthy
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("health check failed: %s", error)
                self.postgres_healthy = False
