"""The seeded template database every run is cloned from.

It is built by the lesson's own `code/setup_products_database.py` (one source of
truth) and named after a fingerprint of that script and its data, so it is rebuilt
exactly when they change and reused across restarts otherwise. Where the admin may
create it, the template also carries the login trigger that puts every backend of a
run into its memory group (runner/backend_memory.py); the trigger is part of the
fingerprint, so a template built before it (or with an older one) is rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import time
from types import ModuleType

import asyncpg

from . import backend_memory
from .lesson import load_by_path
from .postgres import ServerAddress
from .settings import CODE_DIR

log = logging.getLogger("runner.template")

TEMPLATE_PREFIX = "workshop_template_"
SANDBOX_OWNER = "workshop_sandbox"
"""NOLOGIN role owning the template's objects; every run's role is a member of it."""


def load_setup_module() -> ModuleType:
    return load_by_path(CODE_DIR / "setup_products_database.py", "workshop_setup_products_database")


def seed_fingerprint(setup: ModuleType | None = None, extra: str = "") -> str:
    """A digest of the seed's inputs, and of `extra` (SQL the template gets beyond the seed)."""
    setup = setup or load_setup_module()
    digest = hashlib.sha256()
    for path in sorted(setup.SEED_INPUTS):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    if extra:
        digest.update(b"extra\0" + extra.encode())
    return digest.hexdigest()[:16]


async def ensure_template(admin: ServerAddress) -> str:
    """Return the name of an up-to-date template database, building it if needed."""
    setup = load_setup_module()
    conn = await asyncpg.connect(**admin.connect_kwargs())
    try:
        guard = await backend_memory.can_install(conn)
        name = TEMPLATE_PREFIX + seed_fingerprint(setup, backend_memory.LOGIN_TRIGGER_SQL if guard else "")
        # replicas sharing a server must not build (or drop) templates at the same time
        await conn.execute("SELECT pg_advisory_lock(hashtext('workshop_template'))")
        if name not in await _templates(conn):
            await _build(conn, admin, setup, name, guard)
        for stale in await _templates(conn) - {name}:
            log.info("dropping outdated template %s", stale)
            await conn.execute(f'ALTER DATABASE "{stale}" IS_TEMPLATE false')
            await conn.execute(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
    finally:
        await conn.close()
    return name


async def _templates(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", TEMPLATE_PREFIX)
    return {r["datname"] for r in rows}


async def _build(conn: asyncpg.Connection, admin: ServerAddress, setup: ModuleType, name: str, guard: bool) -> None:
    started = time.perf_counter()
    building = name + "_building"
    await conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{building}"')
    await conn.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SANDBOX_OWNER}') "
        f"THEN CREATE ROLE {SANDBOX_OWNER} NOLOGIN; END IF; END $$"
    )
    seed_conn = await asyncpg.connect(**admin.as_role(admin.user, admin.password, building).connect_kwargs())
    try:
        await seed_conn.execute(f"ALTER SCHEMA public OWNER TO {SANDBOX_OWNER}")
        await seed_conn.execute(f"SET ROLE {SANDBOX_OWNER}")
        await setup.seed(seed_conn)
        await seed_conn.execute("RESET ROLE")
        if guard:
            await backend_memory.install(seed_conn)
    finally:
        await seed_conn.close()
    await conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    await conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
    log.info("built template %s in %.2f s", name, time.perf_counter() - started)
