"""The OpenAPI description of the API, kept beside the code it describes (tests check both agree)."""

from __future__ import annotations

from typing import Any

from . import __version__
from .changes import DatabaseChanges

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def openapi_schema() -> dict[str, Any]:
    duration = {
        "type": "object",
        "required": ["queue", "setup", "run", "total"],
        "properties": {k: {"type": "number", "minimum": 0} for k in ("queue", "setup", "run", "total")},
        "description": "Seconds spent waiting for a slot, preparing the sandbox, running, and in all.",
    }
    output = {
        "type": "object",
        "required": ["event", "stream", "text", "t"],
        "properties": {
            "event": {"const": "output"},
            "stream": {"enum": ["stdout", "stderr"]},
            "text": {"type": "string"},
            "t": {"type": "number", "description": "Seconds since the code was handed over."},
        },
    }
    timing = {
        "type": "object",
        "required": ["event", "name", "seconds"],
        "properties": {
            "event": {"const": "timing"},
            "name": {"type": "string", "description": "The function decorated with async_timed."},
            "seconds": {"type": "number"},
            "start": {"type": "number", "description": "When the call began, in seconds from the hand-over."},
        },
    }
    summary_properties = {
        "id": {"type": "string"},
        "snippet": {"type": "string"},
        "edited": {"type": "boolean"},
        "status": {"enum": ["ok", "error", "timeout", "killed", "cancelled"]},
        "exit_code": {"type": ["integer", "null"]},
        "reason": {"type": ["string", "null"], "description": "Why a run was stopped, if it was."},
        "truncated": {"type": "boolean"},
        "duration": {"$ref": "#/components/schemas/Duration"},
        "changes": {
            "anyOf": [{"$ref": "#/components/schemas/DatabaseChanges"}, {"type": "null"}],
            "description": "What the run left in its database compared with the template; null when unknown.",
        },
    }
    changes = DatabaseChanges.model_json_schema(ref_template="#/components/schemas/{model}")
    changes_defs = changes.pop("$defs", {})
    interval = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
    queries = {
        "type": ["object", "null"],
        "description": "What the run's database connections did (times in seconds from the hand-over); "
        "null when the code ran no query.",
        "required": ["count", "errors", "latency_ms", "max_concurrency", "connections", "phases"],
        "properties": {
            "event": {"const": "queries"},
            "count": {"type": "integer"},
            "errors": {"type": "integer"},
            "latency_ms": {"type": "object", "properties": {k: {"type": "number"} for k in ("p50", "p95", "max")}},
            "span": interval,
            "max_concurrency": {"type": "integer", "description": "Most queries in flight at one instant."},
            "connections": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer", "description": "Connections numbered in the order they opened."},
                        "queries": {"type": "integer"},
                        "errors": {"type": "integer"},
                        "busy_seconds": {"type": "number"},
                        "intervals": {
                            "type": "array",
                            "items": interval,
                            "description": "Busy intervals, merged to at most 300 per connection.",
                        },
                        "errors_at": {"type": "array", "items": {"type": "number"}},
                    },
                },
            },
            "phases": {
                "type": "array",
                "description": "Per async_timed call: queries, connections used, most busy at once.",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "start": {"type": "number"},
                        "end": {"type": "number"},
                        "queries": {"type": "integer"},
                        "connections": {"type": "integer"},
                        "max_concurrency": {"type": "integer"},
                    },
                },
            },
            "statements": {
                "type": "array",
                "items": {"type": "object", "properties": {"sql": {"type": "string"}, "count": {"type": "integer"}}},
            },
            "sample": {"type": "array", "description": "The first 100 queries, raw.", "items": {"type": "object"}},
            "sample_truncated": {"type": "boolean"},
            "dropped": {"type": "integer"},
        },
    }
    summary_required = ["id", "snippet", "status", "exit_code", "truncated", "duration"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "The asyncio workshop runner",
            "version": __version__,
            "description": "Runs the course's samples, each against its own fresh clone of the seeded database.",
        },
        "paths": {
            "/api/runs": {
                "post": {
                    "summary": "Run a published sample, or an edited version of it",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "The run's summary; with `Accept: application/x-ndjson`, one event a line.",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/RunSummary"}},
                                "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/RunEvent"}},
                            },
                        },
                        "400": _error("Bad JSON or fields."),
                        "403": _error("Edited code while editing is off."),
                        "404": _error("Unknown snippet."),
                        "413": _error("Body too large."),
                        "415": _error("Not JSON."),
                        "429": _error("Busy: the queue is full; see Retry-After."),
                        "503": _error("PostgreSQL is unavailable."),
                    },
                }
            },
            "/api/snippets": {
                "get": {
                    "summary": "The published samples",
                    "responses": {
                        "200": {
                            "description": "Every runnable snippet.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["snippets"],
                                        "properties": {
                                            "snippets": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Snippet"},
                                            }
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/api/health": {
                "get": {
                    "summary": "Health, pool and isolation layers in force",
                    "responses": {
                        "200": {
                            "description": "Ready.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                        },
                        "503": {
                            "description": "Degraded (PostgreSQL down).",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                        },
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                },
                "RunRequest": {
                    "type": "object",
                    "required": ["snippet"],
                    "additionalProperties": False,
                    "properties": {
                        "snippet": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 200,
                            "description": "Snippet id, e.g. chapter_05/03_pool.",
                        },
                        "code": {"type": "string", "description": "Edited code to run in the snippet's place."},
                    },
                },
                "Duration": duration,
                "Output": output,
                "Timing": timing,
                "Queries": queries,
                "DatabaseChanges": changes,
                **changes_defs,
                "RunSummary": {
                    "type": "object",
                    "required": [*summary_required, "output", "timings", "queries"],
                    "properties": {
                        **summary_properties,
                        "output": {"type": "array", "items": {"$ref": "#/components/schemas/Output"}},
                        "timings": {"type": "array", "items": {"$ref": "#/components/schemas/Timing"}},
                        "queries": {"$ref": "#/components/schemas/Queries"},
                    },
                },
                "RunEvent": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["event", "id", "snippet"],
                            "properties": {
                                "event": {"const": "started"},
                                "id": {"type": "string"},
                                "snippet": {"type": "string"},
                            },
                        },
                        {"$ref": "#/components/schemas/Output"},
                        {"$ref": "#/components/schemas/Timing"},
                        {"$ref": "#/components/schemas/Queries"},
                        {
                            "type": "object",
                            "required": ["event", *summary_required],
                            "description": "The summary without output and timings, which were streamed.",
                            "properties": {"event": {"const": "finished"}, **summary_properties},
                        },
                    ]
                },
                "Snippet": {
                    "type": "object",
                    "required": ["id", "title", "path", "sha256"],
                    "properties": {k: {"type": "string"} for k in ("id", "title", "path", "sha256")},
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "version", "postgres", "pool", "isolation"],
                    "properties": {
                        "status": {"enum": ["ok", "degraded"]},
                        "version": {"type": "string"},
                        "postgres": {"type": "object"},
                        "pool": {
                            "type": "object",
                            "properties": {
                                "size": {"type": "integer"},
                                "ready": {"type": "integer"},
                                "busy": {"type": "integer"},
                            },
                        },
                        "runs": {"type": "object"},
                        "isolation": {
                            "type": "object",
                            "properties": {
                                "launcher": {"type": "string"},
                                "layers": {"type": "array", "items": {"type": "string"}},
                                "missing": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                        "editing": {"type": "boolean"},
                    },
                },
            }
        },
    }
