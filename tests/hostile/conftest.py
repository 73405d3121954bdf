"""Each attack starts against a healthy runner, so one test's damage is not blamed on the next."""

from __future__ import annotations

import time

import httpx
import pytest

from ..conftest import LiveRunner


@pytest.fixture(autouse=True)
def healthy_runner(live_runner: LiveRunner) -> LiveRunner:
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(f"{live_runner.url}/api/health", timeout=10)
        if response.status_code == 200:
            return live_runner
        if time.monotonic() > deadline:
            pytest.fail(f"the runner did not recover from the previous test within 30 s: {response.text}")
        time.sleep(0.2)
