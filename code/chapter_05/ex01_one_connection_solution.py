"""Exercise 1, a solution: one connection, one query."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    try:
        # Known since the login: no query, so no await.
        print(f"server version: {conn.get_server_version().major}")
        # A question for the server: a query, awaited.
        print(f"brands: {await conn.fetchval('SELECT count(*) FROM brand')}")
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
