# message: get_server_version()
"""One connection, but the version is still asked for with a query."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    print(f"server version: {await conn.fetchval('SHOW server_version')}")
    print(f"brands: {await conn.fetchval('SELECT count(*) FROM brand')}")
    await conn.close()


asyncio.run(main())
