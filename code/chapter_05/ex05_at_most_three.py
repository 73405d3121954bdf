"""Exercise 5: never more than three at once.

Thirty slow lookups share a pool of ten connections with the rest of a program.
Keep the pool as it is, but never let more than three of these lookups run at
the same time.
"""

import asyncio

import asyncpg

# pg_sleep(0.1) stands in for a query that keeps the server busy for a while.
SLOW_LOOKUP = "SELECT product_name FROM product, pg_sleep(0.1) WHERE product_id = $1"


async def slow_lookup(pool: asyncpg.Pool, product_id: int) -> str:
    async with pool.acquire() as conn:
        return await conn.fetchval(SLOW_LOOKUP, product_id)


async def main() -> None:
    async with asyncpg.create_pool(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
        min_size=10,
        max_size=10,
    ) as pool:
        product_ids = range(1, 31)
        names = await asyncio.gather(*(slow_lookup(pool, product_id) for product_id in product_ids))
    for product_id, name in zip(product_ids, names, strict=True):
        print(f"{product_id}: {name}")


if __name__ == "__main__":
    asyncio.run(main())
