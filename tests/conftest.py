"""A real runner for the tests: embedded Postgres, real sandboxes, a real HTTP server on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from bench.processes import free_port
from runner.app import create_app
from runner.runtime import Runtime
from runner.settings import REPO_ROOT, Settings

TEST_CACHE = Path(os.environ.get("WORKSHOP_TEST_CACHE") or Path(tempfile.gettempdir()) / "workshop-test-cache")
"""Kept between test sessions so the cluster is initialised and seeded once per machine
(`WORKSHOP_TEST_CACHE` gives each checkout its own, so two suites can run side by side)."""


def start_learner_db(port: int, cache: str = "learner") -> subprocess.Popen[str]:
    """`python -m runner db --port PORT`, its data kept under the test cache."""
    env = {**os.environ, "WORKSHOP_CACHE_DIR": str(TEST_CACHE / cache)}
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "db", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until_serving(process: subprocess.Popen[str]) -> None:
    """Read the learner database's output until it says it is ready (or it exits)."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "ready on" in line:
            return
    raise AssertionError("runner db did not start:\n" + "".join(lines))


def runner_settings(**overrides: Any) -> Settings:
    defaults: dict[str, Any] = {
        "cache_dir": TEST_CACHE,
        "run_timeout": 12.0,
        "max_concurrent_runs": 2,
        "max_queue": 2,
        "instance": "pytest",
    }
    defaults.update(overrides)
    return Settings.from_env({}, **defaults)


@dataclass
class LiveRunner:
    """A runner serving on a thread of its own; `call` runs a coroutine on its event loop."""

    url: str
    runtime: Runtime
    loop: asyncio.AbstractEventLoop
    settings: Settings

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @contextlib.contextmanager
    def stream(self, snippet: str, code: str | None = None) -> Iterator[httpx.Response]:
        """A run requested as NDJSON, its response still streaming."""
        body = {"snippet": snippet} if code is None else {"snippet": snippet, "code": code}
        with httpx.stream(
            "POST", f"{self.url}/api/runs", json=body, headers={"accept": "application/x-ndjson"}, timeout=60
        ) as response:
            yield response

    def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """Every sample of `/metrics`, by name, then by its labels (sorted pairs)."""
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
        return samples

    def runs_finished(self, status: str) -> float:
        """Runs that ended with `status` so far, as `/metrics` counts them."""
        return self.metrics().get("workshop_runs_total", {}).get((("status", status),), 0.0)

    def run(self, snippet: str, code: str | None = None, **kwargs: Any) -> httpx.Response:
        body: dict[str, Any] = {"snippet": snippet}
        if code is not None:
            body["code"] = code
        return httpx.post(f"{self.url}/api/runs", json=body, timeout=60, **kwargs)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built once per session with `mkdocs build --strict`, for the docs and browser tests."""
    out = tmp_path_factory.mktemp("built-site") / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.fixture(scope="session")
def zensical_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same mkdocs.yml built by Zensical (`make site-zensical`), in a copy of the repository.

    A copy, because Zensical keeps a build cache (.cache/) in the folder it builds.
    """
    from .repo_copy import copy_repo, environment

    repo = copy_repo(tmp_path_factory.mktemp("zensical") / "repo")
    out = repo / "site-zensical"
    result = subprocess.run(
        [sys.executable, "-m", "zensical", "build", "--clean", "-f", "mkdocs.yml"],
        cwd=repo,
        env=environment(repo, WORKSHOP_BUILD_DIR=str(out)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"zensical build failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def live_runner() -> Iterator[LiveRunner]:
    settings = runner_settings()
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        holder["loop"] = loop
        loop.run_until_complete(server.serve())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test runner did not start")
        time.sleep(0.05)
    yield LiveRunner(f"http://127.0.0.1:{port}", app.state.runtime, holder["loop"], settings)
    server.should_exit = True
    thread.join(30)


async def session_ended(conn: asyncpg.Connection) -> bool:
    """Whether the server ended `conn`'s session: it is closed, or it no longer answers."""
    if conn.is_closed():
        return True
    try:
        await conn.fetchval("SELECT 1", timeout=5)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return True
    return False


def output_text(summary: dict[str, Any]) -> str:
    return "".join(event["text"] for event in summary["output"])
