"""The floor on this machine: what the parts of a sandbox cost at the least, each alone.

A run cannot cost less than a fork of a warm interpreter, fresh namespaces, a clone
of the seeded database and a connection handshake; today each sandbox also pays an
interpreter start with `import asyncpg`. Each part is timed on its own (wall time
and the CPU it used, medians), with the runner's own code where the runner does it
(the clone and the handshake go through `DatabaseFactory`, a whole cold sandbox
through `Sandbox.prepare`, started by bubblewrap and by the fork server), so the
distance between a figure and its limit shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from runner.forkserver import ForkLauncher
from runner.isolation import CHILD_ARGV
from runner.process import OsSpawner
from runner.runtime import Runtime
from runner.sandbox import Sandbox
from runner.settings import REPO_ROOT, Settings

from .cpu import CpuAccount
from .stats import median

FORKS = r"""
import ctypes, json, os, sys, time, resource
import asyncpg  # the memory a zygote would hold
LIBC = ctypes.CDLL(None, use_errno=True)
FLAGS = 0x10000000 | 0x00020000 | 0x20000000 | 0x08000000 | 0x04000000 | 0x40000000  # user mnt pid ipc uts net

def measure(count, unshare):
    walls, cpus = [], []
    for _ in range(count):
        before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            if unshare:
                os._exit(0 if LIBC.unshare(FLAGS) == 0 else 1)
            os._exit(0)
        if os.waitpid(pid, 0)[1] != 0:
            raise SystemExit("unshare failed")
        walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before)))
    return walls, cpus

count = int(sys.argv[1])
print(json.dumps({"fork": measure(count, False), "fork + unshare": measure(count, True)}))
"""


@dataclass
class Part:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def wall_median(self) -> float:
        return median(self.wall)

    @property
    def cpu_median(self) -> float:
        return median(self.cpu)


@dataclass
class FloorSample:
    parts: dict[str, Part] = field(default_factory=dict)
    method: str = "not measured"
    """How the CPU of the runner's parts was read (bench/cpu.py)."""

    def part(self, name: str) -> Part:
        return self.parts.setdefault(name, Part())


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_processes(sample: FloorSample, forks: int, starts: int) -> None:
    """Forks (with and without new namespaces) and interpreter starts, each in a process of its own."""
    done = subprocess.run([sys.executable, "-I", "-c", FORKS, str(forks)], capture_output=True, text=True, check=True)
    for name, (walls, cpus) in json.loads(done.stdout).items():
        sample.parts[name] = Part(walls, cpus)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    for name, code in (("interpreter start", "pass"), ("interpreter start + import asyncpg", "import asyncpg")):
        part = sample.part(name)
        for _ in range(starts):
            cpu, began = _children_cpu(), time.perf_counter()
            subprocess.run([*CHILD_ARGV[:-2], "-c", code], check=True, env=env, cwd="/")
            part.wall.append(time.perf_counter() - began)
            part.cpu.append(_children_cpu() - cpu)


async def _measure_runner_parts(sample: FloorSample, cache_dir: Path, count: int) -> None:
    settings = Settings.from_env({"WORKSHOP_CACHE_DIR": str(cache_dir), "WORKSHOP_POOL_SIZE": "0"})
    account = CpuAccount()
    account.enter()
    account.watch(os.getpid())
    runtime = Runtime(settings)
    try:
        await runtime.start()
        assert runtime.factory is not None and runtime.pool is not None
        factory, guard = runtime.factory, runtime.pool.env.guard

        def used() -> float:
            return account.seconds()  # this process, the PostgreSQL it started, the sandboxes

        clone, drop = sample.part("database clone"), sample.part("drop")
        first, later = sample.part("connection handshake"), sample.part("connection handshake, a later one")
        client = sample.part("  of which the client (asyncpg)")
        for _ in range(count):
            cpu, began = used(), time.perf_counter()
            database = await factory.create()
            backends = await guard.attach(database) if guard is not None else None  # as a sandbox does
            clone.wall.append(time.perf_counter() - began)
            clone.cpu.append(used() - cpu)
            for handshake in (first, later):  # the first to a fresh clone may build caches the later ones reuse
                cpu, own, began = used(), _own_cpu(), time.perf_counter()
                conn = await asyncpg.connect(**database.address.connect_kwargs())
                await conn.fetchval("SELECT 1")
                handshake.wall.append(time.perf_counter() - began)
                handshake.cpu.append(used() - cpu)
                if handshake is later:
                    client.wall.append(time.perf_counter() - began)
                    client.cpu.append(_own_cpu() - own)
                await conn.close()
            cpu, began = used(), time.perf_counter()
            if guard is not None and backends is not None:
                await guard.release(backends)
            await factory.drop(database.name)
            drop.wall.append(time.perf_counter() - began)
            drop.cpu.append(used() - cpu)
        envs = {"bubblewrap": runtime.pool.env}
        if isinstance(runtime.launcher, ForkLauncher):  # the runner forks its sandboxes: measure both ways
            envs = {
                "bubblewrap": dataclasses.replace(
                    runtime.pool.env, launcher=runtime.launcher.bubblewrap, spawner=OsSpawner()
                ),
                "fork server": runtime.pool.env,
            }
        for way, env in envs.items():
            cold = sample.part(f"cold sandbox, {way} (prepare + destroy)")
            for _ in range(count):
                cpu, began = used(), time.perf_counter()
                sandbox = await Sandbox.prepare(env)
                await sandbox.destroy()
                cold.wall.append(time.perf_counter() - began)
                cold.cpu.append(used() - cpu)
    finally:
        await runtime.stop()
        account.close()
        sample.method = account.method


def measure(cache_dir: Path, *, forks: int, starts: int, clones: int) -> FloorSample:
    sample = FloorSample()
    measure_processes(sample, forks, starts)
    asyncio.run(_measure_runner_parts(sample, cache_dir, clones))
    return sample
