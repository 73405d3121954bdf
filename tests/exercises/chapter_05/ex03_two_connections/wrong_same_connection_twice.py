# message: InterfaceError
"""A second connection is opened, but both queries are still sent on the first one."""

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
    results = await asyncio.gather(first.execute(PRODUCT_QUERY), first.execute(PRODUCT_QUERY), return_exceptions=True)
    for number, result in enumerate(results, start=1):
        print(f"query {number}: {type(result).__name__}: {result}")
    await first.close()
    await second.close()


asyncio.run(main())
