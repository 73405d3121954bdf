"""How a sandbox's process is started: the OS-level isolation layers in force.

`Launcher` turns "run the child program" into an argv and process options. The
plain launcher gives a new session, a private working directory, a scrubbed
environment and rlimits (set by the child before it runs any sample code).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .seccomp import SeccompProgram, SeccompUnavailable
from .seccomp import build as build_seccomp
from .settings import CODE_DIR, REPO_ROOT

log = logging.getLogger("runner.isolation")

GATE_FD_ENV = "WORKSHOP_GATE_FD"
CHILD_ARGV = [sys.executable, "-I", "-u", "-X", "frozen_modules=on", "-m", "runner.child"]


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits applied inside the sandbox."""

    cpu_seconds: int = 60
    address_space: int = 1024 * 1024 * 1024
    processes: int = 256
    file_size: int = 16 * 1024 * 1024
    open_files: int = 256

    def as_job(self) -> dict[str, int]:
        return {
            "cpu": self.cpu_seconds,
            "address_space": self.address_space,
            "processes": self.processes,
            "file_size": self.file_size,
            "open_files": self.open_files,
            "core": 0,
        }


@dataclass
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    cleanup_dirs: list[Path] = field(default_factory=list)
    process_options: dict[str, Any] = field(default_factory=dict)
    pass_fds: list[int] = field(default_factory=list)
    """Descriptors the launcher itself needs in the child (e.g. a seccomp program); closed by cleanup()."""

    def cleanup(self) -> None:
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pass_fds = []
        for path in self.cleanup_dirs:
            shutil.rmtree(path, ignore_errors=True)


def scrubbed_env(events_fd: int) -> dict[str, str]:
    """Nothing of the runner's environment (and so no credential) reaches a sample."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "WORKSHOP_EVENTS_FD": str(events_fd),
    }


class Launcher(Protocol):
    name: str
    layers: tuple[str, ...]
    missing: tuple[str, ...]

    def plan(self, events_fd: int) -> LaunchPlan: ...


class PlainLauncher:
    """Process-level isolation only: for machines without user namespaces."""

    name = "plain"
    layers: tuple[str, ...] = ("session", "rlimits", "scrubbed-env", "private-workdir")
    missing: tuple[str, ...] = (
        "pid-namespace",
        "net-namespace",
        "mount-namespace",
        "ipc-namespace",
        "uts-namespace",
        "unprivileged-uid",
        "seccomp",
    )

    def plan(self, events_fd: int) -> LaunchPlan:
        workdir = Path(tempfile.mkdtemp(prefix="workshop-run-"))
        return LaunchPlan(list(CHILD_ARGV), scrubbed_env(events_fd), workdir, [workdir])


SANDBOX_UID = 65534
"""`nobody`: the unprivileged uid sandboxes run as when the runner is root."""

TMP_SIZE = 64 * 1024 * 1024
SHM_SIZE = 8 * 1024 * 1024
SECCOMP_LAYER = "seccomp"
PROBE_CODE = (
    "import asyncpg, ctypes, runner.child\n"
    "refused = ctypes.CDLL(None, use_errno=True).unshare(0) == -1 and ctypes.get_errno() == 1\n"
    "print('ok', 'filtered' if refused else 'unfiltered')\n"
)
"""What a probe runs: the child's imports, then a call the filter refuses (a no-op without it)."""


class BubblewrapLauncher:
    """Namespaces via bubblewrap: the sample sees a read-only system, its own /tmp, no network.

    Only what Python needs is bound in (the system's /usr and /etc, the Python
    installation, the virtualenv, the runner's child program and the lesson's
    code/), all read-only. No PostgreSQL socket either: connections come through
    the runner's gate (`runner/gate.py`), the one way out. Every sandbox gets the
    system-call filter of `runner/seccomp.py`, compiled once here and read by
    bubblewrap from a descriptor of its own.
    """

    name = "bubblewrap"
    BASE_LAYERS: tuple[str, ...] = (
        "pid-namespace",
        "net-namespace",
        "mount-namespace",
        "ipc-namespace",
        "uts-namespace",
        "read-only-system",
        "private-tmp",
        "unprivileged-uid",
        "postgres-gate",
        "session",
        "rlimits",
        "scrubbed-env",
    )

    def __init__(self, bwrap: str = "bwrap", *, seccomp: bool = True) -> None:
        self.bwrap = shutil.which(bwrap) or bwrap
        self.layers: tuple[str, ...] = self.BASE_LAYERS
        self.missing: tuple[str, ...] = ()
        self.seccomp: SeccompProgram | None = None
        self.seccomp_problem: str | None = None
        """Why the filter is not in force (None when it is)."""
        if not seccomp:
            self._without_seccomp("it was turned off (WORKSHOP_SECCOMP=off)")
            return
        try:
            self.seccomp = build_seccomp()
        except SeccompUnavailable as error:
            self._without_seccomp(str(error))
            return
        self.layers = (*self.BASE_LAYERS, SECCOMP_LAYER)

    def _without_seccomp(self, why: str) -> None:
        if self.seccomp is not None:
            self.seccomp.close()
        self.seccomp, self.seccomp_problem = None, why
        self.layers, self.missing = self.BASE_LAYERS, (SECCOMP_LAYER,)

    def plan(self, events_fd: int) -> LaunchPlan:
        fds = [self.seccomp.open()] if self.seccomp else []
        argv = [*self.bwrap_argv(fds[0] if fds else None), *CHILD_ARGV]
        return LaunchPlan(argv, scrubbed_env(events_fd), Path("/"), [], self.process_options(), fds)

    def bwrap_argv(self, seccomp_fd: int | None = None) -> list[str]:
        """bubblewrap's options; with `seccomp_fd`, the filter read from it (bubblewrap closes it)."""
        argv = [
            self.bwrap,
            *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
            "--unshare-all",
            "--unshare-user",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
            "--disable-userns",
            "--ro-bind",
            "/usr",
            "/usr",
            "--ro-bind",
            "/etc",
            "/etc",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            str(TMP_SIZE),
            "--tmpfs",
            "/tmp",
            "--chdir",
            "/tmp",
        ]
        for top in ("/bin", "/lib", "/lib32", "/lib64", "/sbin"):
            if os.path.islink(top):
                argv += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                argv += ["--ro-bind", top, top]
        for path in self.readable_paths():
            argv += ["--ro-bind", str(path), str(path)]
        # bwrap's own root and /dev are writable tmpfs without a size: make them read-only, and give
        # /dev/shm a small size, so memory-backed files cannot grow beyond the limits
        argv += ["--size", str(SHM_SIZE), "--tmpfs", "/dev/shm", "--remount-ro", "/dev", "--remount-ro", "/"]
        return argv

    @staticmethod
    def readable_paths() -> list[Path]:
        """The Python installation, the virtualenv, and the two folders of this repository a run needs."""
        paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), REPO_ROOT / "runner", CODE_DIR}
        inside_usr = [p for p in paths if p.is_relative_to("/usr")]
        return sorted(p for p in paths if p not in inside_usr)

    @staticmethod
    def process_options() -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        return {"user": SANDBOX_UID, "group": SANDBOX_UID, "extra_groups": []}

    def prepare_host(self) -> None:
        """As root, let `nobody` reach the bound folders (search permission on parents only)."""
        if os.geteuid() != 0:
            return
        for path in self.readable_paths():
            for folder in [path, *path.parents]:
                mode = folder.stat().st_mode
                if not mode & 0o001:
                    log.info("allowing the sandbox user to traverse %s", folder)
                    folder.chmod(mode | 0o001)

    def probe(self) -> str | None:
        """Try a real sandbox, with the filter when there is one; None when it works, otherwise why not.

        When only the filter fails (a kernel without seccomp, a broken program), the
        sandboxes run without it and `missing` says so.
        """
        if not shutil.which(self.bwrap):
            return "bubblewrap (bwrap) is not installed"
        try:
            self.prepare_host()
        except OSError as error:
            return f"bubblewrap failed to start: {error}"
        problem = self._try_sandbox(self.seccomp)
        if problem is None or self.seccomp is None:
            return problem
        unfiltered = self._try_sandbox(None)
        if unfiltered is not None:
            return unfiltered  # bubblewrap itself fails here, filter or not
        self._without_seccomp(f"the sandbox does not work with the filter: {problem}")
        return None

    def _try_sandbox(self, program: SeccompProgram | None) -> str | None:
        fds: list[int] = []
        try:
            if program is not None:
                fds.append(program.open())
            result = subprocess.run(
                [*self.bwrap_argv(fds[0] if fds else None), *CHILD_ARGV[:-2], "-c", PROBE_CODE],
                capture_output=True,
                text=True,
                timeout=30,
                env=scrubbed_env(3),
                cwd="/",
                pass_fds=fds,
                **self.process_options(),
            )
        except (OSError, subprocess.SubprocessError) as error:
            return f"bubblewrap failed to start: {error}"
        finally:
            for fd in fds:
                os.close(fd)
        answer = result.stdout.strip()
        if result.returncode != 0 or not answer.startswith("ok "):
            return f"bubblewrap failed: {(result.stderr or result.stdout).strip()[:500]}"
        if program is not None and answer != "ok filtered":
            return f"the filter was not in force: the sandbox answered {answer!r}"
        return None


def choose_launcher(*, want_bubblewrap: bool = True, want_seccomp: bool = True) -> Launcher:
    """Bubblewrap when it works here, otherwise the plain launcher (and say why in the log)."""
    if want_bubblewrap:
        launcher = BubblewrapLauncher(seccomp=want_seccomp)
        problem = launcher.probe()
        if problem is None:
            if launcher.seccomp is not None:
                policy = launcher.seccomp.policy
                log.info(
                    "seccomp filter for %s: %d calls allowed, %d refused with EPERM, the unknown with ENOSYS",
                    policy.architecture,
                    len(policy.allowed),
                    len(policy.denied),
                )
            else:
                log.warning("sandboxes run WITHOUT a seccomp filter: %s", launcher.seccomp_problem)
            return launcher
        log.warning("sandboxes run WITHOUT namespaces: %s", problem)
    else:
        log.warning("sandboxes run WITHOUT namespaces: bubblewrap was turned off")
    return PlainLauncher()
