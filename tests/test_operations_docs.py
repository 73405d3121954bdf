"""docs/operators/, compose and the images say what the code does (issue: operating it in public)."""

from __future__ import annotations

import re
import typing

import yaml

from runner.databases import ROLE_CONNECTION_LIMIT
from runner.gate import BURST, PER_SECOND
from runner.models import RunEvent
from runner.settings import REPO_ROOT, Settings

DOCKER = REPO_ROOT / "docker"
OPERATORS = REPO_ROOT / "docs" / "operators"
ADMIN_CONNECTIONS = 4  # DatabaseFactory's pool (max_size=4)
AUTHENTICATION_TIMEOUT = 2


def compose() -> dict[str, typing.Any]:
    loaded: dict[str, typing.Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return loaded


def postgres_options() -> dict[str, str]:
    command = compose()["services"]["postgres"]["command"]
    return dict(arg.split("=", 1) for arg in command if "=" in arg)


def test_compose_sets_what_the_docs_say() -> None:
    options = postgres_options()
    assert options["authentication_timeout"] == f"{AUTHENTICATION_TIMEOUT}s"
    assert options["max_connections"] == "300"
    assert compose()["services"]["postgres"]["shm_size"] == "256mb"
    index = (OPERATORS / "index.md").read_text()
    assert "`authentication_timeout` is 2 s, in compose" in index
    text = (DOCKER / "compose.yaml").read_text() + (DOCKER / "postgres" / "runner_hba.conf").read_text()
    assert "bound into the sandbox" not in text and "sandboxes share the socket" not in text


def test_stopping_waits_longer_than_the_drain_everywhere() -> None:
    drain = Settings.from_env({}).drain_seconds
    grace = compose()["services"]["runner"]["stop_grace_period"]
    assert int(grace.removesuffix("s")) >= drain + 10
    deployment = yaml.safe_load((DOCKER / "kubernetes" / "base" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    runner = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in runner["env"]}
    assert pod["terminationGracePeriodSeconds"] >= float(env["WORKSHOP_DRAIN_SECONDS"]) + 10
    assert runner["readinessProbe"]["httpGet"]["path"] == "/api/health"


def test_the_runner_image_starts_public_with_json_logs() -> None:
    dockerfile = (DOCKER / "runner" / "Dockerfile").read_text()
    env = re.search(r"^ENV (.*?)(?:\n\n|\n#)", dockerfile, re.M | re.S)
    assert env is not None
    assert "WORKSHOP_PUBLIC=true" in env[1] and "WORKSHOP_LOG_FORMAT=json" in env[1]
    assert "WORKSHOP_ALLOW_WEAK_ISOLATION" not in env[1]


def test_the_sizing_examples_compute() -> None:
    text = (OPERATORS / "scaling.md").read_text()
    replicas, slots, pool = 2, 4, 0
    steady = replicas * ((slots + pool) * ROLE_CONNECTION_LIMIT + ADMIN_CONNECTIONS) + 10
    half_open = int(BURST + PER_SECOND * AUTHENTICATION_TIMEOUT)
    worst = replicas * ((slots + pool) * (ROLE_CONNECTION_LIMIT + half_open) + ADMIN_CONNECTIONS) + 10
    assert f"which is {steady} for two replicas with 4 slots and no pool" in text
    assert f"32 + 16 × 2 = {half_open}" in text and f"which is {worst} in the same example" in text


def test_the_documented_event_list_is_the_event_models() -> None:
    union = typing.get_args(typing.get_args(RunEvent)[0])
    kinds = [model.model_fields["event"].default for model in union]
    listed = re.search(r"per line \(([^)]*)\)", (OPERATORS / "reverse-proxy.md").read_text())
    assert listed is not None
    assert re.findall(r"`(\w+)`", listed[1]) == kinds
