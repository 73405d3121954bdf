"""A run's backends stay within their memory group, and reaching it never takes the server down.

Live: the embedded cluster, the real login trigger and real cgroups (v1 on the
development and CI machines). Needs root, as the runner does to create groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from runner.backend_memory import LOGIN_TRIGGER_SQL, BackendGroup, BackendMemory, group_limit
from runner.cgroups import V1Driver, V2Driver, open_driver, remove_groups_of_gone_runners
from runner.databases import DatabaseFactory, RunDatabase
from runner.postgres import BACKEND_CGROUPS_FILE, EmbeddedCluster
from runner.template import load_setup_module, seed_fingerprint

from .conftest import LiveRunner, session_ended

MIB = 1024 * 1024
SMALL = 64 * MIB
BIG_HASH_AGGREGATE = "SELECT count(*) FROM (SELECT g, count(*) FROM generate_series(1, 20000000) g GROUP BY g) s"


@pytest.fixture(scope="module")
def layer(live_runner: LiveRunner) -> Iterator[BackendMemory]:
    """The runner's own layer when it has one, else one opened for these tests and closed after them."""
    if os.geteuid() != 0:
        pytest.skip("memory groups are made by a runner running as root")
    runtime = live_runner.runtime
    existing = getattr(runtime, "backend_memory", None)
    if isinstance(existing, BackendMemory):
        yield existing
        return
    driver, reason = open_driver()
    assert driver is not None, reason
    opened, reason = live_runner.call(BackendMemory.open(driver, runtime.server, runtime.template))
    assert opened is not None, reason
    try:
        yield opened
    finally:
        live_runner.call(opened.close())
        bases = list(driver.bases.values()) if isinstance(driver, V1Driver) else []
        bases += [driver.base] if isinstance(driver, V2Driver) else []
        for base in set(bases):  # the runner's own groups are not ours to kill: remove the folders if empty
            with contextlib.suppress(OSError):
                base.rmdir()


def _factory(live_runner: LiveRunner) -> DatabaseFactory:
    factory = live_runner.runtime.factory
    assert isinstance(factory, DatabaseFactory)
    return factory


def _log_files(live_runner: LiveRunner) -> list[Path]:
    """The server's own log (its start) and the collector's hourly files, where backends write."""
    server = live_runner.runtime.server
    assert isinstance(server, EmbeddedCluster)
    return [server.log_path, *sorted((server.data_dir / "log").glob("*.log"))]


def _log_from(live_runner: LiveRunner) -> tuple[LiveRunner, dict[Path, int]]:
    return live_runner, {path: path.stat().st_size for path in _log_files(live_runner)}


def _log_since(mark: tuple[LiveRunner, dict[Path, int]]) -> str:
    live_runner, sizes = mark
    text = []
    for path in _log_files(live_runner):  # a new hour starts a new file: read it from its beginning
        with open(path, errors="replace") as log:
            log.seek(sizes.get(path, 0))
            text.append(log.read())
    return "".join(text)


def _assert_no_crash(log: str) -> None:
    for sign in ("terminated by signal", "terminating any other active server processes", "PANIC"):
        assert sign not in log, f"the server crashed ({sign!r}):\n{log[-3000:]}"


async def _until(condition: object, what: str, timeout: float = 30) -> float:
    """Poll `condition()` until it holds; fails (never returns quietly) when `timeout` passes."""
    began = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - began


def test_the_template_carries_the_login_trigger_and_its_fingerprint_covers_it(live_runner: LiveRunner) -> None:
    setup = load_setup_module()
    assert seed_fingerprint(setup, LOGIN_TRIGGER_SQL) != seed_fingerprint(setup)
    assert live_runner.runtime.template.endswith(seed_fingerprint(setup, LOGIN_TRIGGER_SQL))

    async def flag() -> bool:
        conn = await asyncpg.connect(**live_runner.runtime.server.admin.connect_kwargs())
        try:
            return bool(
                await conn.fetchval(
                    "SELECT dathasloginevt FROM pg_database WHERE datname = $1", live_runner.runtime.template
                )
            )
        finally:
            await conn.close()

    assert live_runner.call(flag())


def test_group_limit_counts_the_database_pages_only_in_memory() -> None:
    assert group_limit(256 * MIB, 128 * MIB, True) == 384 * MIB
    assert group_limit(256 * MIB, 128 * MIB, False) == 256 * MIB


@pytest.mark.parametrize(
    ("version", "stat"),
    [
        ("v1", "cache 900\nrss 70\nshmem 30\ntotal_cache 900\ntotal_rss 70\ntotal_shmem 31\n"),
        ("v2", "anon 70\nfile 900\nshmem 31\n"),
    ],
)
def test_what_a_group_holds_leaves_the_page_cache_out(tmp_path: Path, version: str, stat: str) -> None:
    (tmp_path / "memory.stat").write_text(stat)
    (tmp_path / "cgroup.procs").write_text("")
    usage = tmp_path / ("memory.usage_in_bytes" if version == "v1" else "memory.current")
    usage.write_text("1001\n")  # the page cache counts in the usage: past either limit below
    group = BackendGroup("wsrun_x", tmp_path, 100, version)
    assert group.held() == 101
    assert group.under_pressure() and group.held_at_trip == 101
    assert not BackendGroup("wsrun_y", tmp_path, 101, version).under_pressure()
    usage.write_text("100\n")  # what they hold is part of the usage: a usage within the limit is enough to know
    assert not BackendGroup("wsrun_z", tmp_path, 100, version).under_pressure()


def test_a_group_left_behind_under_a_reused_databases_name_is_replaced(
    live_runner: LiveRunner, layer: BackendMemory
) -> None:
    """A parked database comes back under its name: a group an earlier clean-up failed to remove must not block it."""
    factory = _factory(live_runner)

    async def scenario() -> str:
        db = await factory.create()
        try:
            (layer.base / db.name).mkdir()  # as a failed removal leaves it
            group = layer.create(db.name, SMALL)
            conn = await asyncpg.connect(**db.address.connect_kwargs(), timeout=10)
            member = str(conn.get_server_pid() in group.pids())
            await conn.close()
            await layer.release(group, factory)
            return member
        finally:
            await factory.drop(db.name)

    assert live_runner.call(scenario(), timeout=60) == "True"


def test_a_backend_joins_its_group_at_login_or_cannot_log_in(live_runner: LiveRunner, layer: BackendMemory) -> None:
    factory = _factory(live_runner)

    async def scenario() -> dict[str, str]:
        db = await factory.create()
        outcomes: dict[str, str] = {}
        try:
            kwargs = db.address.connect_kwargs()
            try:
                await asyncpg.connect(**kwargs, timeout=10)
                outcomes["no group"] = "connected"
            except asyncpg.PostgresError as error:
                outcomes["no group"] = type(error).__name__
            group = layer.create(db.name, SMALL)
            conn = await asyncpg.connect(**kwargs)
            pid = conn.get_server_pid()
            outcomes["member"] = str(pid in group.pids())
            outcomes["proc"] = Path(f"/proc/{pid}/cgroup").read_text()
            # a run's role owns `public` (through the template's owner) and may wreck it: the guard stays
            await conn.execute("DROP SCHEMA public CASCADE")
            for sql in (
                "DROP EVENT TRIGGER workshop_enter_run_cgroup",
                "ALTER EVENT TRIGGER workshop_enter_run_cgroup DISABLE",
                "DROP SCHEMA workshop_guard CASCADE",
                "CREATE OR REPLACE FUNCTION workshop_guard.enter_run_cgroup() RETURNS event_trigger "
                "LANGUAGE plpgsql AS $$BEGIN END$$",
                "SET session_replication_role = replica",
                "SET event_triggers = off",
            ):
                try:
                    await conn.execute(sql)
                    outcomes[sql] = "allowed"
                except asyncpg.PostgresError as error:
                    outcomes[sql] = type(error).__name__
            await conn.close()
            for setting in ("event_triggers", "session_replication_role"):
                value = "off" if setting == "event_triggers" else "replica"
                try:
                    other = await asyncpg.connect(**kwargs, server_settings={setting: value})
                    outcomes[f"startup {setting}"] = str(other.get_server_pid() in group.pids())
                    await other.close()
                except asyncpg.PostgresError as error:
                    outcomes[f"startup {setting}"] = type(error).__name__
            again = await asyncpg.connect(**kwargs)
            outcomes["member after the attacks"] = str(again.get_server_pid() in group.pids())
            await again.close()
            await layer.release(group, factory)
        finally:
            await factory.drop(db.name)
        return outcomes

    outcomes = live_runner.call(scenario(), timeout=60)
    assert outcomes.pop("no group") == "UndefinedFileError"  # the trigger failed, so the login did
    assert outcomes.pop("member") == "True"
    assert f"/{layer.base.name}/" in outcomes.pop("proc")
    assert outcomes.pop("member after the attacks") == "True"
    assert all(outcome != "allowed" and outcome != "False" for outcome in outcomes.values()), outcomes


def test_one_backend_past_its_own_cap_gets_an_error_and_lives_on(live_runner: LiveRunner, layer: BackendMemory) -> None:
    """RLIMIT_DATA: the allocation fails in malloc, PostgreSQL says "out of memory", nothing is killed."""
    factory = _factory(live_runner)
    server = live_runner.runtime.server
    assert isinstance(server, EmbeddedCluster) and server.backend_memory is not None
    cap = server.backend_memory
    mark = _log_from(live_runner)

    async def scenario() -> dict[str, object]:
        db = await factory.create()
        group = layer.create(db.name, 4 * cap)  # the group is not what stops it here
        try:
            conn = await asyncpg.connect(**db.address.connect_kwargs())
            pid = conn.get_server_pid()
            limits = Path(f"/proc/{pid}/limits").read_text()
            outcomes: dict[str, object] = {"limit": next(line for line in limits.splitlines() if "data" in line)}
            for label, sql in (
                ("one big value", f"SELECT length(repeat('x', {cap + 16 * MIB}))"),
                ("work_mem = 2GB", "SET work_mem = '2GB'; " + BIG_HASH_AGGREGATE),
            ):
                try:
                    await conn.execute(sql)
                    outcomes[label] = "done"
                except asyncpg.PostgresError as error:
                    outcomes[label] = type(error).__name__
                outcomes[f"{label}, then"] = await conn.fetchval("SELECT 1")
            outcomes["same backend"] = conn.get_server_pid() == pid and Path(f"/proc/{pid}").exists()
            outcomes["group peak"] = group.peak()
            await conn.close()
            await layer.release(group, factory)
            return outcomes
        finally:
            await factory.drop(db.name)

    outcomes = live_runner.call(scenario(), timeout=120)
    print("\none backend past its cap:", outcomes)
    _assert_no_crash(_log_since(mark))
    assert str(cap) in str(outcomes["limit"])
    assert outcomes["one big value"] == "OutOfMemoryError" and outcomes["one big value, then"] == 1
    assert outcomes["work_mem = 2GB"] == "OutOfMemoryError" and outcomes["work_mem = 2GB, then"] == 1
    assert outcomes["same backend"] is True
    assert isinstance(outcomes["group peak"], int) and outcomes["group peak"] < cap + 32 * MIB


def test_a_runs_backends_past_their_group_limit_are_all_stopped_and_nothing_else(
    live_runner: LiveRunner, layer: BackendMemory
) -> None:
    """A 64 MiB group: one backend grows a hash aggregate while another writes WAL; a bystander run is untouched."""
    factory = _factory(live_runner)
    mark = _log_from(live_runner)
    postmaster = live_runner.runtime.server.pid

    async def scenario() -> dict[str, object]:
        bystander_db, db = await factory.create(), await factory.create()
        bystander_group = layer.create(bystander_db.name, 256 * MIB)
        group = layer.create(db.name, SMALL)
        try:
            bystander = await asyncpg.connect(**bystander_db.address.connect_kwargs())
            writer = await asyncpg.connect(**db.address.connect_kwargs())
            grower = await asyncpg.connect(**db.address.connect_kwargs())
            pids = [writer.get_server_pid(), grower.get_server_pid()]
            await writer.execute("CREATE TABLE t AS SELECT g AS x FROM generate_series(1, 100000) g")

            async def write_wal() -> None:
                while True:
                    await writer.execute("BEGIN; DELETE FROM t; ROLLBACK")

            writing = asyncio.create_task(write_wal())
            await grower.execute("SET work_mem = '2GB'")
            before = time.monotonic()
            growing = asyncio.create_task(grower.fetchval(BIG_HASH_AGGREGATE))
            await _until(lambda: group.tripped_at is not None, "the group to pass its limit")
            figures: dict[str, object] = {"tripped after": group.tripped_at - before if group.tripped_at else None}
            outcomes = await asyncio.wait_for(asyncio.gather(writing, growing, return_exceptions=True), 10)
            figures["exits seen"] = time.monotonic() - before
            figures["clients saw"] = sorted(type(outcome).__name__ for outcome in outcomes)
            figures["held at trip"] = group.held_at_trip
            figures["peak usage"] = group.peak()
            figures["under pressure"] = group.under_pressure()
            began = time.monotonic()
            figures["exited"] = await layer.release(group, factory)
            figures["release seconds"] = time.monotonic() - began
            figures["group removed"] = not group.folder.exists()
            figures["pids"] = pids
            figures["bystander"] = await bystander.fetchval("SELECT 1")
            await bystander.close()
            return figures
        finally:
            await layer.release(bystander_group, factory)
            await factory.drop(db.name)
            await factory.drop(bystander_db.name)

    figures = live_runner.call(scenario(), timeout=120)
    overshoot = (int(figures["held at trip"]) - SMALL) / MIB  # type: ignore[call-overload]
    print("\nbackends past their group limit:", figures, f"overshoot when seen {overshoot:.1f} MiB")
    log = _log_since(mark)
    _assert_no_crash(log)
    assert "Cannot allocate memory" not in log
    assert figures["under pressure"] is True and figures["exited"] is True and figures["group removed"] is True
    # the kernel's threshold wakes a thread of the runner: what the backends add meanwhile is the overshoot
    # (allocation rate x its reaction: the 5 ms switch interval of the GIL, and two busy cores)
    assert 0 <= overshoot < SMALL / 2 / MIB, overshoot
    assert figures["bystander"] == 1  # a connection of another run, opened before: no restart happened
    assert live_runner.runtime.server.pid == postmaster and live_runner.runtime.server.process_alive()
    for pid in figures["pids"]:  # type: ignore[attr-defined]
        assert any(
            f"[{pid}]" in line and "FATAL:  terminating connection due to administrator command" in line
            for line in log.splitlines()
        ), f"backend {pid} did not exit normally:\n{log[-3000:]}"


def test_page_cache_charged_to_the_group_does_not_count(live_runner: LiveRunner, layer: BackendMemory) -> None:
    """A database on disk: the pages a backend writes land in the page cache, charged to its group.

    They are the kernel's to reclaim, so they do not count against the run's limit."""
    runtime = live_runner.runtime
    on_disk = DatabaseFactory(runtime.server.admin, runtime.template, "page-cache-test")  # no tablespace: disk

    async def scenario() -> dict[str, object]:
        await on_disk.open()
        db = await on_disk.create()
        group = layer.create(db.name, 16 * MIB)
        try:
            assert not db.in_memory
            conn = await asyncpg.connect(**db.address.connect_kwargs())
            # written through the backend's own ring of buffers: ~70 MiB of new file pages
            await conn.execute(
                "CREATE UNLOGGED TABLE big AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 300000) g"
            )
            figures: dict[str, object] = {"usage": group.usage(), "held": group.held()}
            figures["under pressure"] = group.under_pressure()
            figures["still connected"] = await conn.fetchval("SELECT 1")
            await conn.close()
            await layer.release(group, on_disk)
            return figures
        finally:
            await on_disk.drop(db.name)
            await on_disk.close()

    figures = live_runner.call(scenario(), timeout=120)
    print("\npage cache of a database on disk:", figures)
    assert isinstance(figures["usage"], int) and figures["usage"] > 16 * MIB, figures  # the cache passed the limit
    assert isinstance(figures["held"], int) and figures["held"] < 16 * MIB, figures
    assert figures["under pressure"] is False and figures["still connected"] == 1


def test_the_layer_is_missing_for_an_external_server_and_without_cgroups(live_runner: LiveRunner) -> None:
    from runner.postgres import ExternalServer

    external = ExternalServer("postgresql://postgres:x@127.0.0.1:1/postgres")
    layer, reason = live_runner.call(BackendMemory.open(None, external, "t"))
    assert layer is None and "external" in reason
    server = live_runner.runtime.server
    assert isinstance(server, EmbeddedCluster)
    published = server.data_dir / BACKEND_CGROUPS_FILE
    kept = (published.read_bytes(), published.stat()) if published.exists() else None
    try:
        layer, reason = live_runner.call(BackendMemory.open(None, server, live_runner.runtime.template))
        assert layer is None and "cgroup" in reason
        assert not published.exists()  # logins are left alone, not pointed nowhere
    finally:  # the live runner's own layer goes on: every later test's backends must still join their groups
        if kept is not None:
            published.write_bytes(kept[0])
            os.chown(published, kept[1].st_uid, kept[1].st_gid)


def test_release_of_a_group_whose_backends_are_gone_is_quick(live_runner: LiveRunner, layer: BackendMemory) -> None:
    factory = _factory(live_runner)

    async def scenario() -> tuple[bool, float, bool]:
        db: RunDatabase = await factory.create()
        group: BackendGroup = layer.create(db.name, SMALL)
        try:
            conn = await asyncpg.connect(**db.address.connect_kwargs())
            await conn.close()
            began = time.monotonic()
            exited = await layer.release(group, factory)
            return exited, time.monotonic() - began, group.folder.exists()
        finally:
            await factory.drop(db.name)

    exited, seconds, left = live_runner.call(scenario())
    assert exited and not left
    assert seconds < 1.0, seconds


class CountingTerminator:
    """The factory's `terminate_backends`, counted."""

    def __init__(self, factory: DatabaseFactory) -> None:
        self.factory, self.calls = factory, 0

    async def terminate_backends(self, name: str) -> int:
        self.calls += 1
        return await self.factory.terminate_backends(name)


def test_release_asks_the_server_to_end_sessions_only_while_the_group_has_members(
    live_runner: LiveRunner, layer: BackendMemory
) -> None:
    factory = _factory(live_runner)

    async def release_with(open_session: bool) -> tuple[int, bool]:
        db: RunDatabase = await factory.create()
        group: BackendGroup = layer.create(db.name, SMALL)
        try:
            conn = await asyncpg.connect(**db.address.connect_kwargs())
            if not open_session:
                await conn.close()
                for _ in range(500):
                    if not group.pids():
                        break
                    await asyncio.sleep(0.01)  # polling: a backend's exit sends no event
                else:
                    raise AssertionError("the closed session's backend stayed in the group for 5 s")
            counting = CountingTerminator(factory)
            exited = await layer.release(group, counting)
            if open_session:
                assert await session_ended(conn)
            return counting.calls, exited
        finally:
            await factory.drop(db.name)

    assert live_runner.call(release_with(open_session=True)) == (1, True)
    assert live_runner.call(release_with(open_session=False)) == (0, True)


def test_the_groups_of_a_runner_that_is_gone_are_removed_by_the_next_one(tmp_path: Path) -> None:
    """A runner killed outright leaves `workshop-<pid>` and its runs' groups; the next start removes them."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for name in (f"workshop-{gone.pid}/run-a", f"workshop-{gone.pid}/run-b", f"workshop-{os.getpid()}/run-c"):
        (tmp_path / name).mkdir(parents=True)
    for name in ("workshop-pg-1", "workshop-supervisor", "other"):  # not a runner's own base
        (tmp_path / name).mkdir()
    assert remove_groups_of_gone_runners(tmp_path) == [f"workshop-{gone.pid}"]
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == sorted(
        ["other", "workshop-pg-1", f"workshop-{os.getpid()}", f"workshop-{os.getpid()}/run-c", "workshop-supervisor"]
    )
