# message: the second started only once the first was answered
"""Two connections, but the second query is only sent once the first is answered."""

import asyncio

import asyncpg

PRODUCT_QUERY = """
    SELECT p.product_id, p.product_name, s.sku_id
    FROM product AS p
    JOIN sku AS s ON s.product_id = p.product_id
    WHERE p.product_id = 100
"""
CONNECT = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "password", "database": "products"}


async def main() -> None:
    first = await asyncpg.connect(**CONNECT)
    second = await asyncpg.connect(**CONNECT)
    print("query 1 succeeded:", await first.execute(PRODUCT_QUERY))
    print("query 2 succeeded:", await second.execute(PRODUCT_QUERY))
    await first.close()
    await second.close()


asyncio.run(main())
