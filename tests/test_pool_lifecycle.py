"""Closing a pool while it prepares sandboxes, on the real machinery: nothing may outlive it."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import psutil

from runner.cgroups import CgroupDriver, CgroupLimits, RunCgroup
from runner.databases import DatabaseFactory, RunDatabase
from runner.isolation import Launcher
from runner.pool import SandboxPool
from runner.process import ChildProcess, Spawner

from .conftest import LiveRunner


class NoticingSpawner:
    """The runner's own spawner (bubblewrap or the fork server), telling the test when a child process exists."""

    def __init__(self, spawner: Spawner) -> None:
        self.spawner = spawner
        self.spawned = asyncio.Event()
        self.children: list[ChildProcess] = []

    async def spawn(self, launcher: Launcher) -> ChildProcess:
        child = await self.spawner.spawn(launcher)
        self.children.append(child)
        self.spawned.set()
        return child


class RecordingDatabases:
    """The real factory, remembering the databases made through it (the live pool makes its own meanwhile)."""

    def __init__(self, factory: DatabaseFactory) -> None:
        self.factory = factory
        self.admin = factory.admin
        self.names: list[str] = []

    async def create(self) -> RunDatabase:
        database = await self.factory.create()
        self.names.append(database.name)
        return database

    async def release(self, name: str) -> None:
        await self.factory.release(name)


class RecordingCgroups:
    """The real cgroup driver, remembering the groups made through it."""

    def __init__(self, driver: CgroupDriver) -> None:
        self.driver = driver
        self.version, self.where = driver.version, driver.where
        self.names: list[str] = []

    def create(self, name: str, limits: CgroupLimits) -> RunCgroup:
        self.names.append(name)
        return self.driver.create(name, limits)

    def close(self) -> None:
        raise AssertionError("the runtime owns the driver")


def test_closing_the_pool_while_a_sandbox_starts_leaves_no_process_group_or_database(live_runner: LiveRunner) -> None:
    runtime = live_runner.runtime
    assert runtime.pool is not None and runtime.factory is not None
    spawner = NoticingSpawner(runtime.pool.env.spawner)
    databases = RecordingDatabases(runtime.factory)
    assert runtime.cgroups is not None, "this machine is expected to have per-run cgroups"
    cgroups = RecordingCgroups(runtime.cgroups)
    env = dataclasses.replace(runtime.pool.env, spawner=spawner, databases=databases, cgroups=cgroups)

    async def scenario() -> tuple[set[str], list[str]]:
        assert runtime.factory is not None
        pool = SandboxPool(env, size=2, refill_concurrency=2)
        pool.fill()
        await spawner.spawned.wait()  # a child exists and is warming up: close now
        await pool.close()
        left = (set(await runtime.factory.leftovers()) - runtime.factory.parked()) & set(databases.names)
        return left, [str(p) for p in _run_groups(cgroups.where) if p.name in cgroups.names]

    new_databases, groups = live_runner.call(scenario())
    assert spawner.children, "no child was started"
    for child in spawner.children:
        assert child.returncode is not None, f"child {child.pid} still running"
        assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
        assert child.gate.fileno() == -1, "the gate socket is still open"
    assert new_databases == set(), f"databases left behind: {new_databases}"
    assert cgroups.names, "no cgroup was made"
    assert groups == [], f"cgroups left behind: {groups}"


def _run_groups(where: str) -> list[Path]:
    found: list[Path] = []
    for base in filter(None, (part.strip() for part in where.split(","))):
        found += [p for p in Path(base).glob("run-*") if p.is_dir()]
    return found
