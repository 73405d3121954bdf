# message: one after the other on the same connection
"""No error any more: the two queries are simply awaited in turn on the one connection."""

import asyncio

import asyncpg

PRODUCT_QUERY = """
    SELECT p.product_id, p.product_name, s.sku_id
    FROM product AS p
    JOIN sku AS s ON s.product_id = p.product_id
    WHERE p.product_id = 100
"""


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    print("query 1 succeeded:", await conn.execute(PRODUCT_QUERY))
    print("query 2 succeeded:", await conn.execute(PRODUCT_QUERY))
    await conn.close()


asyncio.run(main())
