# message: the id 7 is part of the SQL text
"""Formatting with % instead of an f-string: still the id inside the SQL text."""

import asyncio

import asyncpg


async def product_name(conn: asyncpg.Connection, product_id: int) -> str | None:
    return await conn.fetchval("SELECT product_name FROM product WHERE product_id = %d" % product_id)  # noqa: UP031


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    for product_id in (7, 42, 512):
        print(f"{product_id}: {await product_name(conn, product_id)}")
    await conn.close()


asyncio.run(main())
