"""Every setting of the runner, read from the environment once at start-up.

Each field carries its environment variable and a sentence for operators; the
configuration reference in the docs is checked against this list.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import platformdirs

from .admission import Share
from .capacity import cpus_available, derive_slots
from .lesson import REPO_ROOT as REPO_ROOT  # re-exported: settings is where the rest of the runner looks

CODE_DIR = REPO_ROOT / "code"


def _setting(env: str, default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


class SettingError(SystemExit):
    """A setting the runner cannot start with: the message names the variable and what it accepts."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = _setting(
        "WORKSHOP_DATABASE_URL",
        None,
        "Admin DSN of an external PostgreSQL server (a role that may create databases and "
        "roles). Unset: the runner starts its own embedded cluster.",
    )
    cache_dir: Path = _setting(  # noqa: RUF009 - evaluated once, on purpose
        "WORKSHOP_CACHE_DIR",
        platformdirs.user_cache_path("asyncio-workshop"),
        "Where the embedded cluster's data, socket and admin password are kept between starts.",
    )
    site_dir: Path = _setting(  # noqa: RUF009 - evaluated once, on purpose
        "WORKSHOP_SITE_DIR",
        REPO_ROOT / "site",
        "The built MkDocs site served at `/` (nothing is served there when it is missing).",
    )
    run_timeout: float = _setting(
        "WORKSHOP_RUN_TIMEOUT", 30.0, "Wall-clock seconds a run may take before its process tree is killed."
    )
    output_limit: int = _setting(
        "WORKSHOP_OUTPUT_LIMIT",
        256 * 1024,
        "Bytes of stdout+stderr kept per run; beyond it the run is stopped and marked truncated.",
    )
    max_body: int = _setting(
        "WORKSHOP_MAX_BODY", 128 * 1024, "Largest request body accepted by `POST /api/runs`, in bytes (413 beyond)."
    )
    allow_edits: bool | None = _setting(
        "WORKSHOP_ALLOW_EDITS",
        None,
        'Accept edited code (`"code"` in the request); refused ones get 403. Unset: on, except in public mode '
        "while an isolation layer is missing (`serve --no-edits` turns it off).",
    )
    public: bool = _setting(
        "WORKSHOP_PUBLIC",
        False,
        "Public mode (`serve --public`): a per-client rate limit, no start without full sandbox isolation, and "
        "edited code only while every isolation layer is in force.",
    )
    allow_weak_isolation: bool = _setting(
        "WORKSHOP_ALLOW_WEAK_ISOLATION",
        False,
        "Let public mode start even when namespaces (bubblewrap) are unavailable.",
    )
    sandbox: str = _setting(
        "WORKSHOP_SANDBOX",
        "auto",
        "`auto` (bubblewrap when it works here), `bubblewrap` (fail without it) or `plain` (no namespaces).",
    )
    cgroups: str = _setting(
        "WORKSHOP_CGROUPS",
        "auto",
        "A control group per run: `auto` (cgroup v2 where delegated, else v1; none if neither is writable), "
        "`required` (fail to start without) or `off`.",
    )
    run_memory: int = _setting(
        "WORKSHOP_RUN_MEMORY",
        512 * 1024 * 1024,
        "Bytes of memory one run may use across all its processes, files in its /tmp included (cgroup limit).",
    )
    run_pids: int = _setting("WORKSHOP_RUN_PIDS", 64, "Processes and threads one run may have at once (cgroup limit).")
    run_cpus: float = _setting(
        "WORKSHOP_RUN_CPUS", 1.0, "CPU cores one run may use at most, across its processes (cgroup limit)."
    )
    fork_server: bool = _setting(
        "WORKSHOP_FORK_SERVER",
        True,
        "Fork each sandbox's child from one interpreter with asyncpg imported, which builds the same layers as "
        "bubblewrap after each fork (a fork instead of an interpreter start). Needs root and the system-call "
        "filter; where it cannot start, bubblewrap launches sandboxes as before.",
    )
    db_reuse: bool = _setting(
        "WORKSHOP_DB_REUSE",
        True,
        "Give a run database to another run when its run provably changed nothing (no row written, no sequence "
        "moved, no setting, no session left; see runner/reuse.py) instead of cloning a new one. Needs "
        "PostgreSQL 18 or later; `off`: every run gets a fresh clone.",
    )
    seccomp: bool = _setting(
        "WORKSHOP_SECCOMP",
        True,
        "Filter the system calls of every sandbox (seccomp, loaded by bubblewrap). `off` serves to measure "
        "what the filter costs; public mode refuses to start without it.",
    )
    rate_limit: int = _setting(
        "WORKSHOP_RATE_LIMIT",
        30,
        "Runs per minute one client address may start in public mode (0: no limit).",
    )
    max_concurrent_runs: int = _setting(
        "WORKSHOP_MAX_CONCURRENT_RUNS",
        0,
        "Runs executing at the same time (0: derived from the memory each run may use and PostgreSQL's "
        "connections; `/api/health` shows the rule).",
    )
    client_runs: int | None = _setting(
        "WORKSHOP_CLIENT_RUNS",
        None,
        "Runs one client (address) may have executing at once. Unset: 1 in public mode, no limit otherwise.",
    )
    client_queue: int | None = _setting(
        "WORKSHOP_CLIENT_QUEUE",
        None,
        "Runs one client may have waiting for a slot; beyond it 429 `client_queue_full`. Unset: 3 in public mode, "
        "no limit of its own otherwise (the runner's queue still applies).",
    )
    client_run_seconds: float | None = _setting(
        "WORKSHOP_CLIENT_RUN_SECONDS",
        None,
        "Seconds of run time one client may use per minute, charged as its runs finish (429 `run_time_budget` "
        "beyond). Unset: 60 in public mode, no limit otherwise; 0: no limit.",
    )
    max_queue: int = _setting(
        "WORKSHOP_MAX_QUEUE",
        100,
        "Runs allowed to wait for a free slot at most; beyond it requests get 429 with Retry-After "
        "(WORKSHOP_MAX_WAIT usually refuses first).",
    )
    max_wait: float = _setting(
        "WORKSHOP_MAX_WAIT",
        10.0,
        "Seconds a new run may expect to wait for a slot (estimated from recent runs): a burst within it waits in "
        "line and a streaming reader is told its place; beyond it 429 `busy` with Retry-After.",
    )
    pool_size: int = _setting(
        "WORKSHOP_POOL_SIZE",
        2,
        "Sandboxes kept prepared in advance, each with its database cloned and Python warmed up "
        "(0: each run prepares its own).",
    )
    pool_refill: int = _setting(
        "WORKSHOP_POOL_REFILL",
        0,
        "Sandboxes prepared at the same time when refilling the pool (more refill faster, but take CPU from runs). "
        "0: as many as the CPUs available to the runner (its container's CPU limit counts).",
    )
    clone_dir: str = _setting(
        "WORKSHOP_CLONE_DIR",
        "auto",
        "Where the embedded cluster keeps run databases: a tmpfs makes each clone ~15x faster than disk. "
        "`auto`: /dev/shm when it has 1 GiB free; `off`: beside the template; or a folder.",
    )
    db_size_limit: int = _setting(
        "WORKSHOP_DB_SIZE_LIMIT",
        256 * 1024 * 1024,
        "Bytes a run's database may hold (the seeded data included); watched every 0.1 s on the embedded "
        "cluster (every second on an external server), and the run is stopped when it grows past.",
    )
    db_memory_limit: int = _setting(
        "WORKSHOP_DB_MEMORY_LIMIT",
        256 * 1024 * 1024,
        "Bytes of memory a run's PostgreSQL backends may use together, in a memory cgroup of their own "
        "(embedded cluster, with the cgroup layer); the pages its database adds in RAM count on top, up to "
        "`WORKSHOP_DB_SIZE_LIMIT`. Reaching it stops the run.",
    )
    clone_space: int = _setting(
        "WORKSHOP_CLONE_SPACE",
        0,
        "Bytes of RAM the run databases may take in the clone folder together; as root the runner mounts a "
        "tmpfs of this size there, and a database that would not fit at its quota is cloned onto disk instead "
        "(0: a quarter of the memory, at most what the folder's filesystem has free).",
    )
    cors_origins: tuple[str, ...] = _setting(
        "WORKSHOP_CORS_ORIGINS", (), "Comma-separated origins allowed to call the API from another site."
    )
    instance: str = _setting(
        "WORKSHOP_INSTANCE",
        socket.gethostname(),
        "Name of this runner replica; its run databases carry a prefix derived from it, so a "
        "restart cleans up its own orphans and never another replica's.",
    )
    log_level: str = _setting(
        "WORKSHOP_LOG_LEVEL",
        "INFO",
        "Python logging level of the runner's log: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).",
    )
    log_format: str = _setting(
        "WORKSHOP_LOG_FORMAT",
        "text",
        "`text` (one line per record) or `json` (one JSON object per line, for log shippers).",
    )
    drain_seconds: float = _setting(
        "WORKSHOP_DRAIN_SECONDS",
        30.0,
        "On SIGTERM: seconds the runner waits for running runs to finish (health 503 `draining`, no new runs) "
        "before it stops. Give the orchestrator's grace period at least this plus 10 s.",
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from the environment, letting explicit overrides win (CLI flags, tests)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw, f.default)
        values.update(overrides)
        settings = _checked(cls(**values))
        if settings.max_concurrent_runs == 0:
            settings = replace(settings, max_concurrent_runs=derive_slots(settings.run_memory).slots)
        if settings.pool_refill == 0:
            settings = replace(settings, pool_refill=max(1, round(cpus_available())))
        return settings

    def share(self) -> Share:
        """What one client may take of the runner."""
        per_client = self.client_runs if self.client_runs is not None else (1 if self.public else 1 << 20)
        budget = self.client_run_seconds if self.client_run_seconds is not None else (60.0 if self.public else 0.0)
        queue = self.client_queue if self.client_queue is not None else (3 if self.public else 1 << 20)
        return Share(per_client=max(1, per_client), client_queue=queue, run_seconds_per_minute=budget)


CHOICES: dict[str, tuple[str, ...]] = {
    "sandbox": ("auto", "bubblewrap", "plain"),
    "cgroups": ("auto", "required", "off"),
    "log_format": ("text", "json"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
}
"""Settings that take one of a few words (compared without regard to case)."""

MINIMUMS: dict[str, tuple[float, bool]] = {
    "run_timeout": (0, False),
    "output_limit": (0, False),
    "max_body": (0, False),
    "run_memory": (0, False),
    "run_pids": (0, False),
    "run_cpus": (0, False),
    "rate_limit": (0, True),
    "max_concurrent_runs": (0, True),
    "client_runs": (1, True),
    "client_queue": (0, True),
    "client_run_seconds": (0, True),
    "max_queue": (0, True),
    "max_wait": (0, True),
    "pool_size": (0, True),
    "pool_refill": (0, True),
    "drain_seconds": (0, True),
}
"""The least each number may be, and whether that least value itself is allowed."""


def _env(name: str) -> str:
    return str(next(f.metadata["env"] for f in fields(Settings) if f.name == name))


def _checked(settings: Settings) -> Settings:
    """The settings with words normalised, or a SettingError naming the variable and what it accepts."""
    changes: dict[str, Any] = {}
    for name, allowed in CHOICES.items():
        value = str(getattr(settings, name))
        match = next((word for word in allowed if word.lower() == value.lower()), None)
        if match is None:
            raise SettingError(f"{_env(name)}={value!r} is not accepted: use one of {', '.join(allowed)}")
        changes[name] = match
    for name, (least, inclusive) in MINIMUMS.items():
        value = getattr(settings, name)
        if value is None:
            continue
        if not math.isfinite(value):
            raise SettingError(f"{_env(name)}={value!r} is not accepted: it must be a finite number")
        if value < least or (value == least and not inclusive):
            bound = f"at least {least:g}" if inclusive else f"more than {least:g}"
            extra = " (0: derived from this host)" if name in {"max_concurrent_runs", "pool_refill"} else ""
            raise SettingError(f"{_env(name)}={value!r} is not accepted: it must be {bound}{extra}")
    if settings.database_url:
        query = parse_qs(urlsplit(settings.database_url).query)
        modes = query.get("sslmode", [])
        if any(mode not in {"disable", "allow", "prefer"} for mode in modes):
            raise SettingError(
                f"WORKSHOP_DATABASE_URL asks for sslmode={modes[-1]}, which the runner does not do: it connects "
                "without TLS (a unix socket, or a private network), so use ?host=<socket directory> or drop sslmode"
            )
    if settings.clone_dir not in {"auto", "off", ""}:
        changes["clone_dir"] = str(Path(settings.clone_dir).expanduser())
    return replace(settings, **changes)


NUMBERS_OR_UNSET: dict[str, type] = {"client_runs": int, "client_queue": int, "client_run_seconds": float}
"""Settings whose default (unset) depends on the mode: the type their value is read as."""


def _parse(name: str, raw: str, default: Any) -> Any:
    try:
        if name in NUMBERS_OR_UNSET:
            return NUMBERS_OR_UNSET[name](raw)
        if isinstance(default, bool) or name == "allow_edits":
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw).expanduser()
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError:
        env = _env(name)
        kind = "a whole number" if isinstance(default, int) and not isinstance(default, bool) else "a number"
        if isinstance(default, bool) or name == "allow_edits":
            kind = "1/true/yes/on or 0/false/no/off"
        elif name in NUMBERS_OR_UNSET:
            kind = "a whole number" if NUMBERS_OR_UNSET[name] is int else "a number"
        raise SettingError(f"{env}={raw!r} is not accepted: it must be {kind}") from None


def documented_settings() -> list[tuple[str, str, Any, str]]:
    """(field, env var, default, doc) for every setting: the source of the configuration reference."""
    return [(f.name, f.metadata["env"], f.default, f.metadata["doc"]) for f in fields(Settings)]
