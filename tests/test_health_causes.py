"""Health names the part to blame; a full clone folder is a 503 of its own, counted, and degrades health."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner import errors
from runner.app import create_app
from runner.health import Troubles, assess, http_status
from runner.models import Health
from runner.runs import RunService
from runner.runtime import Runtime

from .conftest import runner_settings

SNIPPET = "chapter_05/06_sync_generator"


def facts(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "started": True,
        "stopping": False,
        "draining": False,
        "postgres_healthy": True,
        "pool_failures": 0,
        "troubles": Troubles(),
        "missing_layers": [],
    }
    return {**base, **changes}


@pytest.mark.parametrize(
    ("changes", "state", "parts", "code"),
    [
        ({}, "ready", [], 200),
        ({"started": False}, "starting", [], 503),
        ({"stopping": True}, "down", [], 503),
        ({"draining": True}, "draining", [], 503),
        ({"postgres_healthy": False}, "degraded", ["postgres"], 503),
        ({"pool_failures": 3}, "degraded", ["sandbox_start"], 503),
        ({"missing_layers": ["seccomp"]}, "degraded", ["isolation"], 200),
        ({"postgres_healthy": False, "missing_layers": ["cgroups"]}, "degraded", ["postgres", "isolation"], 503),
    ],
)
def test_each_state_and_cause_has_its_http_status(
    changes: dict[str, Any], state: str, parts: list[str], code: int
) -> None:
    found, causes = assess(**facts(**changes))
    assert (found, [c.part for c in causes], http_status(found, causes)) == (state, parts, code)


def test_a_failure_to_prepare_counts_until_a_run_is_prepared() -> None:
    troubles = Troubles()
    troubles.note("clone_space", "no room")
    state, causes = assess(**facts(troubles=troubles))
    assert state == "degraded"
    assert [(c.part, c.detail, c.blocking) for c in causes] == [("clone_space", "no room", True)]
    troubles.cleared()
    assert assess(**facts(troubles=troubles)) == ("ready", [])


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.DiskFullError('could not write to file "base/1/2": No space left on device'),
        OSError(errno.ENOSPC, "No space left on device"),
        errors.CloneSpaceFull("the clone folder holds its limit"),
    ],
)
def test_disk_full_is_clone_space_full(error: BaseException) -> None:
    mapped = errors.as_clone_space_full(error)
    assert mapped is not None and mapped.status == 503 and mapped.code == "clone_space_full"


@pytest.mark.parametrize(
    "error", [OSError(errno.EACCES, "Permission denied"), asyncpg.exceptions.UniqueViolationError("dup")]
)
def test_other_failures_are_not_clone_space(error: BaseException) -> None:
    assert errors.as_clone_space_full(error) is None


class FullPool:
    """A pool whose preparation fails as PostgreSQL does when the clone folder is full."""

    busy = ready = failures = 0

    async def take(self) -> Any:
        raise asyncpg.exceptions.DiskFullError(
            'could not write to file "pg_tblspc/16384/PG_18/1/2": No space left on device'
        )


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.anyio
async def test_a_full_clone_folder_is_a_503_counted_and_degrades_health(tmp_path: Path) -> None:
    settings = runner_settings(cache_dir=tmp_path, database_url="postgresql://postgres@127.0.0.1:9/postgres")
    runtime = Runtime(settings)
    runtime.postgres_healthy = True
    runtime.service = RunService(settings, FullPool())  # type: ignore[arg-type]
    app = create_app(settings, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://runner") as client:
        before = await client.get("/api/health")
        response = await client.post("/api/runs", json={"snippet": SNIPPET})
        health = await client.get("/api/health")
        metrics = await client.get("/metrics")
    assert before.json()["status"] in {"ready", "degraded"}
    assert "clone_space" not in {c["part"] for c in before.json()["causes"]}
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "clone_space_full"
    assert "No space left on device" in response.json()["detail"]
    assert int(response.headers["retry-after"]) >= 1
    assert runtime.postgres_healthy  # PostgreSQL is not blamed
    assert runtime.service.running == 0  # the slot was given back
    assert health.status_code == 503
    described = Health.model_validate_json(health.content)
    assert described.status == "degraded" and described.postgres.healthy
    assert [c.part for c in described.causes if c.blocking] == ["clone_space"]
    samples = scrape(metrics.text)
    assert samples[("workshop_runs_unavailable_total", (("reason", "clone_space_full"),))] == 1
    assert samples[("workshop_runs_unavailable_total", (("reason", "sandbox_unavailable"),))] == 0
