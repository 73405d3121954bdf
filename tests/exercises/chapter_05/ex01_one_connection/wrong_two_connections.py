# message: opened 2 connections
"""No version query any more, but still a connection per question."""

import asyncio

import asyncpg

CONNECT = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "password", "database": "products"}


async def main() -> None:
    first = await asyncpg.connect(**CONNECT)
    print(f"server version: {first.get_server_version().major}")
    await first.close()
    second = await asyncpg.connect(**CONNECT)
    print(f"brands: {await second.fetchval('SELECT count(*) FROM brand')}")
    await second.close()


asyncio.run(main())
