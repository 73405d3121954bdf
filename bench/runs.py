"""One `POST /api/runs` as a client sees it: the latency it waited and the summary it got.

Kept separate from the measurements so the sequential, concurrent and fidelity
benchmarks judge success the same way: HTTP 200 and a summary with status "ok".
A 429 is "busy", not an error: it is the runner's admission control working.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from runner.percentile import percentile

from .stats import median

HI_CODE = 'print("hi")'
POOL_SNIPPET = "chapter_05/03_pool"
COMPARISON_SNIPPET = "chapter_05/04_pool_vs_sequential"


def run_body(snippet: str, code: str | None = None) -> dict[str, str]:
    body = {"snippet": snippet}
    if code is not None:
        body["code"] = code
    return body


@dataclass
class RunResult:
    latency: float
    """Client-side seconds from sending the request to having read the whole answer."""
    http_status: int
    """0 when the request failed below HTTP (connection refused, reset, timeout)."""
    status: str | None = None
    duration: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    retry_after: float | None = None
    detail: str = ""
    places: list[int] = field(default_factory=list)
    """Places in line the runner streamed while the run waited (`queued` events)."""

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and self.status == "ok"

    @property
    def busy(self) -> bool:
        return self.http_status == 429

    @property
    def error(self) -> bool:
        return not self.ok and not self.busy


def interpret(response: httpx.Response, latency: float) -> RunResult:
    result = RunResult(latency, response.status_code)
    try:
        body: Any = response.json()
    except ValueError:
        result.detail = response.text[:200]
        return result
    if response.status_code == 429:
        retry = response.headers.get("retry-after", "1")
        result.retry_after = float(retry) if retry.replace(".", "", 1).isdigit() else 1.0
    if not isinstance(body, dict):
        return result
    result.status = body.get("status")
    result.duration = {key: float(value) for key, value in (body.get("duration") or {}).items()}
    for event in body.get("timings") or []:
        result.timings[str(event.get("name"))] = float(event.get("seconds", 0.0))
    if not result.ok:
        output = "".join(event.get("text", "") for event in body.get("output") or [])
        result.detail = str(body.get("detail") or body.get("reason") or output[-300:] or body)[:300]
    return result


def post_run(client: httpx.Client, body: dict[str, str]) -> RunResult:
    began = time.perf_counter()
    try:
        response = client.post("/api/runs", json=body)
    except httpx.HTTPError as error:
        return RunResult(time.perf_counter() - began, 0, detail=f"{type(error).__name__}: {error}")
    return interpret(response, time.perf_counter() - began)


async def post_run_async(client: httpx.AsyncClient, body: dict[str, str]) -> RunResult:
    began = time.perf_counter()
    try:
        response = await client.post("/api/runs", json=body)
    except httpx.HTTPError as error:
        return RunResult(time.perf_counter() - began, 0, detail=f"{type(error).__name__}: {error}")
    return interpret(response, time.perf_counter() - began)


async def stream_run_async(client: httpx.AsyncClient, body: dict[str, str]) -> RunResult:
    """As the widget asks: streamed events, the summary from `finished`; `queued` events are counted."""
    began = time.perf_counter()
    places: list[int] = []
    try:
        async with client.stream("POST", "/api/runs", json=body, headers={"accept": "application/x-ndjson"}) as answer:
            if answer.status_code != 200:
                await answer.aread()
                return interpret(answer, time.perf_counter() - began)
            finished: dict[str, Any] | None = None
            async for line in answer.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("event") == "queued":
                    places.append(int(event["position"]))
                elif event.get("event") == "finished":
                    finished = event
    except (httpx.HTTPError, ValueError) as error:
        return RunResult(time.perf_counter() - began, 0, detail=f"{type(error).__name__}: {error}")
    latency = time.perf_counter() - began
    if finished is None:
        return RunResult(latency, 200, detail="the stream ended without a finished event", places=places)
    result = RunResult(latency, 200, finished.get("status"), places=places)
    result.duration = {key: float(value) for key, value in (finished.get("duration") or {}).items()}
    if not result.ok:
        result.detail = str(finished.get("reason") or finished)[:300]
    return result


class RunFigures:
    """The figures every benchmark reports from its results (a mixin: subclasses hold `results`)."""

    results: list[RunResult]

    @property
    def latencies(self) -> list[float]:
        return [r.latency for r in self.results if r.ok]

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.5)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 0.95)

    def server_median(self, phase: str) -> float:
        """Median of one phase of the runner's own breakdown (queue, setup, run, total)."""
        return median([r.duration[phase] for r in self.results if r.ok and phase in r.duration])

    def first_error(self) -> str:
        failed = next((r for r in self.results if r.error), None)
        return "" if failed is None else f"HTTP {failed.http_status} {failed.status}: {failed.detail}"
