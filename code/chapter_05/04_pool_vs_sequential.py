"""Send 10,000 queries through a pool of 6 connections, concurrently and then one by one.

Both runs do the same work; only the waiting differs.
"""

import asyncio
import textwrap

import asyncpg

from code.utils import async_timed

PRODUCT_QUERY = textwrap.dedent("""
    SELECT p.product_id,
           p.product_name,
           p.brand_id,
           s.sku_id,
           pc.product_color_name,
           ps.product_size_name
    FROM product AS p
    JOIN sku AS s ON s.product_id = p.product_id
    JOIN product_color AS pc ON pc.product_color_id = s.product_color_id
    JOIN product_size AS ps ON ps.product_size_id = s.product_size_id
    WHERE p.product_id = 100
""")


async def query_product(pool: asyncpg.Pool) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await conn.fetchrow(PRODUCT_QUERY)


@async_timed()
async def query_products_sequentially(pool: asyncpg.Pool, queries: int) -> list[asyncpg.Record | None]:
    return [await query_product(pool) for _ in range(queries)]


@async_timed()
async def query_products_concurrently(pool: asyncpg.Pool, queries: int) -> list[asyncpg.Record | None]:
    pending = [query_product(pool) for _ in range(queries)]
    return await asyncio.gather(*pending)


@async_timed()
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
    await query_products_concurrently(pool, 10_000)
    await query_products_sequentially(pool, 10_000)
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
