"""Fixtures for the browser suite: a built site, a real runner serving it, and Chromium.

The session builds the site once (`mkdocs build --strict`), starts
`python -m runner serve` on a free port with `WORKSHOP_SITE_DIR` pointing at
that build, and drives the system Chromium through Playwright. Every page
blocks requests to any host but this machine, and records them: the site must
work offline.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bench.processes import free_port, stop_process

from ..conftest import TEST_CACHE

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def chromium_path() -> str | None:
    for candidate in (os.environ.get("WORKSHOP_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def serving_runner(site: Path, cache: Path, log: Path) -> Iterator[str]:
    """A real `python -m runner serve` of `site` at / and the API at /api, stopped at the end."""
    port = free_port()
    # its own cluster folder, so a `make serve` running on this machine does not hold its lock
    env = {**os.environ, "WORKSHOP_SITE_DIR": str(site), "WORKSHOP_CACHE_DIR": str(cache)}
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        # The first start may have to create and seed the embedded cluster.
        wait_for(f"{base}/api/health", proc, log, timeout=240)
        yield base
    finally:
        stop_process(proc)


@pytest.fixture(scope="package")
def runner_url(built_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real runner serving the built site at / and the API at /api."""
    log = tmp_path_factory.mktemp("runner-log") / "runner.log"
    with serving_runner(built_site, TEST_CACHE / "browser", log) as base:
        yield base


@pytest.fixture(scope="package")
def static_url(built_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same pages from a plain static server: there is no runner behind them."""
    port = free_port()
    log = tmp_path_factory.mktemp("static-log") / "static.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(built_site)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/index.html", proc, log, timeout=30)
        yield base
    finally:
        stop_process(proc)


# package scope: Playwright's sync API keeps an event loop running in this thread until it
# stops, which would break every later test that calls asyncio.run()
@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        message = "no Chromium found (install Debian's `chromium` or set WORKSHOP_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message + ": CI must run the browser tests")  # .ci/run installs it
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${where}`);
});
"""
"""Records every Content-Security-Policy violation of a page: the site must work under the runner's CSP."""


class Offline:
    """Requests that tried to leave this machine (they are aborted)."""

    def __init__(self) -> None:
        self.blocked: list[str] = []


@pytest.fixture
def offline() -> Offline:
    return Offline()


@pytest.fixture
def page(browser: object, offline: Offline, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page (light scheme, desktop size unless parametrised) that never reaches the network."""
    from playwright.sync_api import Browser, Route, expect

    assert isinstance(browser, Browser)
    options = getattr(request, "param", {}) or {}
    context = browser.new_context(
        viewport=options.get("viewport", {"width": 1280, "height": 900}),
        color_scheme=options.get("color_scheme", "light"),
    )

    def gate(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            offline.blocked.append(route.request.url)
            route.abort()

    context.route("**/*", gate)
    context.add_init_script(CSP_LISTENER)
    expect.set_options(timeout=30_000)
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    yield page
    try:
        if not page.is_closed():
            refused += page.evaluate("() => window.__cspViolations || []")
    finally:
        context.close()
    assert refused == [], f"the page broke its Content-Security-Policy: {refused}"


@pytest.fixture(scope="package")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
