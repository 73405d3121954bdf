"""Property-based fuzzing of the HTTP API from its own OpenAPI document: answers conform, none is a 5xx.

Schemathesis generates valid and invalid requests for every operation of
`/api/openapi.json` and checks each answer against the document: its status
is documented, its content type is the documented one, its body validates
against the schema generated from `runner/models.py` (a streamed run line by
line), and its documented headers are there. A generated run request names a
random snippet, so most of them end in a 404; each one is also sent again
naming a real snippet, alternately as JSON and as a stream, so the fuzzed
`code` really runs (each such run costs a fraction of a second; the number
of examples is bounded).
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.modes import GenerationMode

from runner.openapi import openapi_schema
from runner.snippets import load_catalogue

from .conftest import LiveRunner

# Where the fuzzed code is sent again: every sample but the one whose published code sends 20,000 queries
# (seconds of work when a generated request leaves `code` out); a shortened copy of it runs below.
POOL_VS_SEQUENTIAL = "chapter_05/04_pool_vs_sequential"
REAL_SNIPPETS = sorted(s for s in load_catalogue() if not s.endswith(POOL_VS_SEQUENTIAL))
MAX_EXAMPLES = 40
JSON, NDJSON = "application/json", "application/x-ndjson"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@schemathesis.deserializer(NDJSON)
def ndjson_lines(ctx: Any, response: Any) -> list[Any]:
    """A streamed run as the array its `schema` describes: one event a line (each an `itemSchema`)."""
    return [json.loads(line) for line in response.content.decode("utf-8").splitlines() if line.strip()]


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


@pytest.fixture(scope="module")
def local_schema() -> Any:
    return schemathesis.openapi.from_dict(openapi_schema())


def wait_for_a_free_slot(live_runner: LiveRunner) -> None:
    """Runs are admitted two at a time: do not let the fuzzer's pace turn into 429s it did not ask for."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = httpx.get(f"{live_runner.url}/api/health", timeout=10).json()["runs"]
        if runs["running"] == 0 and runs["waiting"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the runner still had runs in flight after 30 s: {runs}")


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS, ids=[f"{m} {p} {g.value}" for p, m, g in OPERATIONS])
def test_every_answer_conforms_to_the_schema(
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
    def conforms(case: Any) -> None:
        wait_for_a_free_slot(live_runner)
        answers.append(check(case))
        body = case.body
        if method == "POST" and isinstance(body, dict) and isinstance(body.get("snippet"), str):
            snippet = REAL_SNIPPETS[len(body["snippet"]) % len(REAL_SNIPPETS)]
            accept = (JSON, NDJSON)[len(resent) % 2]
            resent.append(snippet)
            # the same request naming a snippet that exists: the fuzzed code really runs
            real = operation.Case(
                body={**body, "snippet": snippet},
                media_type=case.media_type,
                headers={**(case.headers or {}), "Accept": accept},
            )
            answers.append(check(real))

    answers: list[tuple[int, str]] = []
    resent: list[str] = []
    conforms()
    statuses = {status for status, _ in answers}
    if method == "POST":  # the fuzzer did reach the runs it was meant to start, or to refuse
        assert (200 if mode is GenerationMode.POSITIVE else 400) in statuses, sorted(statuses)
    if method == "POST" and mode is GenerationMode.POSITIVE:  # both kinds of answer were checked
        assert {(200, JSON), (200, NDJSON)} <= set(answers), sorted(set(answers))


@pytest.mark.parametrize("accept", [JSON, NDJSON])
def test_a_run_with_queries_and_timings_conforms(live_runner: LiveRunner, api_schema: Any, accept: str) -> None:
    """A sample that fills every part of the answer (timings, the queries' timeline) that fuzzed code does not."""
    code = load_catalogue()[POOL_VS_SEQUENTIAL].code
    assert code.count("10_000") == 2, "the sample changed: shorten it some other way"
    body = {"snippet": POOL_VS_SEQUENTIAL, "code": code.replace("10_000", "50")}
    operation = api_schema["/api/runs"]["POST"]
    case = operation.Case(body=body, media_type=JSON, headers={"Accept": accept})
    wait_for_a_free_slot(live_runner)
    response = case.call(timeout=60)
    case.validate_response(response, checks=CHECKS)
    lines = ndjson_lines(None, response) if accept == NDJSON else [response.json()]
    assert any(line.get("queries") or line.get("event") == "queries" for line in lines), response.text[:500]
    assert any(line.get("timings") or line.get("event") == "timing" for line in lines), response.text[:500]


STARTED = {"event": "started", "id": "a1", "snippet": "s"}
DURATION = {"queue": 0.0, "setup": 0.1, "run": 0.2, "total": 0.3}
RESULT = {"id": "a1", "snippet": "s", "edited": False, "status": "ok", "exit_code": 0, "reason": None}
LATER = {"resources": None, "changes": None, "check": None, "network": {"round_trip_ms": 0}}
FINISHED = {"event": "finished", **RESULT, "truncated": False, "duration": DURATION, **LATER}
SUMMARY = {**RESULT, "truncated": False, "duration": DURATION, **LATER, "output": [], "timings": [], "queries": None}


def answer(status: int, content_type: str, *documents: dict[str, Any]) -> httpx.Response:
    content = json.dumps(documents[0]) if content_type == JSON else "".join(json.dumps(d) + "\n" for d in documents)
    response = httpx.Response(
        status,
        headers={"content-type": content_type},
        content=content.encode(),
        request=httpx.Request("POST", "http://runner/api/runs"),
    )
    response.elapsed = datetime.timedelta(0)
    return response


@pytest.mark.parametrize(
    "response",
    [
        answer(200, NDJSON, STARTED, {"event": "debug", "text": "x"}, FINISHED),
        answer(200, NDJSON, STARTED, {"event": "output", "stream": "stdout", "text": "x"}, FINISHED),
        answer(200, NDJSON, STARTED, {**FINISHED, "status": "crashed"}),
        answer(200, JSON, {**SUMMARY, "extra": 1}),
        answer(200, JSON, {k: v for k, v in SUMMARY.items() if k != "queries"}),
        answer(200, "text/html", SUMMARY),
        answer(418, JSON, {"error": "teapot", "detail": "x"}),
        answer(400, JSON, {"error": "bad_request"}),
    ],
    ids=[
        "unknown event",
        "event missing a field",
        "unknown status",
        "extra field",
        "missing field",
        "undocumented type",
        "undocumented status",
        "error without detail",
    ],
)
def test_the_checks_refuse_an_answer_that_does_not_conform(local_schema: Any, response: httpx.Response) -> None:
    """The checks above can fail: answers the runner must never give, checked against the local document."""
    operation = local_schema["/api/runs"]["POST"]
    case = operation.Case(body={"snippet": "s"}, media_type=JSON)
    case.validate_response(answer(200, NDJSON, STARTED, FINISHED), checks=CHECKS)
    case.validate_response(answer(200, JSON, SUMMARY), checks=CHECKS)
    with pytest.raises((AssertionError, BaseExceptionGroup)):
        case.validate_response(response, checks=CHECKS)


def check(case: Any) -> tuple[int, str]:
    response = case.call(timeout=60)
    assert response.status_code < 500, (
        f"{case.method} {case.path} {case.body!r:.300}: {response.status_code} {response.text[:500]}"
    )
    case.validate_response(response, checks=CHECKS)
    return int(response.status_code), response.headers.get("content-type", [""])[0].split(";")[0]
