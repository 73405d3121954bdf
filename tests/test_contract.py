"""One typed contract: the models, the OpenAPI document, the widget and the docs say the same thing.

Fast (no PostgreSQL, no sandbox): the app is driven in-process with a runtime
that was never started, and, where a run would start, a stand-in run service
that raises what the real one raises when it cannot start a run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
import schemathesis

from runner import errors
from runner.app import create_app, parse_run_request
from runner.models import STATUSES, Health, RunEvent, RunRequest, SnippetList
from runner.openapi import openapi_schema
from runner.runtime import Runtime
from runner.settings import REPO_ROOT
from runner.snippets import Snippet

from .conftest import runner_settings

WIDGET = REPO_ROOT / "docs" / "assets" / "workshop-run.js"
EVENTS_DOC = REPO_ROOT / "docs" / "operators" / "reverse-proxy.md"
SNIPPET = "chapter_05/03_pool"


# -- the widget and the docs -----------------------------------------------------------------------


def object_keys(source: str, name: str) -> list[str]:
    """The keys of the object literal assigned to `name` in JavaScript source (strings and comments skipped)."""
    found = re.search(rf"\b{re.escape(name)}\s*=\s*\{{", source)
    assert found, f"no `{name} = {{...}}` literal"
    keys: list[str] = []
    depth, expect_key, i = 0, False, found.end() - 1
    while i < len(source):
        char = source[i]
        if source.startswith("//", i):
            i = source.index("\n", i)
            continue
        if source.startswith("/*", i):
            i = source.index("*/", i) + 2
            continue
        token_end = i + 1
        if char in "\"'`":
            token_end = i + 1
            while source[token_end] != char:
                token_end += 2 if source[token_end] == "\\" else 1
            token_end += 1
            token = source[i + 1 : token_end - 1]
        else:
            word = re.match(r"[A-Za-z_$][\w$]*", source[i:])
            token = word.group() if word else ""
            token_end = i + len(token) if word else i + 1
        if char in "({[":
            depth += 1
            expect_key = depth == 1
        elif char in ")}]":
            depth -= 1
            if depth == 0:
                return keys
        elif char == "," and depth == 1:
            expect_key = True
        elif not char.isspace():
            if expect_key and token and re.match(r"\s*:", source[token_end:]):
                keys.append(token)
            expect_key = False
        i = token_end
    raise AssertionError(f"`{name}` is never closed")


def test_object_keys_reads_a_literal_as_written() -> None:
    source = """var X = {
      ok: ["a", f(b, {c: 1})],  // a comment, with: a colon
      "error": cond ? d : e, /* x: y */
      'done': "}", timeout: `${t}`,
    };"""
    assert object_keys(source, "X") == ["ok", "error", "done", "timeout"]


def test_the_widget_has_words_for_every_status_and_no_others() -> None:
    assert sorted(object_keys(WIDGET.read_text(), "STATUS_WORDS")) == sorted(STATUSES)


def event_kinds() -> set[str]:
    union = get_args(get_args(RunEvent)[0])
    return {model.model_fields["event"].default for model in union}


def test_the_widget_handles_every_event_kind_and_no_others() -> None:
    handled = set(re.findall(r'\bevent\.event === "(\w+)"', WIDGET.read_text()))
    assert handled == event_kinds()


def test_the_operator_docs_list_every_event_kind() -> None:
    listed = re.search(r"one JSON event\s+per line \(([^)]*)\)", EVENTS_DOC.read_text())
    assert listed, f"{EVENTS_DOC.name} no longer lists the streamed events"
    assert set(re.findall(r"`(\w+)`", listed.group(1))) == event_kinds()


def test_the_document_discriminates_every_event_kind() -> None:
    run_event = openapi_schema()["components"]["schemas"]["RunEvent"]
    assert run_event["discriminator"]["propertyName"] == "event"
    assert set(run_event["discriminator"]["mapping"]) == event_kinds()


def test_the_document_is_valid_openapi() -> None:
    """Checked against the OpenAPI meta-schema of the version it names (3.2: `itemSchema` is not 3.1)."""
    schemathesis.openapi.from_dict(openapi_schema()).validate()


def test_every_reference_in_the_document_resolves() -> None:
    document = openapi_schema()
    refs = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(document)))
    assert refs and refs <= set(document["components"]["schemas"])


# -- parsing a run request -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        (b"{not json", "bad_json", "the body is not valid JSON"),
        (b"[" * 100_000, "bad_json", "the body is not valid JSON"),
        (b"\xff\xfe{}", "bad_encoding", "UTF-8"),
        (b"[]", "bad_request", "the body must be a JSON object"),
        (b"{}", "bad_request", '"snippet" is required'),
        (b'{"snippet": 3}', "bad_request", '"snippet" should be a valid string'),
        (b'{"snippet": ""}', "bad_request", '"snippet" should have at least 1 character'),
        (b'{"snippet": "' + b"x" * 201 + b'"}', "bad_request", '"snippet" should have at most 200 characters'),
        (b'{"snippet": "a", "code": 1}', "bad_request", '"code" should be a valid string'),
        (b'{"snippet": "a", "extra": 1, "more": 2}', "bad_request", "unknown field(s): extra, more"),
        (b'{"snipet": "a"}', "bad_request", 'unknown field(s): snipet; "snippet" is required'),
        (b'{"snippet": "a", "code": "print(1)\\u0000"}', "bad_request", '"code" must not contain NUL characters'),
        (b'{"snippet": "a", "code": "\\ud800"}', "bad_request", '"code" contains unpaired surrogates'),
    ],
)
def test_a_bad_body_is_refused_in_words(body: bytes, code: str, detail: str) -> None:
    with pytest.raises(errors.BadRequest) as refused:
        parse_run_request(body)
    assert refused.value.status == 400
    assert refused.value.code == code
    assert detail in refused.value.detail, refused.value.detail


def test_a_good_body_parses() -> None:
    assert parse_run_request(b'{"snippet": "a"}') == RunRequest(snippet="a")
    assert parse_run_request(b'{"snippet": "a", "code": null}') == RunRequest(snippet="a")
    assert parse_run_request('{"snippet": "a", "code": "é"}'.encode()).code == "é"


# -- the error envelope, end to end in-process -------------------------------------------------------


class RefusingService:
    """Stands in for the run service at the moment it cannot start a run: raises what it is given."""

    running = waiting = 0

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def start(self, snippet: Snippet, code: str | None, client: str = "local", *rest: Any) -> Any:
        raise self.error


def unstarted_runtime(tmp_path: Path, **overrides: Any) -> Runtime:
    return Runtime(runner_settings(cache_dir=tmp_path, **overrides))


async def post(runtime: Runtime, content: bytes, content_type: str = "application/json", **settings: Any) -> Any:
    app = create_app(runtime.settings if not settings else runner_settings(**settings), runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://runner") as client:
        return await client.post("/api/runs", content=content, headers={"content-type": content_type})


def assert_envelope(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail"} and body["error"] == error and body["detail"], body
    return body


@pytest.mark.anyio
async def test_each_refusal_before_a_run_has_its_status_and_code(tmp_path: Path) -> None:
    runtime = unstarted_runtime(tmp_path)
    body = assert_envelope(await post(runtime, b'{"snippet": "a", "x": 1}'), 400, "bad_request")
    assert body["detail"] == "unknown field(s): x"
    assert_envelope(await post(runtime, b"{", "application/json; charset=utf-8"), 400, "bad_json")
    assert_envelope(await post(runtime, b"{}", "text/plain"), 415, "unsupported_media_type")
    big = b'{"snippet": "a", "code": "' + b"#" * runtime.settings.max_body + b'"}'
    assert_envelope(await post(runtime, big), 413, "too_large")
    assert_envelope(await post(runtime, b'{"snippet": "chapter_05/nope"}'), 404, "unknown_snippet")
    edited = b'{"snippet": "%s", "code": "print(2)"}' % SNIPPET.encode()
    assert_envelope(await post(runtime, edited, allow_edits=False), 403, "editing_disabled")
    down = await post(runtime, b'{"snippet": "%s"}' % SNIPPET.encode())  # never started: PostgreSQL is not there
    assert_envelope(down, 503, "database_unavailable")
    assert down.headers["retry-after"] == "2"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "status", "code", "postgres_blamed"),
    [
        (errors.Busy(2.2), 429, "busy", False),
        (errors.SandboxFailed("the sandbox's child did not start"), 503, "sandbox_unavailable", False),
        (errors.CloneSpaceFull("no room for another run's database"), 503, "clone_space_full", False),
        (errors.PostgresUnavailable("PostgreSQL is unreachable"), 503, "database_unavailable", True),
    ],
)
async def test_a_run_that_cannot_start_is_refused_and_only_postgres_is_blamed_on_postgres(
    tmp_path: Path, error: errors.WorkshopError, status: int, code: str, postgres_blamed: bool
) -> None:
    runtime = unstarted_runtime(tmp_path, database_url="postgresql://postgres@127.0.0.1:9/postgres")
    runtime.postgres_healthy = True
    runtime.service = RefusingService(error)
    response = await post(runtime, b'{"snippet": "%s"}' % SNIPPET.encode())
    body = assert_envelope(response, status, code)
    assert body["detail"] == error.detail
    assert int(response.headers["retry-after"]) >= 1
    assert runtime.postgres_healthy is not postgres_blamed


@pytest.mark.anyio
async def test_health_and_snippets_of_an_unstarted_runner_follow_their_models(tmp_path: Path) -> None:
    runtime = unstarted_runtime(tmp_path)
    app = create_app(runtime.settings, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://runner") as client:
        health = await client.get("/api/health")
        snippets = await client.get("/api/snippets")
        missing = await client.get("/api/nothing")
        wrong = await client.delete("/api/health")
    assert health.status_code == 503
    described = Health.model_validate_json(health.content)
    assert described.status == "starting" and described.postgres.healthy is False
    listing = SnippetList.model_validate_json(snippets.content)
    assert {s.id for s in listing.snippets} == set(runtime.snippets)
    assert_envelope(missing, 404, "not_found")
    assert_envelope(wrong, 405, "method_not_allowed")
