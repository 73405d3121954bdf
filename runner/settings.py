"""Every setting of the runner, read from the environment once at start-up.

Each field carries its environment variable and a sentence for operators; the
configuration reference in the docs is checked against this list.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

REPO_ROOT = Path(__file__).resolve().parent.parent
CODE_DIR = REPO_ROOT / "code"


def _setting(env: str, default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


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
        'Accept edited code (`"code"` in the request); refused ones get 403. Unset: on locally, off in public mode.',
    )
    public: bool = _setting(
        "WORKSHOP_PUBLIC",
        False,
        "Public mode (`serve --public`): editing off unless allowed, a per-client rate limit, and no start "
        "without full sandbox isolation.",
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
    rate_limit: int = _setting(
        "WORKSHOP_RATE_LIMIT",
        30,
        "Runs per minute one client address may start in public mode (0: no limit).",
    )
    max_concurrent_runs: int = _setting(
        "WORKSHOP_MAX_CONCURRENT_RUNS", max(2, os.cpu_count() or 1), "Runs executing at the same time."
    )
    max_queue: int = _setting(
        "WORKSHOP_MAX_QUEUE", 16, "Runs allowed to wait for a free slot; beyond it requests get 429 with Retry-After."
    )
    pool_size: int = _setting(
        "WORKSHOP_POOL_SIZE",
        2,
        "Sandboxes kept prepared in advance, each with its database cloned and Python warmed up "
        "(0: each run prepares its own).",
    )
    pool_refill: int = _setting(
        "WORKSHOP_POOL_REFILL",
        1,
        "Sandboxes prepared at the same time when refilling the pool (more refill faster, but take CPU from runs).",
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
        "Bytes a run's database may hold (the seeded data included); measured every 0.1 s on the embedded "
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
    log_level: str = _setting("WORKSHOP_LOG_LEVEL", "INFO", "Python logging level of the runner's log.")

    @property
    def editing_enabled(self) -> bool:
        return self.allow_edits if self.allow_edits is not None else not self.public

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
        return cls(**values)


def _parse(name: str, raw: str, default: Any) -> Any:
    try:
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
        raise SystemExit(f"invalid value for setting {name}: {raw!r}") from None


def documented_settings() -> list[tuple[str, str, Any, str]]:
    """(field, env var, default, doc) for every setting: the source of the configuration reference."""
    return [(f.name, f.metadata["env"], f.default, f.metadata["doc"]) for f in fields(Settings)]
