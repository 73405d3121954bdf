"""The HTTP API (and the built site at `/`), as a Starlette application.

Every error is JSON `{"error": code, "detail": text}`: the exception tree of
`runner/errors.py` maps to it in one handler, routing's 404 and 405 in another.
Bad input is a 4xx; a 500 would mean a bug in the runner, never in the request.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import __version__, errors
from .admission import Ticket
from .capacity import derive_slots
from .headers import SecurityHeaders
from .health import Part, assess, http_status
from .metrics import CONTENT_TYPE, Metrics
from .models import (
    ClientShare,
    CloneSpaceHealth,
    DatabaseBounds,
    Duration,
    ErrorBody,
    FinishedEvent,
    Health,
    HealthCause,
    IsolationHealth,
    PoolHealth,
    PostgresHealth,
    RunLimits,
    RunRequest,
    RunsHealth,
    SnippetInfo,
    SnippetList,
    explain,
)
from .openapi import openapi_schema
from .ratelimit import RateLimiter, retry_after_header
from .runs import Run, RunService, collect
from .runtime import Runtime
from .settings import Settings

log = logging.getLogger("runner.app")
JSON = "application/json"
NDJSON = "application/x-ndjson"


def to_json(value: BaseModel | Mapping[str, Any]) -> str:
    """One JSON document from a model (or a mapping with the same fields)."""
    return value.model_dump_json() if isinstance(value, BaseModel) else json.dumps(value)


def json_response(
    value: BaseModel | Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(to_json(value), status, headers, media_type=JSON)


def error_response(status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(ErrorBody(error=error, detail=detail), status, headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise errors.TooLarge(f"the request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise errors.TooLarge(f"the request body is larger than {limit} bytes")
    return bytes(body)


def parse_run_request(body: bytes) -> RunRequest:
    """The body as a RunRequest, or a BadRequest whose detail says what to change."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise errors.BadRequest("the body must be UTF-8 encoded JSON", "bad_encoding") from None
    except ValueError as error:
        raise errors.BadRequest(f"the body is not valid JSON: {error}", "bad_json") from None
    except RecursionError:
        raise errors.BadRequest("the body is not valid JSON: nested too deeply", "bad_json") from None
    if not isinstance(data, dict):
        raise errors.BadRequest("the body must be a JSON object")
    try:
        return RunRequest.model_validate(data)
    except ValidationError as error:
        raise errors.BadRequest(explain(error)) from None


async def workshop_error(request: Request, exc: Exception) -> Response:
    """The one mapping of the exception tree to the JSON envelope."""
    assert isinstance(exc, errors.WorkshopError)
    return error_response(exc.status, exc.code, exc.detail, exc.headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing's own refusals (no such route, wrong method), in the same envelope."""
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, error, str(exc.detail), exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "the runner hit an unexpected error; see its log")


class RunResponse(StreamingResponse):
    """Streams a run's events; whatever happens to the connection, the run is closed."""

    def __init__(self, run: Run, headers: Mapping[str, str] | None = None) -> None:
        self.run = run
        super().__init__(
            self._lines(),
            media_type=NDJSON,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})},
        )

    async def _lines(self) -> AsyncIterator[str]:
        async for event in self.run.events():
            yield to_json(event) + "\n"

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.run.close()
            self.run.answered.set()


@dataclass(frozen=True)
class Pending:
    """What is known of a run still waiting in line: enough for its `finished` event if it cannot start."""

    id: str
    snippet: str
    edited: bool
    queued_at: float

    def failed(self, detail: str) -> FinishedEvent:
        waited = round(time.perf_counter() - self.queued_at, 4)
        return FinishedEvent(
            id=self.id,
            snippet=self.snippet,
            edited=self.edited,
            status="error",
            exit_code=None,
            reason=detail,
            truncated=False,
            duration=Duration(queue=waited, setup=0, run=0, total=waited),
        )


class QueuedRunResponse(StreamingResponse):
    """A run that waits in line: its place as it moves up (`queued`), then the run's own events, one stream.

    The answer has begun while it waits, so a failure to start afterwards (the database
    went away) is the run's `finished` event with status "error", not an HTTP error.
    Whatever happens to the connection, the place in line or the run is given up.
    """

    def __init__(
        self, service: RunService, ticket: Ticket, begin: Callable[[Ticket], Awaitable[Run]], pending: Pending
    ) -> None:
        self.service = service
        self.ticket = ticket
        self.begin = begin
        self.pending = pending
        self.run: Run | None = None
        super().__init__(
            self._lines(),
            media_type=NDJSON,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", "X-Run-Id": pending.id},
        )

    async def _lines(self) -> AsyncIterator[str]:
        async for place in self.service.wait_in_line(self.ticket):
            yield to_json(place) + "\n"
        try:
            self.run = await self.begin(self.ticket)
        except errors.WorkshopError as error:
            yield to_json(self.pending.failed(error.detail)) + "\n"
            return
        async for event in self.run.events():
            yield to_json(event) + "\n"

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.run is not None:
                self.run.close()
                self.run.answered.set()
            else:
                self.service.admission.abandon(self.ticket)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    runtime = runtime or Runtime(settings)
    limiter = RateLimiter(settings.rate_limit) if settings.public and settings.rate_limit > 0 else None

    metrics = Metrics(runtime)
    openapi_document = json.dumps(openapi_schema())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        assert runtime.service is not None
        runtime.service.on_finish.append(metrics.observe)
        runtime.service.admission.on_refusal = metrics.refused
        try:
            yield
        finally:
            await runtime.stop()

    async def create_run(request: Request) -> Response:
        if runtime.draining:
            metrics.unavailable("draining")
            raise errors.Draining("this runner is restarting and admits no new run; retry shortly", retry_after=5)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != JSON:
            raise errors.UnsupportedMediaType("send the request as application/json")
        asked = parse_run_request(await read_body(request, settings.max_body))
        client = request.client.host if request.client else "unknown"
        if limiter is not None:
            wait = limiter.take(client)
            if wait:
                metrics.refused("rate_limited")
                detail = f"too many runs from your address; retry in {retry_after_header(wait)} s"
                raise errors.Refused(detail, wait, code="rate_limited")
        snippet = runtime.snippets.get(asked.snippet)
        if snippet is None:
            raise errors.UnknownSnippet(f"there is no snippet {asked.snippet!r}")
        code = asked.code
        if code is not None and code != snippet.code and not runtime.editing_enabled(settings):
            missing = runtime.missing_layers()
            detail = "this runner only runs the published samples"
            if settings.public and missing and settings.allow_edits is None:
                detail += f" (edited code needs every isolation layer; missing: {', '.join(missing)})"
            raise errors.EditingDisabled(detail)
        if not runtime.server.process_alive():
            runtime.postgres_healthy = False  # a warm sandbox would not notice until it connects
        if not runtime.postgres_healthy or runtime.service is None:
            metrics.unavailable(errors.PostgresUnavailable.code)
            raise errors.PostgresUnavailable("PostgreSQL is not available right now; retry shortly")
        service = runtime.service
        queued_at = time.perf_counter()

        run_id = secrets.token_hex(6)

        async def begin(ticket: Ticket | None) -> Run:
            try:
                run = await service.start(snippet, code, client, ticket, queued_at, run_id)  # a full share: a 429
            except errors.PostgresUnavailable as error:
                log.warning("cannot prepare a sandbox, PostgreSQL is unavailable: %s", error)
                runtime.postgres_healthy = False  # the watchdog confirms, restarts if it can, and clears it
                metrics.unavailable(error.code)
                raise
            except errors.ServiceUnavailable as error:
                log.warning("cannot prepare a sandbox: %s", error)  # not PostgreSQL's doing: PostgreSQL stays healthy
                part: Part = "clone_space" if isinstance(error, errors.CloneSpaceFull) else "sandbox_start"
                runtime.troubles.note(part, error.detail)
                metrics.unavailable(error.code)
                raise
            runtime.troubles.cleared()
            run.round_trip_ms = asked.network_rtt_ms
            return run

        streaming = NDJSON in request.headers.get("accept", "")
        if streaming:
            ticket = service.admission.enqueue(client)  # a long wait or a full share: errors.Refused, a 429
            if not ticket.granted:  # a burst: answer at once, and tell the reader its place while it waits
                edited = code is not None and code != snippet.code
                return QueuedRunResponse(service, ticket, begin, Pending(run_id, snippet.id, edited, queued_at))
            run = await begin(ticket)
        else:
            run = await begin(None)
        headers = {"X-Run-Id": run.id}
        if streaming:
            return RunResponse(run, headers)
        try:
            response = json_response(await collect(run), headers=headers)
            # once the body is sent; a coroutine function, so that Starlette calls it on the event loop
            # (a plain callable would go to a worker thread, and asyncio.Event is not thread-safe)
            response.background = BackgroundTask(run.mark_answered)
            return response
        finally:
            run.close()

    async def list_snippets(request: Request) -> Response:
        listing = SnippetList(snippets=[SnippetInfo.model_validate(s.describe()) for s in runtime.snippets.values()])
        return json_response(listing)

    def database_bounds() -> DatabaseBounds:
        usage = runtime.factory.clone_space_usage() if runtime.factory else None
        return DatabaseBounds(
            size_limit_bytes=settings.db_size_limit,
            memory_limit_bytes=settings.db_memory_limit,
            backend_memory=runtime.backend_memory.version if runtime.backend_memory else None,
            backend_memory_missing=None if runtime.backend_memory else runtime.backend_memory_problem,
            clone_space=CloneSpaceHealth(**dataclasses.asdict(usage)) if usage else None,
        )

    async def health(request: Request) -> Response:
        pool = runtime.pool
        pool_state = pool.state() if pool else None
        service = runtime.service
        state, causes = assess(
            started=service is not None,
            stopping=runtime.stopping,
            draining=runtime.draining,
            postgres_healthy=runtime.postgres_healthy,
            pool_failures=pool.failures if pool else 0,
            troubles=runtime.troubles,
            missing_layers=runtime.missing_layers() if service is not None else [],
        )
        body = Health(
            status=state,
            causes=[HealthCause(part=c.part, detail=c.detail, blocking=c.blocking) for c in causes],
            version=__version__,
            postgres=PostgresHealth(kind=runtime.server.kind, healthy=runtime.postgres_healthy),
            pool=PoolHealth(
                size=settings.pool_size,
                ready=pool.ready if pool else 0,
                busy=pool.busy if pool else 0,
                target=pool_state.size if pool_state else 0,
                preparing=pool_state.preparing if pool_state else 0,
            ),
            runs=RunsHealth(
                running=service.running if service else 0,
                waiting=service.waiting if service else 0,
                max_concurrent=settings.max_concurrent_runs,
                max_concurrent_rule=derive_slots(settings.run_memory).rule
                if settings.max_concurrent_runs == derive_slots(settings.run_memory).slots
                else "WORKSHOP_MAX_CONCURRENT_RUNS",
                per_client=ClientShare.model_validate(settings.share(), from_attributes=True),
                max_queue=settings.max_queue,
            ),
            isolation=IsolationHealth(
                launcher=runtime.launcher.name,
                layers=runtime.layers(),
                missing=runtime.missing_layers(),
                cgroups=runtime.cgroups.version if runtime.cgroups else None,
                limits=RunLimits(
                    memory_bytes=settings.run_memory,
                    processes=settings.run_pids,
                    cpus=settings.run_cpus,
                    output_bytes=settings.output_limit,
                    seconds=settings.run_timeout,
                ),
                database=database_bounds(),
            ),
            editing=runtime.editing_enabled(settings),
            public=settings.public,
        )
        return json_response(body, http_status(state, causes), {"Cache-Control": "no-store"})

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return Response(openapi_document, media_type=JSON)

    async def api_not_found(request: Request) -> Response:
        if request.url.path in api_paths:
            return error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")
        return error_response(404, "not_found", f"no API route {request.url.path}")

    api: list[Route] = [
        Route("/api/runs", create_run, methods=["POST"]),
        Route("/api/snippets", list_snippets, methods=["GET"]),
        Route("/api/health", health, methods=["GET"]),
        Route("/api/openapi.json", openapi, methods=["GET"]),
    ]
    api_paths = {route.path for route in api}
    routes: list[BaseRoute] = [
        *api,
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/api/{rest:path}", api_not_found, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    if settings.site_dir.is_dir():
        routes.append(Mount("/", StaticFiles(directory=settings.site_dir, html=True), name="site"))
    middleware = [
        Middleware(SecurityHeaders, site=settings.site_dir),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "accept"],
            expose_headers=["Retry-After", "X-Run-Id"],
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={errors.WorkshopError: workshop_error, HTTPException: http_error, Exception: internal_error},
    )
    app.state.runtime = runtime
    return app
