# message: at most 2 at once
"""Concurrent, but through a pool of two connections."""

import asyncio

import asyncpg


async def sku_count(pool: asyncpg.Pool, product_id: int) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM sku WHERE product_id = $1", product_id)


async def main() -> None:
    pool = await asyncpg.create_pool(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
        min_size=2,
        max_size=2,
    )
    product_ids = range(1, 101)
    counts = await asyncio.gather(*(sku_count(pool, product_id) for product_id in product_ids))
    for product_id, count in zip(product_ids, counts, strict=True):
        print(f"product {product_id}: {count} SKUs")
    await pool.close()


asyncio.run(main())
