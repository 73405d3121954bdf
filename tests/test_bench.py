"""`python -m bench --quick` runs end to end: behaviour only, never speed (figures vary by machine)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.report import HEADINGS
from runner.settings import REPO_ROOT

from .conftest import TEST_CACHE

BENCH_TEST_CACHE = TEST_CACHE / "bench"
"""Its own cache (kept between sessions, one per checkout like the rest of the test cache), so the test
never waits on a real `make bench` nor on another checkout's suite."""


@pytest.mark.timeout(600)
def test_quick_bench_runs_every_section() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--cache-dir", str(BENCH_TEST_CACHE)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    for heading in HEADINGS:
        assert heading in completed.stdout, completed.stdout
