"""The OpenAPI document, generated from the models in `runner/models.py`.

The schemas are pydantic's JSON Schema (2020-12, which OpenAPI 3.1 and later
adopt); only the paths, statuses and media types are written here. The document
says OpenAPI 3.2 because that is the version with a word for a stream of JSON
lines: for `application/x-ndjson`, `itemSchema` describes each line (one
`RunEvent`) and `schema` the whole stream read as an array.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from pydantic_core import core_schema

from . import __version__
from .models import ErrorBody, Health, RunRequest, RunSummary, SnippetList, run_event_adapter

OPENAPI_VERSION = "3.2.0"
REF_TEMPLATE = "#/components/schemas/{model}"
JSON = "application/json"
NDJSON = "application/x-ndjson"


class RunnerJsonSchema(GenerateJsonSchema):
    """What the runner sends always carries every field, defaults included: answers say so."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if self.mode == "serialization":
            return True
        return super().field_is_required(field, total)


COMPONENTS: list[tuple[str, JsonSchemaMode, type[BaseModel]]] = [
    ("RunRequest", "validation", RunRequest),
    ("RunSummary", "serialization", RunSummary),
    ("ErrorBody", "serialization", ErrorBody),
    ("SnippetList", "serialization", SnippetList),
    ("Health", "serialization", Health),
]


def component_schemas() -> dict[str, Any]:
    """Every named schema: the models above, the models they use, and `RunEvent`, the streamed union."""
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        (name, mode, TypeAdapter(model)) for name, mode, model in COMPONENTS
    ]
    inputs.append(("RunEvent", "serialization", run_event_adapter))
    by_key, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE, schema_generator=RunnerJsonSchema)
    schemas: dict[str, Any] = dict(definitions["$defs"])
    schemas["RunEvent"] = {
        "description": "One line of a streamed run: `started` first, `finished` last, "
        "`output`, `timing` and `queries` between.",
        **by_key[("RunEvent", "serialization")],
    }
    return dict(sorted(schemas.items()))


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=name)}


RETRY_AFTER = {
    "Retry-After": {
        "description": "Whole seconds after which a retry may succeed.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
    }
}


def error(description: str, *, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": ref("ErrorBody")}}}
    if retry:
        response["headers"] = RETRY_AFTER
    return response


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def paths() -> dict[str, Any]:
    return {
        "/api/runs": {
            "post": {
                "summary": "Run a published sample, or an edited version of it",
                "description": "Admission happens before any byte is sent: a refusal is one of the errors "
                "below. With `Accept: application/x-ndjson` the run streams one event a line; "
                "otherwise the answer is the summary once the run has ended.",
                "requestBody": {"required": True, "content": {JSON: {"schema": ref("RunRequest")}}},
                "responses": {
                    "200": {
                        "description": "The run's summary, or its events as they happen.",
                        "content": {
                            JSON: {"schema": ref("RunSummary")},
                            NDJSON: {
                                "itemSchema": ref("RunEvent"),
                                "schema": {"type": "array", "items": ref("RunEvent")},
                            },
                        },
                    },
                    "400": error("The body is not JSON, not UTF-8, or not a valid RunRequest."),
                    "403": error("Edited code, while this runner only runs the published samples."),
                    "404": error("No snippet by that id."),
                    "413": error("The body is larger than WORKSHOP_MAX_BODY."),
                    "415": error("The body is not sent as application/json."),
                    "429": error("Too many runs waiting (`busy`), or from one address (`rate_limited`).", retry=True),
                    "503": error(
                        "PostgreSQL is down (`database_unavailable`), a sandbox could not be prepared "
                        "(`sandbox_unavailable`), or there is no room for another run's database "
                        "(`clone_space_full`).",
                        retry=True,
                    ),
                },
            }
        },
        "/api/snippets": {
            "get": {
                "summary": "The published samples",
                "responses": {"200": json_response("Every runnable snippet.", ref("SnippetList"))},
            }
        },
        "/api/health": {
            "get": {
                "summary": "Health, pool, runs and the isolation layers in force",
                "responses": {
                    "200": json_response("Ready to serve runs.", ref("Health")),
                    "503": json_response("Degraded: PostgreSQL is not available.", ref("Health")),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": json_response(
                        "OpenAPI, generated from the runner's models.",
                        {"type": "object", "required": ["openapi", "info", "paths", "components"]},
                    )
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "The Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def openapi_schema() -> dict[str, Any]:
    """The whole document (a few milliseconds to build; the app renders it once)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "The asyncio workshop runner",
            "version": __version__,
            "description": "Runs the course's samples, each against its own fresh clone of the seeded database. "
            'Every error is JSON `{"error": code, "detail": text}`.',
        },
        "paths": paths(),
        "components": {"schemas": component_schemas()},
    }
