"""The HTTP API (and the built site at `/`), as a Starlette application.

Every error is JSON `{"error": code, "detail": text}` with a 4xx status for bad
input; a 500 would mean a bug in the runner, never in the request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import __version__
from .errors import PostgresUnavailable, Refused, ServiceUnavailable
from .metrics import CONTENT_TYPE, Metrics
from .openapi import openapi_schema
from .ratelimit import RateLimiter, retry_after_header
from .runs import Run, collect
from .runtime import Runtime
from .settings import Settings

log = logging.getLogger("runner.app")
NDJSON = "application/x-ndjson"
MAX_SNIPPET_ID = 200


class ApiError(HTTPException):
    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail, headers)
        self.error = error


def error_response(status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "too_large", f"the request body is larger than {limit} bytes")
    return bytes(body)


def parse_run_request(body: bytes) -> tuple[str, str | None]:
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "bad_encoding", "the body must be UTF-8 encoded JSON") from None
    except ValueError as error:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    unknown = sorted(set(data) - {"snippet", "code"})
    if unknown:
        raise ApiError(400, "bad_request", f"unknown field(s): {', '.join(unknown)}")
    snippet = data.get("snippet")
    if not isinstance(snippet, str) or not snippet:
        raise ApiError(400, "bad_request", '"snippet" must be a non-empty string')
    if len(snippet) > MAX_SNIPPET_ID or "\0" in snippet:
        raise ApiError(400, "bad_request", '"snippet" is not a valid snippet id')
    code = data.get("code")
    if code is not None:
        if not isinstance(code, str):
            raise ApiError(400, "bad_request", '"code" must be a string')
        if "\0" in code:
            raise ApiError(400, "bad_request", '"code" must not contain NUL characters')
        try:
            code.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, "bad_request", '"code" contains unpaired surrogates') from None
    return snippet, code


class RunResponse(StreamingResponse):
    """Streams a run's events; whatever happens to the connection, the run is closed."""

    def __init__(self, run: Run) -> None:
        self.run = run
        super().__init__(
            self._lines(), media_type=NDJSON, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    async def _lines(self) -> AsyncIterator[str]:
        async for event in self.run.events():
            yield event.model_dump_json() + "\n"

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


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    runtime = runtime or Runtime(settings)
    limiter = RateLimiter(settings.rate_limit) if settings.public and settings.rate_limit > 0 else None

    metrics = Metrics(runtime)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        assert runtime.service is not None
        runtime.service.on_finish.append(metrics.observe)
        try:
            yield
        finally:
            await runtime.stop()

    async def create_run(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(415, "unsupported_media_type", "send the request as application/json")
        snippet_id, code = parse_run_request(await read_body(request, settings.max_body))
        if limiter is not None:
            wait = limiter.take(request.client.host if request.client else "unknown")
            if wait:
                raise ApiError(
                    429,
                    "rate_limited",
                    f"too many runs from your address; retry in {wait:.0f} s",
                    {"Retry-After": retry_after_header(wait)},
                )
        snippet = runtime.snippets.get(snippet_id)
        if snippet is None:
            raise ApiError(404, "unknown_snippet", f"there is no snippet {snippet_id!r}")
        if code is not None and code != snippet.code and not runtime.editing_enabled(settings):
            missing = runtime.missing_layers()
            detail = "this runner only runs the published samples"
            if settings.public and missing and settings.allow_edits is None:
                detail += f" (edited code needs every isolation layer; missing: {', '.join(missing)})"
            raise ApiError(403, "editing_disabled", detail)
        if not runtime.server.process_alive():
            runtime.postgres_healthy = False  # a warm sandbox would not notice until it connects
        if not runtime.postgres_healthy or runtime.service is None:
            raise ApiError(
                503,
                "database_unavailable",
                "PostgreSQL is not available right now; retry shortly",
                {"Retry-After": "2"},
            )
        try:
            run = await runtime.service.start(snippet, code)
        except Refused as refused:
            raise ApiError(429, refused.code, refused.detail, refused.headers) from None
        except ServiceUnavailable as error:
            log.warning("cannot prepare a sandbox: %s", error)
            if isinstance(error, PostgresUnavailable):
                runtime.postgres_healthy = False  # the watchdog confirms, restarts if it can, and clears it
            raise ApiError(503, error.code, f"cannot prepare a sandbox: {error}", error.headers) from None
        if NDJSON in request.headers.get("accept", ""):
            return RunResponse(run)
        try:
            return JSONResponse(await collect(run))
        finally:
            run.close()

    async def list_snippets(request: Request) -> Response:
        return JSONResponse({"snippets": [s.describe() for s in runtime.snippets.values()]})

    async def health(request: Request) -> Response:
        pool = runtime.pool
        service = runtime.service
        ok = runtime.postgres_healthy and service is not None
        body = {
            "status": "ok" if ok else "degraded",
            "version": __version__,
            "postgres": {"kind": runtime.server.kind, "healthy": runtime.postgres_healthy},
            "pool": {
                "size": settings.pool_size,
                "ready": pool.ready if pool else 0,
                "busy": pool.busy if pool else 0,
            },
            "runs": {
                "running": service.running if service else 0,
                "waiting": service.waiting if service else 0,
                "max_concurrent": settings.max_concurrent_runs,
                "max_queue": settings.max_queue,
            },
            "isolation": {
                "launcher": runtime.launcher.name,
                "layers": runtime.layers(),
                "missing": runtime.missing_layers(),
                "cgroups": runtime.cgroups.version if runtime.cgroups else None,
                "limits": {
                    "memory_bytes": settings.run_memory,
                    "processes": settings.run_pids,
                    "cpus": settings.run_cpus,
                    "output_bytes": settings.output_limit,
                    "seconds": settings.run_timeout,
                },
            },
            "editing": runtime.editing_enabled(settings),
            "public": settings.public,
        }
        return JSONResponse(body, 200 if ok else 503)

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_schema())

    async def api_not_found(request: Request) -> Response:
        if request.url.path in api_paths:
            return error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")
        return error_response(404, "not_found", f"no API route {request.url.path}")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error = (
            exc.error
            if isinstance(exc, ApiError)
            else {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        )
        return error_response(exc.status_code, error, str(exc.detail), exc.headers)

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "the runner hit an unexpected error; see its log")

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
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "accept"],
            expose_headers=["Retry-After"],
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
    app.state.runtime = runtime
    return app
