"""`python -m runner db`: a plain seeded PostgreSQL for running `code/` scripts by hand.

It listens on 127.0.0.1:5432 with user postgres and password "password", exactly
what the chapter's samples connect to, and holds the seeded `products` database.
It is a separate cluster from the runner's, so its well-known password never
touches the runner's data.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import asyncpg

from .postgres import EmbeddedCluster
from .settings import Settings
from .template import load_setup_module

log = logging.getLogger("runner.db")
LEARNER_HOST, LEARNER_PORT, LEARNER_PASSWORD = "127.0.0.1", 5432, "password"


async def serve_learner_database(settings: Settings, *, port: int = LEARNER_PORT) -> None:
    cluster = EmbeddedCluster(settings.cache_dir / "learner-pg", listen=(LEARNER_HOST, port), password=LEARNER_PASSWORD)
    await cluster.start()
    try:
        await seed_products(cluster)
        print(
            f"PostgreSQL is ready on {LEARNER_HOST}:{port} (user postgres, password {LEARNER_PASSWORD!r}, "
            "database products).\nRun a sample in another terminal, e.g. "
            "`.venv/bin/python -m code.chapter_05.03_pool`. Press Ctrl+C to stop.",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await cluster.stop()


async def seed_products(cluster: EmbeddedCluster) -> None:
    """Create `products` if it is missing and (re)seed it with the lesson's own setup code."""
    admin = await asyncpg.connect(**cluster.admin.connect_kwargs())
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'products'"):
            await admin.execute("CREATE DATABASE products")
    finally:
        await admin.close()
    conn = await asyncpg.connect(
        **cluster.admin.as_role("postgres", cluster.admin.password, "products").connect_kwargs()
    )
    try:
        await load_setup_module().seed(conn)
    finally:
        await conn.close()
