"""Create and seed the chapter's `products` database with the lesson's own setup code.

The learners' PostgreSQL image runs this once, from /docker-entrypoint-initdb.d/,
while the entrypoint's temporary server listens on its unix socket only; anyone
can run it against another server too. It does what
`code/setup_products_database.py`'s `main()` does, but reads where to connect
from the environment instead of assuming 127.0.0.1:5432:

    PGHOST      host name or unix-socket directory  (default /var/run/postgresql)
    PGPORT      port                                (default 5432)
    PGUSER      an admin role; else POSTGRES_USER   (default postgres)
    PGPASSWORD  its password; else POSTGRES_PASSWORD (default "password")

The catalogue itself comes from the setup module's `seed(conn)`, the same function
the runner's template and `python -m runner db` use, so every copy of the
database holds the same rows.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg

HERE = Path(__file__).resolve().parent
DATABASE = "products"
SETUP_CANDIDATES = (
    HERE / "setup_products_database.py",  # in the image: copied beside this script
    HERE.parent.parent / "code" / "setup_products_database.py",  # in the repository
)


def load_setup_module() -> ModuleType:
    """Load the setup script by path (`code` is also a standard-library module's name)."""
    for path in SETUP_CANDIDATES:
        if path.is_file():
            spec = importlib.util.spec_from_file_location("setup_products_database", path)
            if spec is None or spec.loader is None:
                break
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit("setup_products_database.py not found in: " + ", ".join(map(str, SETUP_CANDIDATES)))


def connect_options(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    return {
        "host": env.get("PGHOST") or "/var/run/postgresql",
        "port": int(env.get("PGPORT") or 5432),
        "user": env.get("PGUSER") or env.get("POSTGRES_USER") or "postgres",
        "password": env.get("PGPASSWORD") or env.get("POSTGRES_PASSWORD") or "password",
    }


async def seed_products(options: dict[str, Any]) -> dict[str, int]:
    """Create `products` if it is missing, (re)build its catalogue, return each table's row count."""
    setup = load_setup_module()
    admin = await asyncpg.connect(**options, database="postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await admin.execute(f"CREATE DATABASE {DATABASE}")
            print(f"Created database {DATABASE}")
    finally:
        await admin.close()

    conn = await asyncpg.connect(**options, database=DATABASE)
    try:
        started = time.perf_counter()
        await setup.seed(conn)
        print(f"Seeded {DATABASE} in {time.perf_counter() - started:.2f} second(s)")
        counts = {table: await conn.fetchval(f"SELECT count(*) FROM {table}") for table in setup.TABLES}
    finally:
        await conn.close()
    for table, count in counts.items():
        print(f"{table:<14} {count:>7,} rows")
    return counts


def main() -> int:
    options = connect_options()
    where = options["host"] if str(options["host"]).startswith("/") else f"{options['host']}:{options['port']}"
    print(f"Seeding {DATABASE} on {where} as {options['user']}", flush=True)
    try:
        asyncio.run(seed_products(options))
    except (OSError, asyncpg.PostgresError) as error:
        print(f"error: could not seed {DATABASE}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
