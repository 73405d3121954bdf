"""Exercise 4, a solution: each lookup borrows a connection from the pool, and gather runs them all."""

import asyncio

import asyncpg

SKU_COUNT = "SELECT count(*) FROM sku WHERE product_id = $1"


async def sku_count(pool: asyncpg.Pool, product_id: int) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval(SKU_COUNT, product_id)


async def main() -> None:
    async with asyncpg.create_pool(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
        min_size=6,
        max_size=6,
    ) as pool:
        product_ids = range(1, 101)
        # gather returns the results in the order of its arguments, whatever order they finish in.
        counts = await asyncio.gather(*(sku_count(pool, product_id) for product_id in product_ids))
    for product_id, count in zip(product_ids, counts, strict=True):
        print(f"product {product_id}: {count} SKUs")


if __name__ == "__main__":
    asyncio.run(main())
