"""Build the runner and learners' images with podman (or Docker), from official or local bases.

    python3 docker/images.py build     # what `make images` runs

The Dockerfiles take their base images as build arguments (`PYTHON_IMAGE`,
`POSTGRES_IMAGE`). Set in the environment they are used as given; otherwise the
official images are used when present or pullable, and where no registry can be
reached `docker/base/make-local-bases` makes equivalents from Debian's packages.

This module is also the tests' one description of the engine and of what this
host needs from it (`Engine.detect()`): standard library only, so `make images`
needs no virtualenv.
"""

from __future__ import annotations

import argparse
import configparser
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKER = REPO_ROOT / "docker"
MAKE_LOCAL_BASES = DOCKER / "base" / "make-local-bases"

RUNNER_IMAGE = "workshop-runner"
LEARNERS_IMAGE = "workshop-postgres"
OFFICIAL_BASES = {
    "PYTHON_IMAGE": "docker.io/library/python:3.11-slim-bookworm",
    "POSTGRES_IMAGE": "docker.io/library/postgres:17-bookworm",
}
"""The Dockerfiles' defaults, fully qualified (podman may have no default registry for short names)."""

CAP_SYS_RESOURCE = 24
PODMAN_NPROC = 32768
"""podman lowers its own RLIMIT_NPROC to this at start, so no container of it can have more."""


def _has_capability(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def _hybrid_cgroups() -> bool:
    """cgroup v1 controllers with a v2 hierarchy beside them (`/sys/fs/cgroup/unified`)."""
    return Path("/sys/fs/cgroup/unified/cgroup.controllers").exists()


@dataclass(frozen=True)
class Engine:
    """A container engine's command and the options this host needs on every call of it."""

    name: str
    global_args: tuple[str, ...] = ()
    """Before the subcommand: e.g. `--runtime runc` where crun cannot run (hybrid cgroups)."""
    run_args: tuple[str, ...] = ()
    """For `run` and `create`: e.g. explicit ulimits where root cannot raise its own."""
    build_args: tuple[str, ...] = ()
    """For `build`: ulimits again, and the host's pip configuration and CA bundle (podman only)."""

    @property
    def is_podman(self) -> bool:
        return self.name == "podman"

    @classmethod
    def detect(cls) -> Engine:
        """`CONTAINER_ENGINE` if set, else podman when installed, else Docker when its engine answers."""
        name = os.environ.get("CONTAINER_ENGINE")
        if not name:
            if shutil.which("podman"):
                name = "podman"
            elif shutil.which("docker") and subprocess.run(
                ["docker", "info"], capture_output=True, timeout=30
            ).returncode == 0:
                name = "docker"
            else:
                raise SystemExit("no container engine: install podman (bash .ci/image-packages) or Docker")
        if Path(name).name != "podman":
            return cls(name)
        limits = _podman_ulimits()
        return cls(name, _podman_runtime(), limits, limits + _pip_mounts())

    def command(self, *args: str) -> list[str]:
        """The argv of one engine call, host options inserted after the subcommand."""
        subcommand, rest = args[0], list(args[1:])
        extra = {"run": self.run_args, "create": self.run_args, "build": self.build_args}.get(subcommand, ())
        return [self.name, *self.global_args, subcommand, *extra, *rest]

    def __call__(self, *args: str, check: bool = True, capture: bool = False,
                 timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), check=check, text=True, capture_output=capture, timeout=timeout)

    def has_image(self, image: str) -> bool:
        return self("image", "inspect", image, check=False, capture=True).returncode == 0

    def pull(self, image: str) -> bool:
        return self("pull", image, check=False, capture=True, timeout=300).returncode == 0


def _podman_runtime() -> tuple[str, ...]:
    """crun (podman's first choice) refuses hybrid cgroup layouts; runc runs there."""
    if _hybrid_cgroups() and shutil.which("crun") and shutil.which("runc"):
        return ("--runtime", "runc")
    return ()


def _podman_ulimits() -> tuple[str, ...]:
    """Rootful podman gives containers nofile=1048576 and nproc=4194304, which needs CAP_SYS_RESOURCE.

    Where root lacks it (some virtual machines and sandboxes), container start fails with
    "error setting rlimit ... operation not permitted": ask for what this process has.
    """
    if os.geteuid() != 0 or _has_capability(CAP_SYS_RESOURCE):
        return ()
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], PODMAN_NPROC)
    return ("--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}")


def _pip_mounts() -> tuple[str, ...]:
    """The host's pip configuration and the CA bundle it names, read-only, for `pip install` in builds.

    Where PyPI is reached through a proxy with its own certificate authority, pip in
    the build needs what pip on the host uses. Nothing of it stays in the image
    (build-time mounts are not layers).
    """
    mounts: list[Path] = []
    certs: set[str] = set()
    for path in (Path("/etc/pip.conf"), Path("/etc/xdg/pip")):
        if not path.exists():
            continue
        mounts.append(path)
        for config in [path] if path.is_file() else sorted(path.glob("*.conf")):
            parser = configparser.ConfigParser()
            parser.read(config)
            if parser.has_option("global", "cert"):
                certs.add(parser.get("global", "cert"))
    if os.environ.get("PIP_CERT"):
        certs.add(os.environ["PIP_CERT"])
    mounts += [Path(cert) for cert in sorted(certs) if Path(cert).is_file()]
    args: list[str] = []
    for path in mounts:
        args += ["--volume", f"{path}:{path}:ro"]
    return tuple(args)


def base_images(engine: Engine) -> dict[str, str]:
    """PYTHON_IMAGE and POSTGRES_IMAGE: as set, else the official ones, else local ones from Debian."""
    chosen = {arg: os.environ[arg] for arg in OFFICIAL_BASES if os.environ.get(arg)}
    wanted = {arg: image for arg, image in OFFICIAL_BASES.items() if arg not in chosen}
    if all(engine.has_image(image) or engine.pull(image) for image in wanted.values()):
        return chosen | wanted
    print("official base images unavailable: using local ones made from Debian packages", file=sys.stderr)
    env = {**os.environ, "CONTAINER_ENGINE": " ".join([engine.name, *engine.global_args])}
    started = time.monotonic()
    result = subprocess.run(["bash", str(MAKE_LOCAL_BASES)], env=env, check=True, text=True,
                            stdout=subprocess.PIPE)
    print(f"local base images ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
    local = dict(line.split("=", 1) for line in result.stdout.split())
    return local | chosen


def build(engine: Engine, bases: dict[str, str]) -> None:
    """Both images, from the repository root, each with the .dockerignore beside its Dockerfile."""
    for image, folder in ((RUNNER_IMAGE, "runner"), (LEARNERS_IMAGE, "postgres")):
        dockerfile = DOCKER / folder / "Dockerfile"
        args = ["build", "--file", str(dockerfile), "--tag", image]
        for name, value in bases.items():
            args += ["--build-arg", f"{name}={value}"]
        if engine.is_podman:
            # BuildKit reads <Dockerfile>.dockerignore by itself; podman 4 needs it named.
            # The docker format keeps HEALTHCHECK, which OCI image configs cannot hold.
            args += ["--ignorefile", f"{dockerfile}.dockerignore", "--format", "docker"]
        print(f"building {image} from {dockerfile.relative_to(REPO_ROOT)}", file=sys.stderr)
        started = time.monotonic()
        engine(*args, str(REPO_ROOT))
        print(f"built {image} in {time.monotonic() - started:.0f} s", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="docker/images.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build workshop-runner and workshop-postgres")
    commands.add_parser("bases", help="print the base images a build would use (making local ones if needed)")
    args = parser.parse_args(argv)
    engine = Engine.detect()
    bases = base_images(engine)
    if args.command == "bases":
        for name, value in bases.items():
            print(f"{name}={value}")
        return 0
    build(engine, bases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
