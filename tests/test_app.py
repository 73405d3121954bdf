"""The HTTP API: shapes, streaming, and a JSON 4xx/5xx for every kind of bad request."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from runner.app import create_app
from runner.runtime import Runtime
from runner.snippets import load_catalogue

from .conftest import LiveRunner, runner_settings

SNIPPET = "chapter_05/03_pool"


def post(live_runner: LiveRunner, content: bytes | str, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(
        f"{live_runner.url}/api/runs", content=content, headers={"content-type": content_type}, timeout=60
    )


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_summary_has_the_documented_shape(live_runner: LiveRunner) -> None:
    summary = live_runner.run(SNIPPET).json()
    assert set(summary) >= {"id", "snippet", "status", "exit_code", "output", "timings", "duration", "truncated"}
    assert summary["snippet"] == SNIPPET
    assert set(summary["duration"]) == {"queue", "setup", "run", "total"}
    assert summary["duration"]["total"] >= summary["duration"]["run"] > 0


def test_streaming_sends_output_before_the_run_finishes(live_runner: LiveRunner) -> None:
    code = "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')\n"
    arrivals: list[tuple[float, dict[str, Any]]] = []
    with live_runner.stream(SNIPPET, code) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        for line in response.iter_lines():
            arrivals.append((time.monotonic(), json.loads(line)))
    kinds = [event["event"] for _, event in arrivals]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    first = next(t for t, e in arrivals if e["event"] == "output" and "first" in e["text"])
    finished = arrivals[-1][0]
    assert finished - first > 1.0, "the first line should arrive while the sample is still sleeping"
    assert arrivals[-1][1]["status"] == "ok"


def test_a_client_that_goes_away_gets_its_run_killed(live_runner: LiveRunner) -> None:
    code = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
    cancelled_before = live_runner.runs_finished("cancelled")
    with live_runner.stream(SNIPPET, code) as response:
        for line in response.iter_lines():
            if "started" in line and "output" in line:
                break
    deadline = time.monotonic() + 10
    while live_runner.runtime.service and live_runner.runtime.service.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_runner.runtime.service is not None
    assert live_runner.runtime.service.running == 0
    assert live_runner.runs_finished("cancelled") == cancelled_before + 1


def test_snippets_lists_every_sample_with_its_hash(live_runner: LiveRunner) -> None:
    snippets = httpx.get(f"{live_runner.url}/api/snippets").json()["snippets"]
    by_id = {s["id"]: s for s in snippets}
    catalogue = load_catalogue()
    assert set(by_id) == set(catalogue)
    assert by_id[SNIPPET]["path"] == "code/chapter_05/03_pool.py"
    assert by_id[SNIPPET]["sha256"] == catalogue[SNIPPET].sha256


def test_health_reports_postgres_pool_and_isolation(live_runner: LiveRunner) -> None:
    health = httpx.get(f"{live_runner.url}/api/health").json()
    assert health["status"] in {"ready", "degraded"}
    assert all(not cause["blocking"] for cause in health["causes"]), health["causes"]
    assert health["postgres"] == {"kind": "embedded", "healthy": True}
    assert {"ready", "busy", "size"} <= set(health["pool"])
    assert health["isolation"]["layers"]


def test_openapi_describes_every_route(live_runner: LiveRunner) -> None:
    schema = httpx.get(f"{live_runner.url}/api/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    app = create_app(runner_settings(), runtime=live_runner.runtime)
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and "{" not in route.path
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert {(path, method) for path, item in schema["paths"].items() for method in item} == served
    documented = set(schema["paths"]["/api/runs"]["post"]["responses"])
    assert documented == {"200", "400", "403", "404", "413", "415", "429", "503"}


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe{}", "bad_encoding"),
        (b"[]", "bad_request"),
        (b"{}", "bad_request"),
        (b'{"snippet": 3}', "bad_request"),
        (b'{"snippet": ""}', "bad_request"),
        (b'{"snippet": "chapter_05/03_pool", "code": 1}', "bad_request"),
        (b'{"snippet": "chapter_05/03_pool", "extra": 1}', "bad_request"),
        (b'{"snippet": "chapter_05/03_pool", "code": "print(1)\\u0000"}', "bad_request"),
        (b'{"snippet": "chapter_05/03_pool", "code": "\\ud800"}', "bad_request"),
        (b'{"snippet": "' + b"x" * 500 + b'"}', "bad_request"),
    ],
)
def test_bad_requests_get_400(live_runner: LiveRunner, content: bytes, error: str) -> None:
    assert_error(post(live_runner, content), 400, error)


def test_unknown_snippet_gets_404(live_runner: LiveRunner) -> None:
    assert_error(live_runner.run("chapter_05/nope"), 404, "unknown_snippet")


def test_unknown_api_route_and_wrong_method_get_json(live_runner: LiveRunner) -> None:
    assert_error(httpx.get(f"{live_runner.url}/api/nothing"), 404, "not_found")
    assert_error(httpx.get(f"{live_runner.url}/api/runs"), 405, "method_not_allowed")


def test_a_body_too_large_gets_413(live_runner: LiveRunner) -> None:
    big = json.dumps({"snippet": SNIPPET, "code": "#" * (live_runner.settings.max_body + 1)})
    assert_error(post(live_runner, big), 413, "too_large")


def test_a_body_that_is_not_json_gets_415(live_runner: LiveRunner) -> None:
    assert_error(post(live_runner, "snippet=x", "application/x-www-form-urlencoded"), 415, "unsupported_media_type")
    assert_error(post(live_runner, '{"snippet": "x"}', "text/plain"), 415, "unsupported_media_type")


@pytest.mark.anyio
async def test_edited_code_is_refused_with_403_when_editing_is_off(live_runner: LiveRunner) -> None:
    app = create_app(runner_settings(allow_edits=False), runtime=live_runner.runtime)  # no lifespan: shares it
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://runner") as client:
        response = await client.post("/api/runs", json={"snippet": SNIPPET, "code": "print('edited')"})
    assert_error(response, 403, "editing_disabled")


def test_a_full_queue_gets_429_with_retry_after(live_runner: LiveRunner) -> None:
    code = "import time\ntime.sleep(2)\n"
    capacity = live_runner.settings.max_concurrent_runs + live_runner.settings.max_queue
    responses: list[httpx.Response] = []

    def one() -> None:
        responses.append(live_runner.run(SNIPPET, code=code))

    threads = [threading.Thread(target=one) for _ in range(capacity + 3)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join(60)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= capacity
    busy = [r for r in responses if r.status_code == 429]
    assert busy, statuses
    for response in busy:
        assert_error(response, 429, "busy")
        assert int(response.headers["retry-after"]) >= 1


def test_postgres_down_gets_503_and_the_runner_recovers(
    live_runner: LiveRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = live_runner.runtime.server
    pid = getattr(server, "pid", None)
    assert pid, "the tests run against the embedded cluster"
    # the watchdog restarts the server within a second or so: held back until the run below has been answered
    answered = threading.Event()
    restart = server.restart_if_down

    async def restart_once_allowed() -> bool:
        return await restart() if answered.is_set() else False

    monkeypatch.setattr(server, "restart_if_down", restart_once_allowed)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.process_alive() and time.monotonic() < deadline:  # the runner notices the exit
        time.sleep(0.05)
    response = live_runner.run(SNIPPET)
    answered.set()
    assert_error(response, 503, "database_unavailable")
    assert response.headers["retry-after"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if httpx.get(f"{live_runner.url}/api/health").status_code == 200:
            break
        time.sleep(0.2)
    assert live_runner.run(SNIPPET).json()["status"] == "ok"


@pytest.mark.anyio
async def test_public_mode_with_no_edits_refuses_them_and_limits_each_client(live_runner: LiveRunner) -> None:
    app = create_app(runner_settings(public=True, rate_limit=2, allow_edits=False), runtime=live_runner.runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://runner") as client:
        edited = await client.post("/api/runs", json={"snippet": SNIPPET, "code": "print('edited')"})
        assert_error(edited, 403, "editing_disabled")
        second = await client.post("/api/runs", json={"snippet": "chapter_05/unknown"})
        assert_error(second, 404, "unknown_snippet")
        third = await client.post("/api/runs", json={"snippet": "chapter_05/unknown"})
        body = assert_error(third, 429, "rate_limited")
        assert "retry" in body["detail"]
        assert int(third.headers["retry-after"]) >= 1


@pytest.mark.anyio
async def test_cors_allows_the_listed_origins_only(live_runner: LiveRunner) -> None:
    app = create_app(runner_settings(cors_origins=("https://course.example",)), runtime=live_runner.runtime)
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://runner") as client:
        allowed = await client.options("/api/runs", headers={"origin": "https://course.example", **preflight})
        refused = await client.options("/api/runs", headers={"origin": "https://elsewhere.example", **preflight})
        listing = await client.get("/api/snippets", headers={"origin": "https://course.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://course.example"
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert listing.headers["access-control-allow-origin"] == "https://course.example"


def test_public_mode_accepts_edits_exactly_when_every_layer_is_in_force(live_runner: LiveRunner) -> None:
    public = runner_settings(public=True)
    assert live_runner.runtime.missing_layers() == [], "this machine is expected to have every layer"
    assert live_runner.runtime.editing_enabled(public)
    assert not live_runner.runtime.editing_enabled(runner_settings(public=True, allow_edits=False))
    weak = Runtime(public)  # not started: the plain launcher and no cgroups
    assert "cgroups" in weak.missing_layers() and "pid-namespace" in weak.missing_layers()
    assert not weak.editing_enabled()
    assert weak.editing_enabled(runner_settings(public=False))
