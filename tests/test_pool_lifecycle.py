"""Closing a pool while it prepares sandboxes, on the real machinery: nothing may outlive it."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import psutil

from runner.isolation import Launcher
from runner.pool import SandboxPool
from runner.process import OsChild, OsSpawner

from .conftest import LiveRunner


class NoticingSpawner(OsSpawner):
    """The real spawner, telling the test when a child process exists."""

    def __init__(self) -> None:
        self.spawned = asyncio.Event()
        self.children: list[OsChild] = []

    async def spawn(self, launcher: Launcher) -> OsChild:
        child = await super().spawn(launcher)
        self.children.append(child)
        self.spawned.set()
        return child


def test_closing_the_pool_while_a_sandbox_starts_leaves_no_process_group_or_database(live_runner: LiveRunner) -> None:
    runtime = live_runner.runtime
    assert runtime.pool is not None and runtime.factory is not None
    spawner = NoticingSpawner()
    env = dataclasses.replace(runtime.pool.env, spawner=spawner)

    async def scenario() -> tuple[set[str], list[str]]:
        assert runtime.factory is not None
        before = set(await runtime.factory.leftovers())
        pool = SandboxPool(env, size=2, refill_concurrency=2)
        pool.fill()
        await spawner.spawned.wait()  # a child exists and is warming up: close now
        await pool.close()
        after = set(await runtime.factory.leftovers())
        return after - before, [str(p) for p in _run_groups(runtime.cgroups.where if runtime.cgroups else "")]

    groups_before = set(_run_groups(runtime.cgroups.where if runtime.cgroups else ""))
    new_databases, groups = live_runner.call(scenario())
    assert spawner.children, "no child was started"
    for child in spawner.children:
        assert child.returncode is not None, f"child {child.pid} still running"
        assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
        assert child.gate.fileno() == -1, "the gate socket is still open"
    assert new_databases == set(), f"databases left behind: {new_databases}"
    assert set(groups) <= {str(g) for g in groups_before}, f"cgroups left behind: {set(groups)}"


def _run_groups(where: str) -> list[Path]:
    found: list[Path] = []
    for base in filter(None, (part.strip() for part in where.split(","))):
        found += [p for p in Path(base).glob("run-*") if p.is_dir()]
    return found
