"""A run's database is measured against its quota; the RAM-backed clone folder has a ceiling, then disk.

Live: the embedded cluster, its tablespace on a tmpfs mounted by the runner, run
roles filling unlogged tables with `INSERT ... generate_series` as a sample would.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from runner.clone_space import OVERSHOOT_MARGIN, CloneSpace, memory_bytes, mounted_tmpfs, size_of
from runner.database_guard import DatabaseGuard
from runner.databases import DatabaseFactory
from runner.db_quota import FolderProbe, SqlProbe, folder_size, watch
from runner.postgres import service_owner

from .conftest import LiveRunner

MIB = 1024 * 1024
FILL = "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g"


def _factory(live_runner: LiveRunner) -> DatabaseFactory:
    factory = live_runner.runtime.factory
    assert isinstance(factory, DatabaseFactory)
    return factory


def test_reservations_fill_the_ceiling_then_count_what_went_to_disk(tmp_path: Path) -> None:
    space = CloneSpace(tmp_path, ceiling=300, enforced=False)
    assert space.try_reserve("a", 100) and space.try_reserve("b", 200)
    assert not space.try_reserve("c", 1)
    assert space.on_disk == 1
    space.release("a")
    assert space.try_reserve("c", 100)
    usage = space.usage()
    assert (usage.ceiling, usage.reserved, usage.databases, usage.on_disk) == (300, 300, 2, 1)


class ListProbe:
    """Sizes handed out one call at a time, at the folder probe's pace."""

    interval = 0.1

    def __init__(self, sizes: list[int], start: int | None = None) -> None:
        self.sizes = sizes
        self.calls = 0
        self.start = start

    async def __call__(self) -> int:
        self.calls += 1
        return self.sizes.pop(0) if len(self.sizes) > 1 else self.sizes[0]


class FakeGroup:
    limit = 96 * MIB

    def __init__(self, after: int, charges: list[int | None] | None = None) -> None:
        self.after, self.asked = after, 0
        self.charges = charges or [None]

    def under_pressure(self) -> bool:
        self.asked += 1
        return self.asked > self.after

    def charged(self) -> int | None:
        return self.charges.pop(0) if len(self.charges) > 1 else self.charges[0]


@pytest.mark.anyio
async def test_watch_returns_when_the_size_passes_the_limit() -> None:
    probe = ListProbe([10 * MIB, 20 * MIB, 40 * MIB])
    breach = await watch(probe, 32 * MIB)
    assert (breach.kind, breach.size, probe.calls) == ("size", 40 * MIB, 3)
    assert breach.reason == "database size limit of 32 MiB reached (40 MiB)"


@pytest.mark.anyio
async def test_watch_names_the_memory_limit_when_the_backends_pass_it() -> None:
    breach = await watch(ListProbe([MIB]), 32 * MIB, FakeGroup(after=2), memory_limit=64 * MIB)
    assert breach.kind == "memory" and breach.reason == "database memory limit of 64 MiB reached"


@pytest.mark.anyio
async def test_watch_looks_at_the_group_every_tenth_of_a_second_even_with_a_slow_probe() -> None:
    probe = ListProbe([MIB])
    probe.interval = 1.0
    group = FakeGroup(after=3)
    began = time.monotonic()
    breach = await watch(probe, 32 * MIB, group)
    assert breach.kind == "memory" and probe.calls == 0  # the probe waits its interval first: a fresh clone fits
    assert time.monotonic() - began < 0.9


class LoggedProbe(ListProbe):
    def __init__(self, sizes: list[int], log: list[str], start: int | None = None) -> None:
        super().__init__(sizes, start)
        self.log = log

    async def __call__(self) -> int:
        self.log.append("list")
        return await super().__call__()


class LoggedGroup(FakeGroup):
    def __init__(self, after: int, charges: list[int | None], log: list[str]) -> None:
        super().__init__(after, charges)
        self.log = log

    def charged(self) -> int | None:
        self.log.append("charge")
        return super().charged()


@pytest.mark.anyio
async def test_the_folder_is_listed_once_while_the_groups_charge_keeps_it_within_the_quota() -> None:
    log: list[str] = []
    probe = LoggedProbe([10 * MIB], log)
    breach = await watch(probe, 32 * MIB, LoggedGroup(after=6, charges=[5 * MIB], log=log))
    assert breach.kind == "memory"
    assert log[:2] == ["charge", "list"] and "list" not in log[2:], log  # 10 + 5 MiB fit in 32: no more listing
    assert len(log) >= 3


@pytest.mark.anyio
async def test_the_folder_is_listed_again_once_the_groups_charge_could_take_it_past_the_quota() -> None:
    log: list[str] = []
    probe = LoggedProbe([10 * MIB, 40 * MIB], log)
    charges: list[int | None] = [5 * MIB, 5 * MIB, 22 * MIB, 23 * MIB]
    breach = await watch(probe, 32 * MIB, LoggedGroup(after=100, charges=charges, log=log))
    assert (breach.kind, breach.size) == ("size", 40 * MIB)
    # 10 + 5 and 10 + 22 fit in 32 MiB (skipped); 10 + 23 may not: listed, and it is 40
    assert log == ["charge", "list", "charge", "charge", "charge", "list"]


@pytest.mark.anyio
async def test_a_folder_whose_starting_size_is_known_is_not_listed_until_the_charge_could_pass_the_quota() -> None:
    log: list[str] = []
    probe = LoggedProbe([40 * MIB], log, start=10 * MIB)
    charges: list[int | None] = [5 * MIB, 5 * MIB, 23 * MIB]
    breach = await watch(probe, 32 * MIB, LoggedGroup(after=100, charges=charges, log=log))
    assert (breach.kind, breach.size) == ("size", 40 * MIB)
    assert log == ["charge", "charge", "charge", "list"]


@pytest.mark.anyio
async def test_a_known_starting_size_without_a_group_is_listed_as_usual() -> None:
    probe = ListProbe([10 * MIB, 40 * MIB], start=10 * MIB)
    breach = await watch(probe, 32 * MIB)
    assert (breach.kind, probe.calls) == ("size", 2)


@pytest.mark.anyio
async def test_a_group_whose_charge_cannot_be_read_vouches_for_nothing() -> None:
    log: list[str] = []
    probe = LoggedProbe([10 * MIB, 20 * MIB, 40 * MIB], log)
    breach = await watch(probe, 32 * MIB, LoggedGroup(after=100, charges=[None], log=log))
    assert breach.kind == "size" and log == ["charge", "list"] * 3


def test_an_in_memory_database_starts_at_the_size_of_a_fresh_clone_measured_once(live_runner: LiveRunner) -> None:
    """What the watch takes as a run's starting size is never below what a fresh clone's folder holds."""
    factory = _factory(live_runner)

    async def scenario() -> tuple[int | None, int]:
        db = await factory.create()
        try:
            probe = factory.size_probe(db)
            assert isinstance(probe, FolderProbe) and db.in_memory
            return probe.start, folder_size(probe.folder)
        finally:
            await factory.drop(db.name)

    start, listed = live_runner.call(scenario())
    assert start is not None and start == factory.clone_size
    assert listed <= start


def test_the_probe_measures_what_the_server_reports(live_runner: LiveRunner) -> None:
    factory = _factory(live_runner)

    async def scenario() -> tuple[int, int, float]:
        db = await factory.create()
        try:
            probe = factory.size_probe(db)
            assert isinstance(probe, FolderProbe) and probe.interval == 0.1, probe
            conn = await asyncpg.connect(**factory.admin.connect_kwargs())
            try:
                reported = int(await conn.fetchval("SELECT pg_database_size($1)", db.name))
            finally:
                await conn.close()
            began = time.perf_counter()
            for _ in range(100):
                measured = await probe()
            return measured, reported, (time.perf_counter() - began) / 100
        finally:
            await factory.drop(db.name)

    measured, reported, seconds = live_runner.call(scenario())
    print(f"\nfolder probe {measured / MIB:.1f} MiB, pg_database_size {reported / MIB:.1f} MiB, {seconds * 1e3:.2f} ms")
    assert abs(measured - reported) < max(reported // 20, 256 * 1024)


@pytest.mark.parametrize("with_group", [False, True], ids=["listing every poll", "listing when the charge says"])
def test_a_database_growing_past_its_quota_is_seen_within_a_poll(live_runner: LiveRunner, with_group: bool) -> None:
    """An unlogged table filled from the run's role; the watch returns, the backend is terminated.

    With the backends' group, as a sandbox watches, listings the group's charge rules out are skipped."""
    factory = _factory(live_runner)
    limit = 64 * MIB

    assert live_runner.runtime.pool is not None
    guard = live_runner.runtime.pool.env.guard

    async def scenario() -> dict[str, float | str]:
        db = await factory.create()
        group = await guard.attach(db) if guard is not None else None  # as a sandbox does: its role's logins join it
        try:
            assert db.in_memory
            probe = factory.size_probe(db)
            assert isinstance(probe, FolderProbe)
            initial = await probe()
            conn = await asyncpg.connect(**db.address.connect_kwargs())
            await conn.execute("CREATE UNLOGGED TABLE big (x int, pad text)")
            loop = asyncio.get_running_loop()
            started = loop.time()
            if with_group:
                assert group is not None, "the cgroup layer is off: no backend group"
                charged = group.charged()
                assert charged is not None and initial + charged < limit  # so listings are skipped at first
            watching = asyncio.create_task(watch(probe, limit, group if with_group else None))

            async def fill() -> None:
                while True:
                    await conn.execute(FILL)

            filling = asyncio.create_task(fill())
            crossed: float | None = None
            while not watching.done():  # a finer sampler, only to time when the quota was passed
                if crossed is None and folder_size(probe.folder) > limit:
                    crossed = loop.time()
                if loop.time() - started > 60:
                    raise AssertionError("the database never passed its quota")
                await asyncio.sleep(0.01)
            breach = watching.result()
            seen = loop.time()
            terminated = await factory.terminate_backends(db.name)
            outcome = (await asyncio.gather(filling, return_exceptions=True))[0]
            final = await probe()
            if crossed is None:  # the watch saw it first, within one of the sampler's looks (10 ms)
                crossed = seen
            return {
                "kind": breach.kind,
                "reason": breach.reason,
                "initial MiB": initial / MIB,
                "seen at MiB": breach.size / MIB,
                "final MiB": final / MIB,
                "overshoot MiB": (final - limit) / MIB,
                "latency s": seen - crossed,
                "growth MiB/s": (breach.size - initial) / MIB / (seen - started),
                "terminated": terminated,
                "client saw": type(outcome).__name__,
            }
        finally:
            if group is not None and guard is not None:
                await guard.release(group)
            await factory.drop(db.name)

    figures = live_runner.call(scenario(), timeout=120)
    print("\nquota of 64 MiB:", figures)
    assert figures["kind"] == "size" and "database size limit of 64 MiB reached" in str(figures["reason"])
    assert figures["terminated"] == 1
    assert float(figures["latency s"]) < 0.35  # the poll is every 0.1 s
    assert float(figures["overshoot MiB"]) < OVERSHOOT_MARGIN / MIB


def test_the_clone_folder_is_a_tmpfs_of_the_ceilings_size(live_runner: LiveRunner) -> None:
    factory = _factory(live_runner)
    if os.geteuid() != 0:
        pytest.skip("only root mounts the ceiling")
    usage = factory.clone_space_usage()
    assert usage is not None and usage.enforced, usage
    location = Path(usage.location)
    assert mounted_tmpfs(location)
    assert size_of(location) == usage.ceiling <= memory_bytes() // 4
    assert usage.reserved == usage.databases * (factory.size_limit + OVERSHOOT_MARGIN)


def test_the_ceiling_is_mounted_once_then_reused_or_resized(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root mounts the ceiling")
    location = Path("/dev/shm") / f"wtc-remount-{os.getpid()}"
    location.mkdir(mode=0o700)
    (location / "left-over").write_text("hidden under a mount, it would hold RAM nobody can free")
    try:
        first = CloneSpace.prepare(location, 32 * MIB, None)
        assert first.enforced and mounted_tmpfs(location) and size_of(location) == 32 * MIB
        assert not (location / "left-over").exists()
        (location / "kept").write_text("a tablespace's files")
        again = CloneSpace.prepare(location, 32 * MIB, None)
        resized = CloneSpace.prepare(location, 48 * MIB, None)
        assert again.enforced and resized.enforced and resized.ceiling == size_of(location) == 48 * MIB
        assert (location / "kept").exists()  # reused and resized in place, not mounted over
        mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(location) in line]
        assert len(mounts) == 1, mounts
    finally:
        if mounted_tmpfs(location):
            subprocess.run(["umount", str(location)], check=True)
        for child in location.iterdir():
            child.unlink()
        location.rmdir()


def test_stopping_gives_the_memory_back_and_leaves_no_folder_behind(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root mounts the ceiling")
    location = Path("/dev/shm") / f"wtc-unmount-{os.getpid()}"
    location.mkdir(mode=0o700)
    try:
        space = CloneSpace.prepare(location, 32 * MIB, None)
        assert space.enforced and mounted_tmpfs(location)
        (location / "PG_18_0").mkdir()  # a tablespace's folder, as PostgreSQL leaves it after dropping everything
        space.unmount()
        assert not mounted_tmpfs(location)
        assert not location.exists(), "the empty mount point was left in /dev/shm"
    finally:
        if mounted_tmpfs(location):
            subprocess.run(["umount", str(location)], check=True)
        if location.exists():
            location.rmdir()


@pytest.fixture
def small_space(live_runner: LiveRunner) -> Iterator[tuple[DatabaseFactory, CloneSpace]]:
    """A factory of its own, whose tablespace is a tmpfs with room for one run database at quota."""
    if os.geteuid() != 0:
        pytest.skip("only root mounts the ceiling")
    runtime = live_runner.runtime
    location = Path("/dev/shm") / f"wtc-space-{os.getpid()}"
    location.mkdir(mode=0o700)
    owner = service_owner()
    if owner:
        os.chown(location, *owner)
    factory = DatabaseFactory(runtime.server.admin, runtime.template, "space-test")

    async def template_size() -> int:
        conn = await asyncpg.connect(**runtime.server.admin.connect_kwargs())
        try:
            return int(await conn.fetchval("SELECT pg_database_size($1)", runtime.template))
        finally:
            await conn.close()

    factory.size_limit = template_size_limit = live_runner.call(template_size()) + 16 * MIB
    reservation = template_size_limit + OVERSHOOT_MARGIN
    space = CloneSpace.prepare(location, reservation + 16 * MIB, owner)
    live_runner.call(factory.open())
    live_runner.call(factory.ensure_tablespace("workshop_test_space", location, space))
    try:
        yield factory, space
    finally:

        async def tidy() -> None:
            await factory.drop_orphans()
            conn = await asyncpg.connect(**runtime.server.admin.connect_kwargs())
            try:
                await conn.execute("DROP TABLESPACE IF EXISTS workshop_test_space")
            finally:
                await conn.close()
            await factory.close()

        live_runner.call(tidy())
        subprocess.run(["umount", str(location)], check=True)
        location.rmdir()


def test_a_full_clone_folder_is_an_error_for_the_statement_and_the_next_clone_goes_to_disk(
    live_runner: LiveRunner, small_space: tuple[DatabaseFactory, CloneSpace]
) -> None:
    factory, space = small_space
    assert space.enforced
    postmaster = live_runner.runtime.server.pid

    async def scenario() -> dict[str, object]:
        first = await factory.create()
        second = await factory.create()  # no room for a second reservation: onto disk
        outcomes: dict[str, object] = {"first in memory": first.in_memory, "second in memory": second.in_memory}
        outcomes["on disk"] = space.usage().on_disk
        runtime = live_runner.runtime
        guard = DatabaseGuard(factory, runtime.backend_memory, factory.size_limit, runtime.settings.db_memory_limit)
        group = await guard.attach(first)  # as a sandbox does: its role's logins join it
        conn = await asyncpg.connect(**first.address.connect_kwargs())
        await conn.execute("CREATE UNLOGGED TABLE big (x int, pad text)")
        try:
            for _ in range(200):
                await conn.execute(FILL)
            outcomes["fill"] = "never full"
        except asyncpg.PostgresError as error:
            outcomes["fill"] = f"{type(error).__name__}: {error}"
        outcomes["same connection after"] = await conn.fetchval("SELECT 1")
        outcomes["used at the ceiling"] = space.usage().used
        await conn.close()
        if group is not None:
            await guard.release(group)
        await factory.drop(first.name)
        third = await factory.create()  # the first's reservation is free again
        outcomes["third in memory"] = third.in_memory
        await factory.drop(second.name)
        await factory.drop(third.name)
        return outcomes

    outcomes = live_runner.call(scenario(), timeout=120)
    print("\na full clone folder:", outcomes, f"ceiling {space.ceiling / MIB:.0f} MiB")
    assert outcomes["first in memory"] is True and outcomes["second in memory"] is False
    assert outcomes["on disk"] == 1
    assert str(outcomes["fill"]).startswith("DiskFullError"), outcomes["fill"]
    assert outcomes["same connection after"] == 1
    assert outcomes["third in memory"] is True
    assert live_runner.runtime.server.pid == postmaster and live_runner.runtime.server.process_alive()


def test_an_external_servers_databases_are_measured_by_sql(live_runner: LiveRunner) -> None:
    """Without a readable data directory the probe asks the server, at a slower pace."""
    factory = _factory(live_runner)
    data_dir = factory.data_dir

    async def scenario() -> tuple[object, int]:
        db = await factory.create()
        factory.data_dir = None  # as for a server in a container: its files are not the runner's to read
        try:
            db_on_disk = type(db)(db.name, db.address, db.oid, in_memory=False)
            probe = factory.size_probe(db_on_disk)
            return probe, await probe()
        finally:
            factory.data_dir = data_dir
            await factory.drop(db.name)

    probe, size = live_runner.call(scenario())
    assert isinstance(probe, SqlProbe) and probe.interval == 1.0
    assert size > MIB
