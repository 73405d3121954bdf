"""Property-based fuzzing of the HTTP API from its own OpenAPI document: no input gets a 5xx.

Schemathesis generates valid and invalid requests for every operation of
`/api/openapi.json`. A generated run request names a random snippet, so most of
them end in a 404; each one is also sent again naming a real snippet, so the
fuzzed `code` really runs (each such run costs a fraction of a second; the
number of examples is bounded).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from runner.openapi import openapi_schema
from runner.snippets import load_catalogue

from .conftest import LiveRunner

REAL_SNIPPETS = sorted(load_catalogue())
MAX_EXAMPLES = 40


def operations() -> list[tuple[str, str, GenerationMode]]:
    """Every operation with valid requests; those that take input with invalid ones too."""
    found = []
    for path, item in openapi_schema()["paths"].items():
        for method, spec in item.items():
            found.append((path, method.upper(), GenerationMode.POSITIVE))
            if spec.get("requestBody") or spec.get("parameters"):
                found.append((path, method.upper(), GenerationMode.NEGATIVE))
    return found


OPERATIONS = operations()


@pytest.fixture(scope="module")
def api_schema(live_runner: LiveRunner) -> Any:
    """The document the live runner serves (not the local one): what a client really sees."""
    return schemathesis.openapi.from_url(f"{live_runner.url}/api/openapi.json", timeout=30)


def wait_for_a_free_slot(live_runner: LiveRunner) -> None:
    """Runs are admitted two at a time: do not let the fuzzer's pace turn into 429s it did not ask for."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = httpx.get(f"{live_runner.url}/api/health", timeout=10).json()["runs"]
        if runs["running"] == 0 and runs["waiting"] == 0:
            return
        time.sleep(0.05)


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS, ids=[f"{m} {p} {g.value}" for p, m, g in OPERATIONS])
def test_no_request_gets_a_server_error(
    live_runner: LiveRunner, api_schema: Any, path: str, method: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case: Any) -> None:
        wait_for_a_free_slot(live_runner)
        statuses.append(check(case))
        body = case.body
        if method == "POST" and isinstance(body, dict) and isinstance(body.get("snippet"), str):
            snippet = REAL_SNIPPETS[len(body["snippet"]) % len(REAL_SNIPPETS)]
            # the same request naming a snippet that exists: the fuzzed code really runs
            real = operation.Case(body={**body, "snippet": snippet}, media_type=case.media_type, headers=case.headers)
            statuses.append(check(real))

    statuses: list[int] = []
    no_server_error()
    if method == "POST":  # the fuzzer did reach the runs it was meant to start, or to refuse
        assert (200 if mode is GenerationMode.POSITIVE else 400) in statuses, sorted(set(statuses))


def check(case: Any) -> int:
    response = case.call(timeout=60)
    assert response.status_code < 500, (
        f"{case.method} {case.path} {case.body!r:.300}: {response.status_code} {response.text[:500]}"
    )
    case.validate_response(response, checks=[not_a_server_error])
    return int(response.status_code)
