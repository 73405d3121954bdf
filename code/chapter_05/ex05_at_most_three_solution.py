"""Exercise 5, a solution: one semaphore of three, shared by every lookup."""

import asyncio

import asyncpg

SLOW_LOOKUP = "SELECT product_name FROM product, pg_sleep(0.1) WHERE product_id = $1"


async def slow_lookup(pool: asyncpg.Pool, limit: asyncio.Semaphore, product_id: int) -> str:
    async with limit, pool.acquire() as conn:
        return await conn.fetchval(SLOW_LOOKUP, product_id)


async def main() -> None:
    limit = asyncio.Semaphore(3)  # one semaphore for all the lookups: three permits to share
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
        names = await asyncio.gather(*(slow_lookup(pool, limit, product_id) for product_id in product_ids))
    for product_id, name in zip(product_ids, names, strict=True):
        print(f"{product_id}: {name}")


if __name__ == "__main__":
    asyncio.run(main())
