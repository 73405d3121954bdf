# message: not one per call
"""A semaphore, but a new one in every call: each lookup has three permits to itself."""

import asyncio

import asyncpg

SLOW_LOOKUP = "SELECT product_name FROM product, pg_sleep(0.1) WHERE product_id = $1"


async def slow_lookup(pool: asyncpg.Pool, product_id: int) -> str:
    async with asyncio.Semaphore(3), pool.acquire() as conn:
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
        names = await asyncio.gather(*(slow_lookup(pool, product_id) for product_id in range(1, 31)))
    for product_id, name in enumerate(names, start=1):
        print(f"{product_id}: {name}")


asyncio.run(main())
