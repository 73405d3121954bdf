"""Exercise 1: one connection, and no query for what asyncpg already knows.

Print the server's major version and the number of brands, opening a single
connection and sending a single query.
"""

import asyncio

import asyncpg


async def server_version() -> str:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    version = await conn.fetchval("SELECT version()")
    await conn.close()
    return version


async def brand_count() -> int:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    count = await conn.fetchval("SELECT count(*) FROM brand")
    await conn.close()
    return count


async def main() -> None:
    print(f"server version: {await server_version()}")
    print(f"brands: {await brand_count()}")


if __name__ == "__main__":
    asyncio.run(main())
