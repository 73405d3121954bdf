"""`python -m runner db`: the seeded Postgres learners run the `code/` scripts against."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bench.processes import free_port, stop_process
from runner.settings import REPO_ROOT

from .conftest import start_learner_db, wait_until_serving


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as postgres does: TIME_WAIT is not "taken"
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def learner_db() -> Iterator[int]:
    port = 5432 if _port_free(5432) else free_port()
    process = start_learner_db(port)
    wait_until_serving(process)
    yield port
    assert stop_process(process) == 0, "SIGTERM stops it cleanly"


def test_it_serves_the_seeded_products_database(learner_db: int) -> None:
    async def counts() -> tuple[int, int]:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=learner_db, user="postgres", password="password", database="products"
        )
        try:
            return await conn.fetchval("SELECT count(*) FROM sku"), await conn.fetchval("SELECT count(*) FROM brand")
        finally:
            await conn.close()

    assert asyncio.run(counts()) == (100_000, 100)


def test_a_wrong_password_is_refused(learner_db: int) -> None:
    async def attempt() -> None:
        await asyncpg.connect(host="127.0.0.1", port=learner_db, user="postgres", password="nope", database="products")

    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(attempt())


def test_a_taken_port_gives_a_clear_error(learner_db: int) -> None:
    second = start_learner_db(learner_db, cache="learner-second")
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 1
    assert f"127.0.0.1:{learner_db} is already in use" in out
    assert "Traceback" not in out


def test_a_sample_runs_as_the_chapter_shows(learner_db: int) -> None:
    if learner_db != 5432:
        pytest.skip("port 5432 is taken on this machine; the samples connect to it literally")
    result = subprocess.run(
        [sys.executable, "-m", "code.chapter_05.03_pool"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    expected = (Path(REPO_ROOT) / "code/chapter_05/03_pool.out").read_text()
    assert result.stdout == expected


def check_at_home(learner_db: int, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m runner check ...` against the learner database, as a learner runs it after `make db`."""
    url = f"postgresql://postgres:password@127.0.0.1:{learner_db}/postgres"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKSHOP_")}
    env["WORKSHOP_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "runner", "check", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_exercise_is_judged_at_home_as_on_the_site(learner_db: int, tmp_path: Path) -> None:
    solved = check_at_home(learner_db, "chapter_05/ex04_pool_lookups", "--solution")
    assert solved.returncode == 0, solved.stdout + solved.stderr
    assert solved.stdout.splitlines()[-1].startswith("Solved: "), solved.stdout
    assert "Solved: Solved" not in solved.stdout
    assert "product 1: " in solved.stdout  # the program's own output comes first
    mine = tmp_path / "my_try.py"
    mine.write_text((Path(REPO_ROOT) / "code/chapter_05/ex04_pool_lookups.py").read_text())
    not_yet = check_at_home(learner_db, "chapter_05/ex04_pool_lookups", str(mine))
    assert not_yet.returncode == 1, not_yet.stdout + not_yet.stderr
    assert not_yet.stdout.splitlines()[-1].startswith("Not yet: "), not_yet.stdout
    assert "Traceback" not in not_yet.stderr


def test_a_wrong_exercise_name_at_home_lists_the_exercises(learner_db: int) -> None:
    wrong = check_at_home(learner_db, "chapter_05/ex99_nothing")
    assert wrong.returncode == 2
    assert "'chapter_05/ex99_nothing' is not an exercise; the exercises are: chapter_05/ex01_" in wrong.stdout
