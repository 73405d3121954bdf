# message: one at a time
"""A pool, but the lookups are still awaited one after the other."""

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
        min_size=6,
        max_size=6,
    )
    for product_id in range(1, 101):
        print(f"product {product_id}: {await sku_count(pool, product_id)} SKUs")
    await pool.close()


asyncio.run(main())
