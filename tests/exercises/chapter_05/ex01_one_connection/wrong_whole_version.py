# message: print the major version alone
"""The whole ServerVersion tuple instead of its major number."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    print(f"server version: {conn.get_server_version()}")
    print(f"brands: {await conn.fetchval('SELECT count(*) FROM brand')}")
    await conn.close()


asyncio.run(main())
