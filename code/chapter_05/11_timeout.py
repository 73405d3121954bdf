"""Give up on a slow query with asyncio.timeout: asyncpg also stops it on the server."""

import asyncio
import time

import asyncpg

CONNECT = {
    "host": "127.0.0.1",
    "port": 5432,
    "user": "postgres",
    "password": "password",
    "database": "products",
}


async def main() -> None:
    conn = await asyncpg.connect(**CONNECT)
    watcher = await asyncpg.connect(**CONNECT)  # a second connection, to look at the server from outside
    started = time.perf_counter()
    try:
        async with asyncio.timeout(0.5):
            await conn.execute("SELECT pg_sleep(10)")
    except TimeoutError:
        print("gave up on pg_sleep(10) after half a second")

    # asyncpg sent the server a cancel request; the next query on this connection
    # waits until the server has confirmed it, then runs as usual.
    print("the same connection answers again:", await conn.fetchval("SELECT 'yes'"))
    print("back well before the ten seconds the query asked for:", time.perf_counter() - started < 5)

    sleeping = await watcher.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%'"
    )
    print("queries still sleeping on the server:", sleeping)
    await watcher.close()
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
