"""`python -m bench.backend_memory`: what the run databases' guards cost, on this machine.

* connecting as a run's role, median of 50: into a clone whose login trigger moves
  the backend into its memory group; the same trigger with the layer off (no group
  to move to); a clone without the trigger;
* one size probe of a run database (its folder listed and stat'ed).

Starts an embedded cluster of its own under --cache-dir (root needed for the groups).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import asyncpg

from runner.backend_memory import BackendMemory
from runner.cgroups import open_driver
from runner.databases import DatabaseFactory, RunDatabase
from runner.postgres import EmbeddedCluster
from runner.template import ensure_template

from .stats import median

CONNECTS = 50


async def connect_once(database: RunDatabase) -> float:
    began = time.perf_counter()
    conn = await asyncpg.connect(**database.address.connect_kwargs())
    seconds = time.perf_counter() - began
    await conn.close()
    return seconds


async def pool_once(database: RunDatabase) -> float:
    """A sample's `create_pool()`: ten connections."""
    began = time.perf_counter()
    pool = await asyncpg.create_pool(**database.address.connect_kwargs(), min_size=10, max_size=10)
    seconds = time.perf_counter() - began
    await pool.close()
    return seconds


async def interleaved(first: RunDatabase, second: RunDatabase, count: int, pools: bool) -> tuple[float, float]:
    """Medians (ms) of alternating connects to two databases, so that both see the same load."""
    once = pool_once if pools else connect_once
    a, b = [], []
    for _ in range(count):
        a.append(await once(first))
        b.append(await once(second))
    return median(a) * 1000, median(b) * 1000


async def measure(cache_dir: Path) -> None:
    server = EmbeddedCluster(cache_dir / "runner-pg", backend_memory=256 * 1024 * 1024)
    await server.start()
    driver, reason = open_driver()
    try:
        template = await ensure_template(server.admin)
        factory = DatabaseFactory(server.admin, template, "bench-backend-memory")
        await factory.open()
        await factory.drop_orphans()
        guarded, plain = await factory.create(), await factory.create()
        admin_address = server.admin.as_role(server.admin.user, server.admin.password, plain.name)
        admin = await asyncpg.connect(**admin_address.connect_kwargs())
        await admin.execute("DROP EVENT TRIGGER workshop_enter_run_cgroup")
        await admin.close()
        rows = [("layer off (trigger returns early)", *await interleaved(plain, guarded, CONNECTS, False))]
        layer, why = await BackendMemory.open(driver, server, template)
        if layer is None:
            print(f"the backend memory layer is missing here: {why or reason}")
        else:
            group = layer.create(guarded.name, 1 << 30)
            conn = await asyncpg.connect(**guarded.address.connect_kwargs())
            assert conn.get_server_pid() in group.pids(), "the backend did not join its group"
            await conn.close()
            rows.append(("layer on (backend moves itself)", *await interleaved(plain, guarded, CONNECTS, False)))
            rows.append(("layer on, create_pool(10)", *await interleaved(plain, guarded, 10, True)))
            await layer.release(group, factory)
            await layer.close()
        probe = factory.size_probe(guarded)
        began = time.perf_counter()
        for _ in range(200):
            await probe()
        probe_ms = (time.perf_counter() - began) / 200 * 1000
        for name in (guarded.name, plain.name):
            await factory.drop(name)
        await factory.close()
        print(f"connecting as a run's role, medians of {CONNECTS} alternating connects (pools: of 10):")
        print(f"  {'':36} {'no trigger':>11} {'trigger':>11} {'cost':>9}")
        for label, without, with_trigger in rows:
            print(f"  {label:36} {without:8.2f} ms {with_trigger:8.2f} ms {with_trigger - without:+6.2f} ms")
        print(f"size probe of a run database ({type(probe).__name__}): {probe_ms:.2f} ms per call")
    finally:
        if driver is not None:
            driver.close()
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backend_memory", description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/workshop-bench-backend-memory"))
    args = parser.parse_args(argv)
    asyncio.run(measure(args.cache_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
