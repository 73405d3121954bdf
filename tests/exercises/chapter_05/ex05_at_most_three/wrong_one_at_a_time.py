# message: At most 1 lookup ran
"""A semaphore of one: never more than three, but never more than one either."""

import asyncio

import asyncpg

SLOW_LOOKUP = "SELECT product_name FROM product, pg_sleep(0.1) WHERE product_id = $1"


async def slow_lookup(pool: asyncpg.Pool, limit: asyncio.Semaphore, product_id: int) -> str:
    async with limit, pool.acquire() as conn:
        return await conn.fetchval(SLOW_LOOKUP, product_id)


async def main() -> None:
    limit = asyncio.Semaphore(1)
    async with asyncpg.create_pool(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
        min_size=10,
        max_size=10,
    ) as pool:
        names = await asyncio.gather(*(slow_lookup(pool, limit, product_id) for product_id in range(1, 31)))
    for product_id, name in enumerate(names, start=1):
        print(f"{product_id}: {name}")


asyncio.run(main())
