"""The images built and run for real: `make images-test` (after `make images`), never part of `make test`.

Three scenes, each with real containers on the engine `docker/images.py` finds
(podman here, Docker elsewhere):

1. the runner image alone, on its embedded PostgreSQL, in public mode with edits
   allowed: health with every isolation layer, the image's own healthcheck, every
   chapter sample, an edited run, and a cgroup with memory, pids and cpu limits
   created by the runner's user inside the container;
2. the learners' PostgreSQL image, seeded and reached exactly as the chapter
   connects (127.0.0.1:5432, postgres/"password", database products), by the
   chapter's own scripts;
3. docker/compose.yaml brought up (with podman-compose's override file under
   podman), the runner serving public mode against the compose PostgreSQL.

Deselected by default (marker `images`); `make images-test` selects it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from runner.expected import combined_output, normalise, read_expected
from runner.settings import REPO_ROOT

from .conftest import free_port

pytestmark = pytest.mark.images

DOCKER = REPO_ROOT / "docker"
DELEGATE = DOCKER / "delegate-cgroup-v1"
RUNNER_UID = "10001"
LEARNERS_PORT = 5432  # the chapter's port, on purpose
EXPECTED_ROWS = {"brand": 100, "product": 1_000, "product_size": 3, "product_color": 2, "sku": 100_000}
TAG = f"smoke-{os.getpid()}"
START_TIMEOUT = 180.0

EDITED = """
import asyncpg, socket
conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
print("products:", await conn.fetchval("SELECT count(*) FROM product"))
print("host:", socket.gethostname())
await conn.close()
"""


def _load_images_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("workshop_images", DOCKER / "images.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


images = _load_images_module()


def cgroup_v1() -> bool:
    """memory, pids and cpu as cgroup v1 hierarchies: per-run cgroups come from docker/delegate-cgroup-v1."""
    return all(
        os.path.ismount(f"/sys/fs/cgroup/{c}") and not os.path.exists(f"/sys/fs/cgroup/{c}/cgroup.controllers")
        for c in ("memory", "pids", "cpu")
    )


# -- the engine and containers ------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Any:
    engine = images.Engine.detect()
    missing = [image for image in (images.RUNNER_IMAGE, images.LEARNERS_IMAGE) if not engine.has_image(image)]
    assert not missing, f"{missing} not built: run `make images` first"
    return engine


@dataclass
class Container:
    engine: Any
    name: str

    def inspect(self, template: str) -> str:
        return str(self.engine("inspect", "--format", template, self.name, capture=True, timeout=60).stdout.strip())

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def logs(self) -> str:
        result = self.engine("logs", self.name, check=False, capture=True, timeout=60)
        return str(result.stdout + result.stderr)[-6000:]

    def exec(self, *argv: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        options = ["--user", user] if user else []
        result: subprocess.CompletedProcess[str] = self.engine(
            "exec", *options, self.name, *argv, check=False, capture=True, timeout=120
        )
        return result

    def healthcheck_passes(self) -> bool:
        """Run the image's HEALTHCHECK once now (podman schedules it only through systemd)."""
        if self.engine.is_podman:
            return bool(
                self.engine("healthcheck", "run", self.name, check=False, capture=True, timeout=60).returncode == 0
            )
        until(lambda: self.inspect("{{.State.Health.Status}}") != "starting", 120, f"{self.name}'s healthcheck")
        return self.inspect("{{.State.Health.Status}}") == "healthy"


def until(condition: Callable[[], bool], timeout: float, what: str, alive: Container | None = None) -> None:
    """Poll `condition` until true; fail loudly at the deadline or when `alive` stops running."""
    deadline = time.monotonic() + timeout
    while not condition():
        if alive is not None and not alive.running():
            pytest.fail(f"{alive.name} exited while waiting for {what}:\n{alive.logs()}")
        if time.monotonic() > deadline:
            logs = f":\n{alive.logs()}" if alive is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{logs}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def start(engine: Any) -> Iterator[Callable[..., Container]]:
    """`start(name, image, *options)`: a detached container, removed with its volumes at the end."""
    started: list[Container] = []

    def run(name: str, image: str, *options: str) -> Container:
        engine("rm", "--force", "--volumes", name, check=False, capture=True, timeout=120)
        engine("run", "--detach", "--name", name, *options, image, capture=True, timeout=120)
        container = Container(engine, name)
        started.append(container)
        return container

    yield run
    for container in started:
        engine("rm", "--force", "--volumes", container.name, check=False, capture=True, timeout=120)


@pytest.fixture(scope="module")
def delegated_cgroup() -> Iterator[Callable[[str], list[str]]]:
    """`delegate(name)`: docker/delegate-cgroup-v1's folders as volume options; removed at the end."""
    names: list[str] = []

    def delegate(name: str) -> list[str]:
        if not cgroup_v1():
            return []
        subprocess.run([str(DELEGATE), name, RUNNER_UID], check=True, capture_output=True, text=True, timeout=60)
        names.append(name)
        options: list[str] = []
        for controller in ("memory", "pids", "cpu"):
            options += ["--volume", f"/sys/fs/cgroup/{controller}/workshop/{name}:/sys/fs/cgroup/{controller}"]
        return options

    yield delegate
    for name in names:
        subprocess.run([str(DELEGATE), "--remove", name], check=False, capture_output=True, timeout=60)


def health(url: str) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{url}/api/health", timeout=5)
    except httpx.TransportError:
        return None
    return dict(response.json()) if response.status_code == 200 else None


def run(url: str, snippet: str, code: str | None = None) -> httpx.Response:
    body = {"snippet": snippet} if code is None else {"snippet": snippet, "code": code}
    return httpx.post(f"{url}/api/runs", json=body, timeout=120)


def assert_full_isolation(state: dict[str, Any]) -> None:
    isolation = state["isolation"]
    assert isolation["launcher"] == "bubblewrap", isolation
    assert isolation["missing"] == [], isolation


# -- 1. the runner image alone -------------------------------------------------------------

SECCOMP_PROFILE = DOCKER / "seccomp" / "runner.json"

# The runner's options, as docs/operators/index.md gives them: bubblewrap needs its
# namespace calls (the runner's seccomp profile) and a fresh /proc (unmasked system
# paths); the rest is taken away.
RUNNER_OPTIONS = (
    "--security-opt",
    f"seccomp={SECCOMP_PROFILE}",
    "--security-opt",
    "apparmor=unconfined",
    "--security-opt",
    "systempaths=unconfined",
    "--security-opt",
    "no-new-privileges",
    "--cap-drop",
    "ALL",
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cgroupns",
    "private",
)


@dataclass
class Runner:
    container: Container
    url: str
    health: dict[str, Any]


@pytest.fixture(scope="module")
def runner_alone(delegated_cgroup: Callable[[str], list[str]], start: Callable[..., Container]) -> Runner:
    # (delegated_cgroup first: set up before the container, so torn down after it)
    port = free_port()
    container = start(
        f"workshop-{TAG}-runner",
        images.RUNNER_IMAGE,
        *RUNNER_OPTIONS,
        *delegated_cgroup(f"{TAG}-runner"),
        "--publish",
        f"127.0.0.1:{port}:8000",
        # Public mode, nothing else: it accepts edits by itself with every layer in force.
        "--env",
        "WORKSHOP_PUBLIC=true",
        "--env",
        f"WORKSHOP_INSTANCE={TAG}",
    )
    url = f"http://127.0.0.1:{port}"
    until(lambda: health(url) is not None, START_TIMEOUT, "the runner's /api/health", container)
    state = health(url)
    assert state is not None
    return Runner(container, url, state)


def test_the_runner_alone_is_healthy_with_every_isolation_layer(runner_alone: Runner) -> None:
    state = runner_alone.health
    assert state["status"] == "ready", state
    assert state["postgres"] == {"kind": "embedded", "healthy": True}
    assert state["public"] is True and state["editing"] is True
    assert_full_isolation(state)
    assert runner_alone.container.healthcheck_passes(), runner_alone.container.logs()


def test_the_runner_alone_runs_every_chapter_sample(runner_alone: Runner) -> None:
    """Every sample and exercise of the pages (the notebook's cells are the same code: within public mode's
    30 runs a minute, they are left to tests/test_notebook.py); each exercise is judged by its check."""
    snippets = httpx.get(f"{runner_alone.url}/api/snippets", timeout=10).json()["snippets"]
    ids = [snippet["id"] for snippet in snippets if not snippet["id"].startswith("notebook/")]
    assert len(ids) >= 8
    judged = 0
    for snippet in ids:
        response = run(runner_alone.url, snippet)
        assert response.status_code == 200, f"{snippet}: {response.text}"
        summary = response.json()
        assert summary["status"] == "ok", f"{snippet}: {combined_output(summary)}"
        expected = read_expected(snippet)
        if expected is not None:  # the samples; exercises' starters have no .out file
            assert normalise(combined_output(summary)) == expected, snippet
        if summary["check"] is not None:  # a starter: judged, and not solved
            assert summary["check"]["judged"] and not summary["check"]["passed"], (snippet, summary["check"])
            judged += 1
    assert judged >= 8, "the exercises' checks did not run in the image"


def test_the_runner_alone_runs_edited_code_in_its_sandbox(runner_alone: Runner) -> None:
    response = run(runner_alone.url, "chapter_05/01_connect", code=EDITED)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["status"] == "ok", combined_output(summary)
    assert combined_output(summary) == "products: 1000\nhost: sandbox\n"


PROBE = "from runner.isolation import BubblewrapLauncher; print(BubblewrapLauncher().probe())"


@pytest.mark.parametrize(
    ("seccomp", "outcome"),
    [
        (str(SECCOMP_PROFILE), "None"),  # the runner's profile: bubblewrap works
        ("", "Can't set hostname"),  # the engine's default profile: sethostname needs CAP_SYS_ADMIN
    ],
    ids=["runner-profile", "default-profile"],
)
def test_bubblewrap_needs_the_runners_seccomp_profile(engine: Any, seccomp: str, outcome: str) -> None:
    if not engine.is_podman and not seccomp:
        pytest.skip("Docker's default profile refuses earlier (unshare); only podman's is pinned down here")
    security = ["--security-opt", f"seccomp={seccomp}"] if seccomp else []
    result = engine(
        "run",
        "--rm",
        *security,
        "--security-opt",
        "systempaths=unconfined",
        "--cap-drop",
        "ALL",
        images.RUNNER_IMAGE,
        "python",
        "-c",
        PROBE,
        check=False,
        capture=True,
        timeout=120,
    )
    assert outcome in result.stdout, result.stdout + result.stderr


CGROUP_PROBE = r"""
set -eu
run=probe-$$
for c in memory pids cpu; do mkdir /sys/fs/cgroup/$c/$run; done
echo 67108864 > /sys/fs/cgroup/memory/$run/memory.limit_in_bytes
echo 1 > /sys/fs/cgroup/pids/$run/pids.max
echo 50000 > /sys/fs/cgroup/cpu/$run/cpu.cfs_quota_us
# A shell moves itself into the new cgroup; with pids.max=1 it cannot start /bin/true.
if sh -c 'for c in memory pids cpu; do echo $$ > /sys/fs/cgroup/$c/'"$run"'/cgroup.procs; done; /bin/true' 2>/dev/null
then echo "fork: allowed"
else echo "fork: refused"
fi
echo "memory limit: $(cat /sys/fs/cgroup/memory/$run/memory.limit_in_bytes)"
echo "cpu quota: $(cat /sys/fs/cgroup/cpu/$run/cpu.cfs_quota_us)"
echo "pids events: $(cat /sys/fs/cgroup/pids/$run/pids.events)"
for c in memory pids cpu; do rmdir /sys/fs/cgroup/$c/$run; done
echo removed
"""


def test_the_runners_user_can_make_a_cgroup_with_limits(runner_alone: Runner) -> None:
    """What per-run cgroups need from the container: a child cgroup the runner's uid creates, limits and fills."""
    if not cgroup_v1():
        pytest.skip("cgroup v2 host: docs/operators/index.md describes its delegation, not tried here")
    result = runner_alone.container.exec("sh", "-c", CGROUP_PROBE, user=RUNNER_UID)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "fork: refused",
        "memory limit: 67108864",
        "cpu quota: 50000",
        "pids events: max 1",
        "removed",
    ], result.stdout + result.stderr


# -- 2. the learners' PostgreSQL image -------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def learners_postgres(start: Callable[..., Container]) -> Container:
    assert port_is_free(LEARNERS_PORT), (
        f"127.0.0.1:{LEARNERS_PORT} is taken: the learners' image is tested on the chapter's own port"
    )
    container = start(f"workshop-{TAG}-learners", images.LEARNERS_IMAGE, "--publish", f"127.0.0.1:{LEARNERS_PORT}:5432")
    until(
        lambda: chapter_script("01_connect").returncode == 0,
        START_TIMEOUT,
        "the learners' PostgreSQL on 127.0.0.1:5432",
        container,
    )
    return container


def chapter_script(name: str) -> subprocess.CompletedProcess[str]:
    """A code/ script as the chapter runs it: `python -m code.chapter_05.<name>` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", f"code.chapter_05.{name}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def test_the_learners_postgres_is_seeded_as_the_chapter_expects(learners_postgres: Container) -> None:
    counts = " UNION ALL ".join(f"SELECT '{table}', count(*) FROM {table}" for table in EXPECTED_ROWS)
    result = learners_postgres.exec(
        "env",
        "PGPASSWORD=password",
        "psql",
        "--host=127.0.0.1",
        "--username=postgres",
        "--dbname=products",
        "--no-align",
        "--tuples-only",
        "--field-separator=:",
        "--command",
        counts,
    )
    assert result.returncode == 0, result.stderr
    rows = dict(line.split(":") for line in result.stdout.split())
    assert {table: int(n) for table, n in rows.items()} == EXPECTED_ROWS
    assert learners_postgres.healthcheck_passes(), learners_postgres.logs()


@pytest.mark.parametrize("script", ["01_connect", "03_pool", "05_transaction"])
def test_the_chapters_scripts_run_against_the_learners_postgres(learners_postgres: Container, script: str) -> None:
    result = chapter_script(script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert normalise(result.stdout + result.stderr) == read_expected(f"chapter_05/{script}")


def test_the_learners_postgres_wants_the_password(learners_postgres: Container) -> None:
    wrong = learners_postgres.exec(
        "env",
        "PGPASSWORD=wrong",
        "psql",
        "--host=127.0.0.1",
        "--username=postgres",
        "--dbname=products",
        "--command",
        "SELECT 1",
    )
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr


# -- 3. docker/compose.yaml ------------------------------------------------------------------


@dataclass
class ComposeStack:
    url: str
    project: str
    health: dict[str, Any]
    containers: dict[str, Container]


def compose_command(engine: Any, files: list[Path], project: str) -> list[str]:
    file_args = [arg for path in files for arg in ("-f", str(path))]
    if engine.is_podman:
        podman_compose = shutil.which("podman-compose")
        assert podman_compose, "podman-compose is missing: bash .ci/image-packages"
        run_args = " ".join([*engine.global_args, *engine.run_args])
        return [podman_compose, "--project-name", project, *file_args, f"--podman-run-args={run_args}"]
    return [engine.name, "compose", "--project-name", project, *file_args]


@pytest.fixture(scope="module")
def compose_stack(engine: Any, delegated_cgroup: Callable[[str], list[str]]) -> Iterator[ComposeStack]:
    project = f"workshop-{TAG}"
    instance = f"{TAG}-compose"
    port = free_port()
    files = [DOCKER / "compose.yaml"]
    if engine.is_podman:
        files.append(DOCKER / "compose.podman.yaml")
    if delegated_cgroup(instance):
        files.append(DOCKER / "compose.cgroup-v1.yaml")
    command = compose_command(engine, files, project)
    if engine.is_podman and cgroup_v1():
        command[-1] += " --cgroupns=private"  # podman-compose 1.0 ignores `cgroup: private`
    env = {
        **os.environ,
        **images.base_images(engine),
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "RUNNER_PORT": str(port),
        "RUNNER_INSTANCE": instance,
    }

    def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*command, *args], cwd=DOCKER, env=env, capture_output=True, text=True, timeout=600)
        if check:
            assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        return result

    compose("up", "--detach")
    containers = {
        service: Container(engine, f"{project}_{service}_1" if engine.is_podman else f"{project}-{service}-1")
        for service in ("postgres", "runner")
    }
    try:
        url = f"http://127.0.0.1:{port}"
        until(lambda: health(url) is not None, START_TIMEOUT, "the compose runner's /api/health", containers["runner"])
        state = health(url)
        assert state is not None
        yield ComposeStack(url, project, state, containers)
    finally:
        for container in containers.values():  # first, with their anonymous volumes (the runner's cache)
            engine("rm", "--force", "--volumes", container.name, check=False, capture=True, timeout=120)
        compose("down", "--volumes", check=False)
        if engine.is_podman:  # podman-compose 1.0 leaves the project's network behind
            engine("network", "rm", f"{project}_default", check=False, capture=True, timeout=60)


def test_compose_serves_public_mode_with_every_isolation_layer(compose_stack: ComposeStack) -> None:
    state = compose_stack.health
    assert state["status"] == "ready", state
    assert state["postgres"] == {"kind": "external", "healthy": True}
    assert state["public"] is True and state["editing"] is True  # every layer in force: public mode takes edits
    assert_full_isolation(state)
    for container in compose_stack.containers.values():
        assert container.healthcheck_passes(), container.logs()


def test_compose_runs_a_sample_and_an_edited_one_inside_its_limits(compose_stack: ComposeStack) -> None:
    response = run(compose_stack.url, "chapter_05/03_pool")
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["status"] == "ok", combined_output(summary)
    assert normalise(combined_output(summary)) == read_expected("chapter_05/03_pool")
    edited = run(compose_stack.url, "chapter_05/03_pool", code="print('edited')")
    assert edited.status_code == 200, edited.text
    result = json.loads(edited.text)
    assert (result["status"], result["edited"], combined_output(result)) == ("ok", True, "edited\n")
    assert result["resources"] is not None, "the run had no control group of its own"


def test_compose_postgres_is_reached_through_the_socket_only(compose_stack: ComposeStack) -> None:
    """Nothing published, and a password even on the socket: the runner came in as the admin role."""
    postgres = compose_stack.containers["postgres"]
    ports = postgres.engine("port", postgres.name, check=False, capture=True, timeout=60)
    assert ports.stdout.strip() == "", ports.stdout
    refused = postgres.exec(
        "env", "PGPASSWORD=wrong", "psql", "--host=/var/run/postgresql", "--username=postgres", "--command", "SELECT 1"
    )
    assert refused.returncode != 0 and "password authentication failed" in refused.stderr, refused
